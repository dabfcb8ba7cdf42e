"""Inside GIMP: run plug-in-nst-stylize INTERACTIVE (dialogs on Xvfb), record the outcomes.

/io/interactive.json lists the runs, in order: each one's arguments and whether its new layer
is dumped to /io/out for the test to judge; gimp_interactive.sh plays the user (OK, Cancel).
An interactive run starts from the last successful run's values (GIMP's
plug-in-settings/*.last) and a cancelled run saves none, so cancelled runs come first.
Afterwards, where asked, the daemon's status (through the plug-in's own vendored client)
shows whether a cancel reached it.
"""

import json
import sys
import time
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

PLUGIN_DIR = "/home/tester/.config/GIMP/3.0/plug-ins/plug-in-nst-stylize"
case = json.load(open("/io/interactive.json"))


def run(args: dict[str, Any], out: str | None) -> dict[str, Any]:
    """One interactive run on a fresh image; OUT: where the new layer's pixels go."""
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["content"]))
    source = image.get_layers()[0]
    proc = Gimp.get_pdb().lookup_procedure("plug-in-nst-stylize")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", [source])
    cfg.set_property("style-file", Gio.File.new_for_path(case["style"]))
    for name, value in args.items():
        cfg.set_property(name, value)
    started = time.monotonic()
    rv = proc.run(cfg)
    result: dict[str, Any] = {
        "status": rv.index(0).value_nick,
        "seconds": time.monotonic() - started,
        "layers": [layer.get_name() for layer in image.get_layers()],
    }
    if rv.index(0) != Gimp.PDBStatusType.SUCCESS:
        result["error"] = Gimp.get_pdb().get_last_error()
    elif out is not None:
        layer = rv.index(1)
        w, h = layer.get_width(), layer.get_height()
        data = layer.get_buffer().get(
            Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.CLAMP
        )
        Path(out).write_bytes(bytes(data))
        result["new"] = {"name": layer.get_name(), "width": w, "height": h, "file": out}
    image.delete()
    return result


results: dict[str, Any] = {
    run_case["name"]: run(run_case["args"], run_case.get("dump")) for run_case in case["runs"]
}
if case.get("status"):
    sys.path.insert(0, PLUGIN_DIR)
    from nst_client import client, settings

    installed = settings.load(Path(PLUGIN_DIR) / settings.CONFIG_NAME)
    installed.transport = "zmq"
    with client.connect(installed, "gimp-interactive-test") as conn:
        time.sleep(0.5)  # the daemon ends a cancelled job within one iteration
        results["daemon"] = conn.status()
with open("/io/out/interactive.json", "w") as f:
    json.dump(results, f, indent=1, default=str)
