"""Inside GIMP: the filter with no engine running (PHASE "cold") or with the one it left
running (PHASE "warm"), timed from the call ("the click") to the job's first progress.

gimp_ondemand.sh runs it twice in gimp-console-3.0 with `PHASE = "..."` set before it. The
call is plug-in-nst-stylize NONINTERACTIVE on /io/content.png; meanwhile a thread asks the
engine's status (through the plug-in's own vendored client, pyzmq) every 50 ms to see when it
first answered, when it was ready and when the job's first iteration was done. The new layer
goes to /io/out for the test to judge; the timings to /io/out/ondemand-PHASE.json.
"""

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

PLUGIN_DIR = "/home/tester/.config/GIMP/3.0/plug-ins/plug-in-nst-stylize"
sys.path.insert(0, PLUGIN_DIR)
from nst_client import client, settings  # noqa: E402

PHASE = globals().get("PHASE", "cold")
case = json.load(open("/io/ondemand.json"))


class Watch(threading.Thread):
    """The engine as a client sees it, every 50 ms, in seconds since the click."""

    def __init__(self, started: float) -> None:
        super().__init__(daemon=True)
        self.started = started
        self.stopped = threading.Event()
        self.marks: dict[str, float] = {}
        self.states: list[tuple[float, Any, Any]] = []
        self.status: dict[str, Any] = {}

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, round(time.monotonic() - self.started, 3))

    def run(self) -> None:
        quick = settings.load(Path(PLUGIN_DIR) / settings.CONFIG_NAME)
        quick.transport, quick.timeout_s = "zmq", 0.25
        with client.connect(quick, "gimp-ondemand-test") as conn:
            while not self.stopped.is_set():
                try:
                    status: dict[str, Any] = dict(conn.status())
                except client.DaemonUnavailable:
                    time.sleep(0.05)
                    continue
                self.status = status
                self.mark("answered")
                startup = status.get("startup") or {}
                state = (status.get("state"), startup.get("step"))
                if not self.states or self.states[-1][1:] != state:
                    self.states.append((round(time.monotonic() - self.started, 3), *state))
                if status.get("state") == "ready":
                    self.mark("ready")
                running = status.get("running") or {}
                if running.get("iteration", 0) >= 1:
                    self.mark("first_progress")
                time.sleep(0.05)


image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["content"]))
source = image.get_layers()[0]
proc = Gimp.get_pdb().lookup_procedure("plug-in-nst-stylize")
cfg = proc.create_config()
cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
cfg.set_property("image", image)
cfg.set_core_object_array("drawables", [source])
cfg.set_property("style-file", Gio.File.new_for_path(case["style"]))
for name, value in case["args"].items():
    cfg.set_property(name, value)
started = time.monotonic()
watch = Watch(started)
watch.start()
rv = proc.run(cfg)
seconds = time.monotonic() - started
watch.stopped.set()
watch.join(5)
result: dict[str, Any] = {
    "phase": PHASE,
    "status": rv.index(0).value_nick,
    "seconds": seconds,
    "marks": watch.marks,
    "states": watch.states,
    "engine": {k: watch.status.get(k) for k in ("pid", "on_demand", "idle_exit_s", "device")},
    "layers": [layer.get_name() for layer in image.get_layers()],
}
if rv.index(0) != Gimp.PDBStatusType.SUCCESS:
    result["error"] = Gimp.get_pdb().get_last_error()
else:
    layer = rv.index(1)
    w, h = layer.get_width(), layer.get_height()
    data = layer.get_buffer().get(
        Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.CLAMP
    )
    out = f"/io/out/ondemand-{PHASE}.raw"
    Path(out).write_bytes(bytes(data))
    result["new"] = {"name": layer.get_name(), "width": w, "height": h, "file": out}
image.delete()
with open(f"/io/out/ondemand-{PHASE}.json", "w") as f:
    json.dump(result, f, indent=1, default=str)
