"""Inside the GIMP chroot: save one X window (by id) as a PNG, with python3-gi's Gdk.

`python3 screenshot.py WINDOW_ID OUT.png` on the display in $DISPLAY; gimp_interactive.sh
takes the dialogs' pictures with it (under Xvfb there is no window manager, so a window is
its client area, without a title bar).
"""

import sys

import gi

gi.require_version("Gdk", "3.0")
gi.require_version("GdkX11", "3.0")
from gi.repository import Gdk, GdkX11  # noqa: E402


def main() -> None:
    xid, out = int(sys.argv[1], 0), sys.argv[2]
    display = Gdk.Display.get_default()
    if display is None:
        raise SystemExit(f"no display {Gdk.get_display_arg_name() or '(unset)'}")
    window = GdkX11.X11Window.foreign_new_for_display(display, xid)
    width, height = window.get_width(), window.get_height()
    pixbuf = Gdk.pixbuf_get_from_window(window, 0, 0, width, height)
    if pixbuf is None:
        raise SystemExit(f"cannot read window {xid:#x} ({width}x{height})")
    pixbuf.savev(out, "png", [], [])
    print(f"{out}: {width}x{height}")


main()
