"""Inside GIMP (the full interface, on Xvfb): the picture of a style per region.

Run by gimp_regions.sh as GIMP's batch script. Opens /io/photo.png, saves a feathered
ellipse around the astronaut as the channel "Astronaut", runs plug-in-nst-stylize once as a
script would (swirls on the rest of the image, dots on the channel), shows the image with its
new layer in a window, then opens the filter's dialog with the same values for the picture
(gimp_regions.sh takes it, then closes the dialog). Writes /io/out/regions.json.
"""

import json
import time
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio  # noqa: E402

PROC = "plug-in-nst-stylize"
job = json.load(open("/io/regions.json"))
out: dict[str, Any] = {}


def configure(image: Any, source: Any, mode: Any) -> Any:
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    cfg = proc.create_config()
    cfg.set_property("run-mode", mode)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", [source])
    cfg.set_property("style-file", Gio.File.new_for_path(job["style"]))
    cfg.set_property("style-file-2", Gio.File.new_for_path(job["style_2"]))
    cfg.set_property("region-2", "channel")
    cfg.set_property("region-channel-2", image.get_channel_by_name(job["channel"]))
    for name, value in job["args"].items():
        cfg.set_property(name, value)
    return proc, cfg


def main() -> None:
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(job["photo"]))
    source = image.get_layers()[0]
    x, y, w, h = job["ellipse"]
    image.select_ellipse(Gimp.ChannelOps.REPLACE, x, y, w, h)
    Gimp.Selection.feather(image, job["feather"])
    Gimp.Selection.save(image).set_name(job["channel"])
    Gimp.Selection.none(image)
    image.set_selected_layers([source])

    proc, cfg = configure(image, source, Gimp.RunMode.NONINTERACTIVE)
    started = time.monotonic()
    rv = proc.run(cfg)
    out["status"] = rv.index(0).value_nick
    out["seconds"] = time.monotonic() - started
    if rv.index(0) != Gimp.PDBStatusType.SUCCESS:
        out["error"] = Gimp.get_pdb().get_last_error()
    out["layers"] = [layer.get_name() for layer in image.get_layers()]
    image.set_selected_layers([source])
    Gimp.Display.new(image)
    Gimp.displays_flush()
    with open("/io/out/regions.json", "w") as f:
        json.dump(out, f, indent=1)
    # The dialog for the picture, over the window with the result; cancelled by the script.
    proc, cfg = configure(image, source, Gimp.RunMode.INTERACTIVE)
    proc.run(cfg)


main()
