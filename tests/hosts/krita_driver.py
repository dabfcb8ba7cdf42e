"""Test driver, installed as a pykrita plug-in only for the e2e test: uses the docker as a user.

Reads the job from $NST_KRITA_JOB (JSON) and works through its steps: a stylize case makes a
document, picks the style by typing its path into the docker, sets the quality, the time limit
and the working size (strength), clicks Stylize (or Cancel), waits, and writes what happened
(layers, pixels, the docker's controls and lines as they changed, screenshots); for the
README's pictures a case can also close the other documents, zoom the image to fit, pick a tool
and give the docker room. A case with regions adds each from a selection (soft edges as asked)
with the docker's button, gives it its style and strength, and records the rows. Other steps
check the docker's layout at 260 px, use its Engine settings, stop the engine or wait for it
to exit by itself. Everything goes to the job's out folder; then Krita quits. Krita's
excepthook (a modal dialog that would hang a headless run) is replaced and a watchdog
hard-exits Krita if the run stalls.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from krita import Document, Extension, Krita, Selection
from PyQt5.QtCore import QPoint, QRect, QTimer
from PyQt5.QtCore import Qt as _Qt
from PyQt5.QtGui import QCursor
from PyQt5.QtTest import QTest as _QTest
from PyQt5.QtWidgets import QApplication, QDockWidget, QLabel, QWidget

# PyQt5's stubs declare QTest's static methods as instance methods and know only the scoped
# enum names (Qt.Key.Key_Return); this driver uses the unscoped ones Krita's PyQt5 has.
QTest: Any = _QTest
Qt: Any = _Qt

JOB = json.loads(Path(os.environ["NST_KRITA_JOB"]).read_text())
OUT = Path(JOB["out"])
ART = Path(JOB["artifacts"])
REPORT: dict[str, Any] = {"errors": [], "cases": {}, "log": []}
DOCKER_ID = "neural_style_docker"
#: The docker's width in the layout checks, and the widest any of its widgets may insist on.
DOCK_WIDTH = 260
MAX_FIXED_WIDTH = 230
JOB_PROGRESS = re.compile(r"^\d+%( ·|$)")
STARTING = "Starting the style engine"
BRUSH_TOOL = "KritaShape/KisToolBrush"


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
    trigger_action("file_quit")


def trigger_action(name: str) -> None:
    action = Krita.instance().action(name)
    if action is None:
        raise RuntimeError(f"Krita has no action {name}")
    action.trigger()


def active_name(doc: Document) -> str | None:
    """The name of the document's active layer, None when it has none."""
    node = doc.activeNode()
    return node.name() if node is not None else None


def child(dock: QDockWidget, name: str) -> Any:
    widget = dock.findChild(QWidget, name)
    if widget is None:
        raise RuntimeError(f"docker has no widget named {name}")
    return widget


def text_of(dock: QDockWidget, name: str) -> str:
    return str(child(dock, name).text())


def names(doc: Any) -> list[str]:
    """Top-level layers, bottom to top (Krita's global selection shows up as a mask: skipped)."""
    return [n.name() for n in doc.rootNode().childNodes() if n.type() != "selectionmask"]


def profile_for(depth: str) -> str:
    profiles = Krita.instance().profiles("RGBA", depth)
    for name in profiles:
        if "sRGB-elle-V2-srgbtrc" in name:
            return name
    return profiles[0]


class Watcher:
    """Every 20 ms: the largest gap between ticks (how long the GUI thread was ever blocked)
    and each change of the progress bar's and the engine line's text, timed from start()."""

    def __init__(self, dock: QDockWidget) -> None:
        self.dock = dock
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self.tick)
        self.began = self.last = 0.0
        self.worst = 0.0
        self.seen: list[tuple[float, str, str]] = []
        self.on_change: Callable[[str, str], None] | None = None

    def start(self) -> None:
        self.began = self.last = time.monotonic()
        self.worst = 0.0
        self.seen = []
        self.tick()
        self.timer.start()

    def tick(self) -> None:
        now = time.monotonic()
        self.worst = max(self.worst, now - self.last)
        self.last = now
        for which, name in (("bar", "nst_progress"), ("engine", "nst_engine_state")):
            text = text_of(self.dock, name)
            if not any(w == which for _, w, _ in self.seen) or self.latest(which) != text:
                self.seen.append((round(now - self.began, 3), which, text))
                if self.on_change is not None:
                    self.on_change(which, text)

    def latest(self, which: str) -> str:
        return next(t for _, w, t in reversed(self.seen) if w == which)

    def first(self, which: str, test: Callable[[str], bool]) -> float | None:
        return next((s for s, w, t in self.seen if w == which and test(t)), None)

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


