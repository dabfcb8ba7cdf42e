"""Inside the GIMP chroot: save one X window (by id) as a PNG, with python3-gi's Gdk.

`python3 screenshot.py WINDOW_ID OUT.png` on the display in $DISPLAY (WINDOW_ID `root`: the
whole screen); gimp_interactive.sh takes the dialogs' pictures with it, gimp_regions.sh the
whole screen (under Xvfb there is no window manager, so a window is its client area, without
a title bar).
"""

import sys

import gi

gi.require_version("Gdk", "3.0")
gi.require_version("GdkX11", "3.0")
from gi.repository import Gdk, GdkX11  # noqa: E402


def main() -> None:
    which, out = sys.argv[1], sys.argv[2]
    display = Gdk.Display.get_default()
    if display is None:
        raise SystemExit(f"no display {Gdk.get_display_arg_name() or '(unset)'}")
    if which == "root":
        window = Gdk.get_default_root_window()
    else:
        window = GdkX11.X11Window.foreign_new_for_display(display, int(which, 0))
    width, height = window.get_width(), window.get_height()
    pixbuf = Gdk.pixbuf_get_from_window(window, 0, 0, width, height)
    if pixbuf is None:
        raise SystemExit(f"cannot read window {which} ({width}x{height})")
    pixbuf.savev(out, "png", [], [])
    print(f"{out}: {width}x{height}")


main()
