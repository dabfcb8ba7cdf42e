"""Test driver, installed as a pykrita plug-in only for the e2e test: uses the docker as a user.

Reads the job from $NST_KRITA_JOB (JSON), and for each case makes a document, picks the style
by typing its path into the docker, sets quality/size, clicks Stylize (or Cancel), waits, and
writes what happened (layers, pixels, status lines, screenshots) to the job's out folder, then
quits Krita. Krita's excepthook (a modal dialog that would hang a headless run) is replaced
and a watchdog hard-exits Krita if the run stalls.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from krita import Extension, Krita, Selection
from PyQt5.QtCore import Qt as _Qt
from PyQt5.QtCore import QTimer
from PyQt5.QtGui import QCursor
from PyQt5.QtTest import QTest as _QTest
from PyQt5.QtWidgets import QApplication, QDockWidget, QWidget

# PyQt5's stubs declare QTest's static methods as instance methods and know only the scoped
# enum names (Qt.Key.Key_Return); this driver uses the unscoped ones Krita's PyQt5 has.
QTest: Any = _QTest
Qt: Any = _Qt

JOB = json.loads(Path(os.environ["NST_KRITA_JOB"]).read_text())
OUT = Path(JOB["out"])
ART = Path(JOB["artifacts"])
REPORT: dict[str, Any] = {"errors": [], "cases": {}, "log": []}
DOCKER_ID = "neural_style_docker"


def log(text: str) -> None:
    line = f"{time.monotonic() - START:7.2f} {text}"
    REPORT["log"].append(line)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "driver.log", "a") as f:
        print(line, file=f)


def write_report() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(REPORT, indent=1))


def excepthook(kind: type, value: BaseException, tb: Any) -> None:
    REPORT["errors"].append("".join(traceback.format_exception(kind, value, tb)))
    write_report()


def watchdog() -> None:
    time.sleep(float(JOB.get("watchdog_s", 240)))
    REPORT["errors"].append("watchdog: the run took too long")
    write_report()
    os._exit(3)


START = time.monotonic()
sys.excepthook = excepthook
threading.Thread(target=watchdog, daemon=True).start()

Step = Generator[Any, Any, None]
RUNNERS: list[Any] = []


class Runner:
    """Drives a generator: `yield ms` sleeps, `yield (predicate, timeout_s)` polls until true."""

    def __init__(self, steps: Step) -> None:
        self.steps = steps
        # Keep a strong reference: PyQt's singleShot does not keep a bound method's object.
        RUNNERS.append(self)

    def advance(self, value: Any = None) -> None:
        try:
            command = self.steps.send(value)
        except StopIteration:
            finish()
            return
        except Exception:
            excepthook(*sys.exc_info())
            finish()
            return
        if isinstance(command, int):
            QTimer.singleShot(command, self.advance)
        else:
            predicate, timeout = command
            self.poll(predicate, time.monotonic() + timeout)

    def poll(self, predicate: Callable[[], bool], deadline: float) -> None:
        try:
            done = predicate()
        except Exception:
            excepthook(*sys.exc_info())
            done = False
        if done or time.monotonic() > deadline:
            self.advance(bool(done))
        else:
            QTimer.singleShot(50, lambda: self.poll(predicate, deadline))


def finish() -> None:
    log("finish")
    write_report()
    for doc in Krita.instance().documents():
        doc.setModified(False)
    Krita.instance().action("file_quit").trigger()


def child(dock: QDockWidget, name: str) -> Any:
    widget = dock.findChild(QWidget, name)
    if widget is None:
        raise RuntimeError(f"docker has no widget named {name}")
    return widget


def names(doc: Any) -> list[str]:
    """Top-level layers, bottom to top (Krita's global selection shows up as a mask: skipped)."""
    return [n.name() for n in doc.rootNode().childNodes() if n.type() != "selectionmask"]


def profile_for(depth: str) -> str:
    profiles = Krita.instance().profiles("RGBA", depth)
    for name in profiles:
        if "sRGB-elle-V2-srgbtrc" in name:
            return name
    return profiles[0]


class LoopMonitor:
    """Largest gap between 20 ms timer ticks: how long the GUI thread was ever blocked."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self.tick)
        self.last = 0.0
        self.worst = 0.0

    def start(self) -> None:
        self.last, self.worst = time.monotonic(), 0.0
        self.timer.start()

    def tick(self) -> None:
        now = time.monotonic()
        self.worst = max(self.worst, now - self.last)
        self.last = now

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


def grab_screen(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    screen = QApplication.primaryScreen()
    assert screen is not None
    screen.grabWindow(0).save(str(path))  # type: ignore[arg-type]  # 0 = the whole screen; the stubs want a sip.voidptr


def run_case(window: Any, dock: Any, case: dict[str, Any]) -> Step:
    name = case["name"]
    rec: dict[str, Any] = {"outcomes": []}
    REPORT["cases"][name] = rec
    log(f"case {name}")
    k = Krita.instance()
    w, h, depth = case["width"], case["height"], case["depth"]
    doc = k.createDocument(w, h, f"nst-{name}", "RGBA", depth, profile_for(depth), 72.0)
    window.addView(doc)
    doc.waitForDone()
    yield 200
    view = window.activeView()
    if view is not None and view.canvas() is not None:
        view.canvas().setZoomLevel(float(case.get("zoom", 8.0)))  # whole image on screen
    source = doc.rootNode().childNodes()[0]
    source.setName("Photo")
    source.setPixelData(Path(case["content"]).read_bytes(), 0, 0, w, h)
    top = doc.createNode("Top", "paintlayer")
    doc.rootNode().addChildNode(top, source)
    doc.waitForDone()
    doc.refreshProjection()
    yield 200

    def photo_active() -> bool:
        # Krita switches the active layer through the view asynchronously: ask until it did.
        if doc.activeNode().name() != "Photo":
            doc.setActiveNode(source)
            return False
        return True

    yield (photo_active, 10.0)
    if case.get("active") == "group":  # a layer the docker must refuse, with a message
        group = doc.createGroupLayer("Group")
        doc.rootNode().addChildNode(group, top)
        doc.waitForDone()
        yield (lambda: doc.activeNode().name() == "Group" or bool(doc.setActiveNode(group)), 10.0)
    if case.get("selection"):
        sx, sy, sw, sh = case["selection"]
        selection = Selection()
        selection.select(sx, sy, sw, sh, 255)
        doc.setSelection(selection)
        yield 100
    rec["active_before"] = doc.activeNode().name()
    rec["layers_before"] = names(doc)
    rec["source_before"] = str(OUT / f"{name}_source_before.raw")
    Path(rec["source_before"]).write_bytes(bytes(source.pixelData(0, 0, w, h)))

    # The user's part: type the style path, set quality and size, click Stylize.
    path_edit = child(dock, "nst_style_path")
    path_edit.clear()
    QTest.keyClicks(path_edit, case["style"])
    QTest.keyClick(path_edit, Qt.Key_Return)
    child(dock, "nst_iterations").setValue(case["iterations"])
    child(dock, "nst_size").setValue(case["size"])
    outcome: list[str] = []
    dock.job_finished.connect(outcome.append)
    progress = child(dock, "nst_progress")
    shots: dict[str, str] = {}

    def on_progress(value: int) -> None:
        if case.get("cancel") and value > 0 and child(dock, "nst_cancel").isEnabled():
            QTest.mouseClick(child(dock, "nst_cancel"), Qt.LeftButton)
        if case.get("screenshots") and value >= 300 and "during" not in shots:
            shots["during"] = str(ART / f"krita_{name}_during_run.png")
            shots["docker_during"] = str(ART / f"krita_{name}_docker_during_run.png")

            def grab_both() -> None:
                grab_screen(Path(shots["during"]))
                dock.grab().save(shots["docker_during"])

            QTimer.singleShot(0, grab_both)

    progress.valueChanged.connect(on_progress)
    monitor = LoopMonitor()
    monitor.start()
    started = time.monotonic()
    QTest.mouseClick(child(dock, "nst_stylize"), Qt.LeftButton)
    finished = yield (lambda: bool(outcome), float(case.get("timeout_s", 120)))
    rec["gui_max_gap_s"] = monitor.stop()
    rec["job_s"] = time.monotonic() - started
    progress.valueChanged.disconnect(on_progress)
    dock.job_finished.disconnect(outcome.append)
    yield 300  # let the canvas and docker repaint before the screenshots
    rec["finished"] = finished
    rec["outcomes"] = outcome
    rec["status"] = child(dock, "nst_status").text()
    rec["daemon_status"] = child(dock, "nst_daemon_status").text()
    rec["progress_text"] = progress.text()
    rec["preview_has_image"] = (
        child(dock, "nst_preview").pixmap() is not None
        and not child(dock, "nst_preview").pixmap().isNull()
    )
    rec["layers_after"] = names(doc)
    active = doc.activeNode()
    rec["active_after"] = active.name() if active else None
    rec["active_after_type"] = active.type() if active else None
    rec["source_after"] = str(OUT / f"{name}_source_after.raw")
    Path(rec["source_after"]).write_bytes(bytes(source.pixelData(0, 0, w, h)))
    rec["composite"] = str(OUT / f"{name}_composite.raw")
    Path(rec["composite"]).write_bytes(bytes(doc.pixelData(0, 0, w, h)))
    if outcome == ["done"]:
        layer = dock.last_layer
        rec["result_name"] = layer.name()
        rec["result_depth"] = layer.colorDepth()
        rec["result"] = str(OUT / f"{name}_result.raw")
        Path(rec["result"]).write_bytes(bytes(layer.pixelData(0, 0, w, h)))
        if case.get("screenshots"):
            shots["result"] = str(ART / f"krita_{name}_result.png")
            grab_screen(Path(shots["result"]))
        if case.get("undo"):
            k.action("edit_undo").trigger()
            doc.waitForDone()
            yield 200
            rec["layers_after_undo"] = names(doc)
            Path(OUT / f"{name}_source_after_undo.raw").write_bytes(
                bytes(source.pixelData(0, 0, w, h))
            )
            k.action("edit_redo").trigger()
            doc.waitForDone()
            yield 200
            rec["layers_after_redo"] = names(doc)
    rec["screenshots"] = shots
    write_report()


def main_steps() -> Step:
    window = Krita.instance().activeWindow()
    log(f"window {window}")
    window.qwindow().setGeometry(0, 0, 1600, 1200)
    QCursor.setPos(1590, 5)  # keep the brush outline off the canvas in screenshots
    log("geometry set")
    yield 300
    if JOB.get("prime"):  # only building the profile's resource database
        return
    docks = [d for d in window.qwindow().findChildren(QDockWidget) if d.objectName() == DOCKER_ID]
    REPORT["docker_found"] = bool(docks)
    if not docks:
        raise RuntimeError("the Neural Style docker is not in the main window")
    dock = docks[0]
    REPORT["docker_visible_at_start"] = dock.isVisible()
    if not dock.isVisible():
        dock.show()
    dock.raise_()
    # The docker checks the daemon on creation; give it a moment to say hello.
    ok = yield (lambda: "checking" not in dock.findChild(QWidget, "nst_daemon_status").text(), 15.0)
    REPORT["daemon_status_at_start"] = dock.findChild(QWidget, "nst_daemon_status").text()
    REPORT["daemon_answered"] = ok
    for case in JOB["cases"]:
        yield from run_case(window, dock, case)


def start() -> None:
    log("window created")
    Runner(main_steps()).advance()


class DriverExtension(Extension):
    def setup(self) -> None:
        log("setup")
        notifier = Krita.instance().notifier()
        notifier.setActive(True)
        notifier.windowCreated.connect(lambda: QTimer.singleShot(500, start))

    def createActions(self, window: Any) -> None:  # noqa: N802 (Krita's name)
        pass


log("loaded")
Krita.instance().addExtension(DriverExtension(Krita.instance()))