def grab_screen(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    screen = QApplication.primaryScreen()
    assert screen is not None
    screen.grabWindow(0).save(str(path))  # type: ignore[arg-type]  # 0 = the whole screen; the stubs want a sip.voidptr


def grab_docker(dock: QDockWidget, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dock.grab().save(str(path))


def engine_pid(dock: QDockWidget) -> int | None:
    """The engine's process id, from the details the docker shows (`pid N`)."""
    found = re.search(r"\bpid (\d+)", text_of(dock, "nst_engine_details"))
    return int(found.group(1)) if found else None


def process_state(pid: int) -> str:
    """'gone', or the state letter in /proc (R, S, Z for a zombie nobody reaped...)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat.rsplit(")", 1)[1].split()[0]


# --- steps -----------------------------------------------------------------------------------


def run_case(window: Any, dock: Any, case: dict[str, Any]) -> Step:
    """One stylize job from a fresh document, as a user does it."""
    name = case["name"]
    rec: dict[str, Any] = {"outcomes": []}
    REPORT["cases"][name] = rec
    log(f"case {name}")
    k = Krita.instance()
    if case.get("close_others"):  # one document tab, as in a picture for people to look at
        for other in k.documents():
            other.setModified(False)
            other.close()
        yield 200
    w, h, depth = case["width"], case["height"], case["depth"]
    doc = k.createDocument(w, h, f"nst-{name}", "RGBA", depth, profile_for(depth), 72.0)
    if case.get("file_name"):  # the tab shows this name instead of "[Not Saved]"
        doc.setFileName(str(OUT / case["file_name"]))
    window.addView(doc)
    doc.waitForDone()
    yield 200
    restore = arrange_dockers(window.qwindow(), dock, case.get("dockers"))
    if case.get("tool"):  # e.g. the hand: a brush's outline would sit on the picture
        use_tool(case["tool"])
    yield 200
    view = window.activeView()
    if view is not None and view.canvas() is not None:
        zoom = case.get("zoom", 8.0)  # whole image on screen
        if zoom == "fit":
            zoom = fit_zoom(window.qwindow(), w, h)
        rec["zoom"] = zoom
        view.canvas().setZoomLevel(float(zoom))
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
        if active_name(doc) != "Photo":
            doc.setActiveNode(source)
            return False
        return True

    yield (photo_active, 10.0)
    if case.get("active") == "group":  # a layer the docker must refuse, with a message
        group = doc.createGroupLayer("Group")
        doc.rootNode().addChildNode(group, top)
        doc.waitForDone()

        def group_active() -> bool:
            if active_name(doc) != "Group":
                doc.setActiveNode(group)
                return False
            return True

        yield (group_active, 10.0)
    if case.get("selection"):
        sx, sy, sw, sh = case["selection"]
        selection = Selection()
        selection.select(sx, sy, sw, sh, 255)
        doc.setSelection(selection)
        yield 100
    rec["active_before"] = active_name(doc)
    rec["layers_before"] = names(doc)
    rec["source_before"] = str(OUT / f"{name}_source_before.raw")
    Path(rec["source_before"]).write_bytes(bytes(source.pixelData(0, 0, w, h)))
    rec["engine_before"] = text_of(dock, "nst_engine_state")

    # The user's part: type the style path, set the quality, time limit and size, click
    # Stylize.
    path_edit = child(dock, "nst_style_path")
    path_edit.clear()
    QTest.keyClicks(path_edit, case["style"])
    QTest.keyClick(path_edit, Qt.Key_Return)
    quality = child(dock, "nst_quality")
    quality.setCurrentIndex(quality.findData(case.get("quality", "normal")))
    time_limit = child(dock, "nst_time_limit")
    time_limit.setValue(int(case.get("time_limit_s", 0)))  # 0: Off
    size = child(dock, "nst_size")
    size.setValue(int(case.get("size", 0)))  # 0: Auto, the planner's
    if "strength" in case:
        child(dock, "nst_strength").setValue(case["strength"])
    rec["controls"] = {
        "quality": quality.currentData(),
        "quality_enabled": quality.isEnabled(),
        "time_limit": time_limit.text(),
        "size": size.text(),
    }
    if "regions" in case:
        yield from add_regions(doc, dock, case, rec)
    outcome: list[str] = []
    dock.job_finished.connect(outcome.append)
    shots: dict[str, str] = {}
    watcher = Watcher(dock)

    def on_change(which: str, text: str) -> None:
        if which != "bar":
            return
        if case.get("cancel") and JOB_PROGRESS.match(text):
            cancel = child(dock, "nst_cancel")
            if cancel.isEnabled():
                QTest.mouseClick(cancel, Qt.LeftButton)
        if case.get("shot_starting") and text.startswith(STARTING):
            # Each start-up step over the last: the picture ends with the furthest one.
            shots["starting"] = str(ART / f"krita_docker_starting_engine_{JOB['tag']}.png")
            QTimer.singleShot(0, lambda: grab_docker(dock, Path(shots["starting"])))
        progress = child(dock, "nst_progress")
        # Far enough into the job for the preview to show the style taking hold.
        at = int(1000 * case.get("during_at", 0.3))
        if case.get("screenshots") and JOB_PROGRESS.match(text) and progress.value() >= at:
            if "during" not in shots:
                shots["during"] = str(ART / f"krita_{name}_during_run.png")
                shots["docker_during"] = str(ART / f"krita_{name}_docker_during_run.png")

                def grab_both() -> None:
                    grab_screen(Path(shots["during"]))
                    grab_docker(dock, Path(shots["docker_during"]))

                QTimer.singleShot(0, grab_both)

    watcher.on_change = on_change
    watcher.start()
    started = time.monotonic()
    QTest.mouseClick(child(dock, "nst_stylize"), Qt.LeftButton)
    finished = yield (lambda: bool(outcome), float(case.get("timeout_s", 120)))
    rec["gui_max_gap_s"] = watcher.stop()
    rec["job_s"] = time.monotonic() - started
    dock.job_finished.disconnect(outcome.append)
    rec["seen"] = watcher.seen
    # Click to the first sign of work: the engine starting, or the job's own progress.
    rec["first_feedback_s"] = watcher.first(
        "bar", lambda t: t.startswith(STARTING) or bool(JOB_PROGRESS.match(t))
    )
    rec["first_progress_s"] = watcher.first("bar", lambda t: bool(JOB_PROGRESS.match(t)))
    yield 300  # let the canvas and docker repaint before the screenshots
    rec["finished"] = finished
    rec["outcomes"] = outcome
    rec["status"] = text_of(dock, "nst_status")
    rec["engine"] = text_of(dock, "nst_engine_state")
    rec["engine_details"] = text_of(dock, "nst_engine_details")
    rec["progress_text"] = child(dock, "nst_progress").text()
    pixmap = child(dock, "nst_preview").pixmap()
    rec["preview_has_image"] = pixmap is not None and not pixmap.isNull()
    rec["layers_after"] = names(doc)
    active = doc.activeNode()
    rec["active_after"] = active.name() if active else None
    rec["active_after_type"] = active.type() if active else None
    rec["source_after"] = str(OUT / f"{name}_source_after.raw")
    Path(rec["source_after"]).write_bytes(bytes(source.pixelData(0, 0, w, h)))
    rec["composite"] = str(OUT / f"{name}_composite.raw")
    Path(rec["composite"]).write_bytes(bytes(doc.pixelData(0, 0, w, h)))
    pid = engine_pid(dock)
    if pid is not None:
        rec["engine_pid"] = pid
        rec["engine_cmdline"] = Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]
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
            trigger_action("edit_undo")
            doc.waitForDone()
            yield 200
            rec["layers_after_undo"] = names(doc)
            Path(OUT / f"{name}_source_after_undo.raw").write_bytes(
                bytes(source.pixelData(0, 0, w, h))
            )
            trigger_action("edit_redo")
            doc.waitForDone()
            yield 200
            rec["layers_after_redo"] = names(doc)
    rec["screenshots"] = shots
    restore()
    if case.get("tool"):
        use_tool(BRUSH_TOOL)
    write_report()


def select(doc: Document, rect: list[int] | None, feather: list[Any] | None) -> None:
    """Select a rectangle (None: nothing); feather ["left" or "right", px] fades that side
    from all to nothing, as a feathered selection's soft edge."""
    if rect is None:
        doc.setSelection(None)
        return
    x, y, w, h = rect
    row = [255] * w
    if feather:
        side, px = feather
        for i in range(px):
            value = round(255 * (i + 1) / (px + 1))
            row[i if side == "left" else w - 1 - i] = value
    selection = Selection()
    selection.setPixelData(bytes(row) * h, x, y, w, h)
    doc.setSelection(selection)


def add_regions(doc: Document, dock: Any, case: dict[str, Any], rec: dict[str, Any]) -> Step:
    """Each region as a user adds it: select, click "Selection" under "Add a region from",
    then its style (what the style button's file dialog gives) and its strength slider."""
    panel = child(dock, "nst_regions")
    rec["region_messages"] = []
    for spec in case["regions"]:
        select(doc, spec.get("rect"), spec.get("feather"))
        yield 150
        before = len(panel.region_rows())
        QTest.mouseClick(child(dock, "nst_region_from_selection"), Qt.LeftButton)
        yield 100
        rec["region_messages"].append(text_of(dock, "nst_status"))
        if len(panel.region_rows()) == before:
            continue  # refused: the message says why
        if spec.get("style"):
            panel.set_region_style(panel.region_rows()[-1].region.ident, spec["style"])
        if "strength" in spec:
            panel.region_rows()[-1].strength.setValue(spec["strength"])
        yield 100
    if case.get("deselect"):  # as an artist would, so no marching ants cover the picture
        doc.setSelection(None)
        yield 100
    rows = panel.region_rows()
    rec["region_labels"] = [row.words.text() for row in rows]
    rec["region_strengths"] = [row.strength.value() for row in rows]
    rec["region_styles"] = [row.region.style_path for row in rows]
    rec["region_thumbnails"] = [
        [row.mask_label.pixmap().width(), row.mask_label.pixmap().height()] for row in rows
    ]
    rec["region_style_icons"] = [not row.style_button.icon().isNull() for row in rows]
    if case.get("show_regions"):  # the regions in view, for the picture
        dock.scroll_area.ensureWidgetVisible(child(dock, "nst_outside_regions"))
        yield 200


def layout_problems(dock: Any) -> list[str]:
    """What a user would see as broken: a widget (partly) outside the scroll area's viewport,
    visible widgets of one parent overlapping, a horizontal scroll bar, a forced width."""
    scroll = dock.scroll_area
    content, viewport = scroll.widget(), scroll.viewport()
    problems: list[str] = []
    if scroll.horizontalScrollBar().isVisible():
        problems.append("a horizontal scroll bar")
    if content.width() > viewport.width():
        problems.append(f"content {content.width()} px in a {viewport.width()} px viewport")
    for parent in (content, child(dock, "nst_engine_panel"), child(dock, "nst_settings")):
        kids = [
            w
            for w in parent.findChildren(QWidget, options=Qt.FindDirectChildrenOnly)
            if w.isVisible()
        ]
        for w in kids:
            name = w.objectName() or f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}"
            rect = QRect(w.mapTo(content, QPoint(0, 0)), w.size())
            if rect.left() < 0 or rect.right() >= viewport.width():
                problems.append(f"{name} spans x {rect.left()}..{rect.right()}")
            if max(w.minimumWidth(), w.minimumSizeHint().width()) > MAX_FIXED_WIDTH:
                problems.append(f"{name} needs {w.minimumSizeHint().width()} px")
            if isinstance(w, QLabel) and w.text() and not w.wordWrap():
                if w.objectName() not in (
                    "nst_strength_value",
                    "nst_style_thumbnail",
                    "nst_preview",
                ):
                    problems.append(f"{name} does not wrap")
        for i, a in enumerate(kids):
            for b in kids[i + 1 :]:
                if a.geometry().intersects(b.geometry()):
                    problems.append(f"{a.objectName() or a} overlaps {b.objectName() or b}")
    return problems


def size_docker(qwindow: Any, dock: Any) -> None:
    """DOCK_WIDTH wide, and more than the default workspace's sliver of height below the
    Layers and Brush Presets dockers (as a user would drag it)."""
    qwindow.resizeDocks([dock], [DOCK_WIDTH], Qt.Horizontal)
    qwindow.resizeDocks([dock], [int(qwindow.height() * 0.6)], Qt.Vertical)


def arrange_dockers(qwindow: Any, dock: Any, how: dict[str, Any] | None) -> Callable[[], None]:
    """For a picture of the docker in use: this wide, beside only the named dockers of its
    column (each that high), the docker given the rest, so it shows whole. Returns what puts
    the workspace back (the sizes the other steps expect)."""
    if not how:
        return lambda: None
    area = qwindow.dockWidgetArea(dock)
    column = [
        d
        for d in qwindow.findChildren(QDockWidget)
        if d is not dock and not d.isHidden() and qwindow.dockWidgetArea(d) == area
    ]
    keep = {d: how["keep"][d.windowTitle()] for d in column if d.windowTitle() in how["keep"]}
    hidden = [d for d in column if d not in keep]
    shown = [d for d in hidden if d.isVisible()]  # the current tab of a tabbed group
    for d in hidden:
        d.hide()
    qwindow.resizeDocks([dock], [int(how["width"])], Qt.Horizontal)
    rest = qwindow.height() - sum(keep.values())
    qwindow.resizeDocks([*keep, dock], [*keep.values(), rest], Qt.Vertical)

    def restore() -> None:
        for d in hidden:
            d.show()
        for d in shown:
            d.raise_()
        size_docker(qwindow, dock)

    return restore


def use_tool(name: str) -> None:
    action = Krita.instance().action(name)
    if action is None:
        raise RuntimeError(f"Krita has no tool action {name}")
    action.trigger()


def fit_zoom(qwindow: Any, width: int, height: int) -> float:
    """The zoom, in quarter steps, at which the image fills most of the canvas area."""
    area = qwindow.centralWidget().size()
    fit = min((area.width() - 60) / width, (area.height() - 90) / height)
    return max(0.25, int(fit * 4) / 4)


def check_layout(window: Any, dock: Any) -> Step:
    """The docker 260 px wide in this screen's window: geometry from inside, screenshots."""
    tag = JOB["tag"]
    log(f"layout {tag}")
    rec: dict[str, Any] = {}
    REPORT["layout"] = rec
    qwindow = window.qwindow()
    size_docker(qwindow, dock)
    yield 500
    rec["window"] = [qwindow.width(), qwindow.height()]
    rec["dock"] = [dock.width(), dock.height()]
    rec["floating"] = dock.isFloating()
    toggle = child(dock, "nst_settings_toggle")
    scroll = dock.scroll_area
    for expanded in (False, True):
        toggle.setChecked(expanded)
        yield 300
        if expanded:  # show the settings, as a user scrolling down to them would
            scroll.ensureWidgetVisible(child(dock, "nst_settings_apply"))
        else:
            scroll.verticalScrollBar().setValue(0)
        yield 200
        key = "settings" if expanded else "collapsed"
        rec[key] = {
            "problems": layout_problems(dock),
            "viewport": [scroll.viewport().width(), scroll.viewport().height()],
            "content": [scroll.widget().width(), scroll.widget().height()],
            "vertical_scroll": scroll.verticalScrollBar().isVisible(),
        }
        suffix = "_settings" if expanded else ""
        rec[key]["screenshot"] = str(ART / f"krita_docker{suffix}_{tag}.png")
        grab_docker(dock, Path(rec[key]["screenshot"]))
    # Everything the docker holds at this width, settings unfolded, as one picture.
    rec["content_screenshot"] = str(ART / f"krita_docker_content_{tag}.png")
    scroll.widget().grab().save(rec["content_screenshot"])
    toggle.setChecked(False)
    scroll.verticalScrollBar().setValue(0)
    yield 200
    rec["window_screenshot"] = str(ART / f"krita_window_{tag}.png")
    grab_screen(Path(rec["window_screenshot"]))
    write_report()


def apply_settings(dock: Any, step: dict[str, Any]) -> Step:
    """Use the docker's Engine settings as a user: open them, change, press Apply."""
    log(f"settings {step['values']}")
    toggle = child(dock, "nst_settings_toggle")
    if not toggle.isChecked():
        QTest.mouseClick(toggle, Qt.LeftButton)
    yield 200
    for name, value in step["values"].items():
        widget = child(dock, f"nst_settings_{name}")
        if isinstance(value, bool):
            widget.setChecked(value)
        elif isinstance(value, int):
            widget.setValue(value)
        else:
            widget.setText(value)
    QTest.mouseClick(child(dock, "nst_settings_apply"), Qt.LeftButton)
    yield 200
    REPORT["settings_message"] = text_of(dock, "nst_settings_message")
    QTest.mouseClick(toggle, Qt.LeftButton)
    yield 100


def stop_engine(dock: Any) -> Step:
    """Ask the engine to exit, through the plug-in's own client (as `nst daemon stop` does)."""
    from neural_style import link

    from nst_client import launcher

    REPORT["engine_stopped"] = launcher.stop(link.load_settings())
    log(f"engine stopped: {REPORT['engine_stopped']}")
    ok = yield (lambda: "ready" not in text_of(dock, "nst_engine_state"), 15.0)
    REPORT["engine_after_stop"] = text_of(dock, "nst_engine_state")
    REPORT["engine_line_followed_stop"] = ok


def await_engine_exit(dock: Any, step: dict[str, Any]) -> Step:
    """Wait, doing nothing, for the engine started on demand to exit after its idle time;
    the engine line must then say it is not running."""
    rec: dict[str, Any] = {}
    REPORT["engine_exit"] = rec
    pid = engine_pid(dock)
    rec["pid"] = pid
    log(f"waiting for the engine (pid {pid}) to exit")
    waited = time.monotonic()
    rec["said_not_running"] = yield (
        lambda: "not running" in text_of(dock, "nst_engine_state"),
        float(step["timeout_s"]),
    )
    rec["waited_s"] = time.monotonic() - waited
    rec["engine"] = text_of(dock, "nst_engine_state")
    rec["engine_details"] = text_of(dock, "nst_engine_details")
    if pid is not None:
        yield (lambda: process_state(pid) == "gone", 10.0)
        rec["process"] = process_state(pid)
    dock.scroll_area.ensureWidgetVisible(child(dock, "nst_engine_state"))
    yield 200
    grab_docker(dock, ART / f"krita_docker_engine_exited_{JOB['tag']}.png")


def main_steps() -> Step:
    window = Krita.instance().activeWindow()
    if window is None:
        raise RuntimeError("Krita has no main window")
    log(f"window {window}")
    width, height = JOB.get("screen", [1600, 1200])
    window.qwindow().setGeometry(0, 0, width, height)
    QCursor.setPos(width - 10, 5)  # keep the brush outline off the canvas in screenshots
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
    size_docker(window.qwindow(), dock)
    # What this Krita's Python has, and how the plug-in reaches the engine from it.
    from neural_style import link

    REPORT["zmq_importable"] = importlib.util.find_spec("zmq") is not None
    settings = link.load_settings()
    REPORT["transport"] = settings.resolved_transport()
    REPORT["bridge_command"] = settings.bridge_command()
    # The docker watches the engine while it is shown; give it a moment to look.
    ok = yield (lambda: "checking" not in text_of(dock, "nst_engine_state"), 15.0)
    REPORT["engine_answered"] = ok
    REPORT["engine_at_start"] = text_of(dock, "nst_engine_state")
    REPORT["engine_details_at_start"] = text_of(dock, "nst_engine_details")
    for step in JOB["steps"]:
        kind = step.get("kind", "stylize")
        if kind == "stylize":
            yield from run_case(window, dock, step)
        elif kind == "layout":
            yield from check_layout(window, dock)
        elif kind == "settings":
            yield from apply_settings(dock, step)
        elif kind == "stop_engine":
            yield from stop_engine(dock)
        elif kind == "await_engine_exit":
            yield from await_engine_exit(dock, step)
        else:
            raise ValueError(f"unknown step {kind!r}")


def start() -> None:
    log("window created")
    Runner(main_steps()).advance()


class DriverExtension(Extension):
    def setup(self) -> None:
        log("setup")
        notifier = Krita.instance().notifier()
        notifier.setActive(True)
        notifier.windowCreated.connect(lambda: QTimer.singleShot(500, start))

    def createActions(self, window: Any) -> None:
        pass


log("loaded")
Krita.instance().addExtension(DriverExtension(Krita.instance()))
