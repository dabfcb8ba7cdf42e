"""Inside GIMP: run plug-in-nst-stylize INTERACTIVE (dialogs on Xvfb), record the outcome.

gimp_interactive.sh plays the user: OK in the procedure dialog, then Cancel (Escape) in the
progress dialog. Afterwards the daemon's status (through the plug-in's own vendored client)
shows whether the cancel reached it.
"""

import json
import sys
import time
from pathlib import Path

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio  # noqa: E402

PLUGIN_DIR = "/home/tester/.config/GIMP/3.0/plug-ins/plug-in-nst-stylize"
case = json.load(open("/io/interactive.json"))
image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["content"]))
source = image.get_layers()[0]
proc = Gimp.get_pdb().lookup_procedure("plug-in-nst-stylize")
cfg = proc.create_config()
cfg.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
cfg.set_property("image", image)
cfg.set_core_object_array("drawables", [source])
cfg.set_property("style-file", Gio.File.new_for_path(case["style"]))
for name, value in case["args"].items():
    cfg.set_property(name, value)
started = time.monotonic()
rv = proc.run(cfg)
result = {
    "status": rv.index(0).value_nick,
    "seconds": time.monotonic() - started,
    "layers": [layer.get_name() for layer in image.get_layers()],
}
sys.path.insert(0, PLUGIN_DIR)
from nst_client import client, settings  # noqa: E402

installed = settings.load(Path(PLUGIN_DIR) / settings.CONFIG_NAME)
installed.transport = "zmq"
with client.connect(installed, "gimp-interactive-test") as conn:
    time.sleep(0.5)  # the daemon ends a cancelled job within one iteration
    result["daemon"] = conn.status()
with open("/io/out/interactive.json", "w") as f:
    json.dump(result, f, indent=1, default=str)
