"""The Krita docker without Krita: layers in and out, and the docker's widgets through a job.

tests/unit/krita_standin.py stands in for Krita's `krita` module; Qt runs offscreen. Behind
the docker's real worker threads and a real nst_client Client sits FakeDaemon, a transport
that answers as the daemon would. No processes, no sockets, no torch.
"""

from __future__ import annotations

import queue
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import krita_standin
import pytest
from krita_standin import Document, Krita, Node, Selection
from PyQt5.QtCore import QPoint, QRect, Qt, QThread
from PyQt5.QtGui import QColor, QImage
from PyQt5.QtTest import QTest as _QTest
from PyQt5.QtWidgets import QLabel, QScrollBar, QWidget

import nst_client
from nst_client import launcher, layouts, strength
from nst_client import protocol as P
from nst_client import settings as settings_mod
from nst_client.client import Client, JobCancelled, Received
from nst_client.settings import CONFIG_NAME, Settings

krita_standin.load_plugin()
from neural_style import docker, images, layer_ops, link, regions, widgets, worker  # noqa: E402

W, H = 32, 24
ENDPOINT = "tcp://127.0.0.1:1"
ENV_NAMES = (
    "NST_ENDPOINT",
    "NST_TRANSPORT",
    "NST_PYTHON",
    "NST_TIMEOUT",
    "NST_CURVE_SERVER_KEY",
    "NST_CURVE_CLIENT_CERT",
    "NST_START_ON_DEMAND",
    "NST_DAEMON",
    "NST_IDLE_EXIT",
)
#: The widest any widget of the docker may insist on being (a 260 px docker's viewport).
MAX_FIXED_WIDTH = 230
FIND_DIRECT = Qt.FindChildOption.FindDirectChildrenOnly
#: PyQt5's stubs declare QTest's static methods as instance methods.
QTest: Any = _QTest


# --- documents -------------------------------------------------------------------------------


def _pattern(depth: str, width: int = W, height: int = H, alpha: int = 255) -> bytes:
    """Krita pixelData (B,G,R,A) of a gradient: every pixel differs, R != B everywhere."""
    values = []
    for y in range(height):
        for x in range(width):
            b, g, r = 4 * x + 1, 8 * y + 2, 200 - x - y
            values += [b, g, r, alpha]
    if depth == "U8":
        return bytes(values)
    # Not multiples of 257, so a 16-bit layer that went through 8 bits would show.
    return struct.pack(f"<{len(values)}H", *(min(v * 257 + 3, 65535) for v in values))


def _document(depth: str = "U8", width: int = W, height: int = H, alpha: int = 255) -> Document:
    """A document with layers [Photo, Top]; Photo holds the pattern and is active."""
    doc = Document(width, height, "test", "RGBA", depth)
    photo = doc.rootNode().childNodes()[0]
    photo.setName("Photo")
    photo.setPixelData(_pattern(depth, width, height, alpha), 0, 0, width, height)
    doc.rootNode().addChildNode(doc.createNode("Top", "paintlayer"), photo)
    Krita.instance().setActiveDocument(doc)
    return doc


def _names(doc: Document) -> list[str]:
    return [n.name() for n in doc.rootNode().childNodes()]


def _layer(doc: Document, name: str) -> Node:
    return next(n for n in doc.rootNode().childNodes() if n.name() == name)


def _crop(data: bytes, width: int, bpp: int, x: int, y: int, w: int, h: int) -> bytes:
    rows = [data[((y + r) * width + x) * bpp : ((y + r) * width + x + w) * bpp] for r in range(h)]
    return b"".join(rows)


@pytest.fixture(autouse=True)
def fresh_krita() -> Krita:
    return krita_standin.reset()


# --- capture ---------------------------------------------------------------------------------


@pytest.mark.parametrize("depth,dtype", [("U8", "u8"), ("U16", "u16")])
def test_capture_reads_the_active_layer_as_wire_rgba(depth: str, dtype: str) -> None:
    doc = _document(depth)
    cap = layer_ops.capture(doc)
    assert (cap.x, cap.y, cap.width, cap.height, cap.depth, cap.dtype) == (0, 0, W, H, depth, dtype)
    assert cap.source_name == "Photo" and cap.mask is None
    assert cap.node_id == _layer(doc, "Photo").uniqueId()
    size = 1 if depth == "U8" else 2
    first = cap.wire[: 4 * size]  # wire order is R,G,B,A: Krita's B and R swapped
    assert first == layouts.swap_red_blue(_pattern(depth)[: 4 * size], dtype)
    assert cap.wire == layouts.krita_to_wire(_pattern(depth), depth)[0]
    desc, data = cap.content()
    assert desc == layouts.describe(W, H, 4, dtype, 1) and data == cap.wire


def test_capture_inside_a_soft_selection() -> None:
    doc = _document("U8")
    selection = Selection()
    selection.select(4, 2, 20, 16, 255)
    selection.select(4, 2, 1, 16, 128)  # a soft left edge
    doc.setSelection(selection)
    cap = layer_ops.capture(doc)
    assert (cap.x, cap.y, cap.width, cap.height) == (4, 2, 20, 16)
    assert cap.wire == layouts.swap_red_blue(_crop(_pattern("U8"), W, 4, 4, 2, 20, 16), "u8")
    assert cap.mask == (bytes([128]) + bytes([255]) * 19) * 16


def test_capture_clips_the_selection_to_the_canvas() -> None:
    doc = _document("U8")
    selection = Selection()
    selection.select(-10, 4, 30, 40, 255)
    doc.setSelection(selection)
    cap = layer_ops.capture(doc)
    assert (cap.x, cap.y, cap.width, cap.height) == (0, 4, 20, 20)
    outside = Selection()
    outside.select(W + 5, 0, 20, 20, 255)
    doc.setSelection(outside)
    with pytest.raises(layer_ops.StylizeInputError, match="the selection lies outside the canvas"):
        layer_ops.capture(doc)


def _group_active(doc: Document) -> None:
    group = doc.createGroupLayer("Group")
    doc.rootNode().addChildNode(group, None)
    doc.setActiveNode(group)


def _grey_layer(doc: Document) -> None:
    grey = Node(doc, "Grey", "paintlayer", "GRAYA", "U8")
    doc.rootNode().addChildNode(grey, None)
    doc.setActiveNode(grey)


def _float_layer(doc: Document) -> None:
    _layer(doc, "Photo").setColorSpace("RGBA", "F32", krita_standin.PROFILE)


def _small_selection(doc: Document) -> None:
    selection = Selection()
    selection.select(0, 0, 15, 20, 255)
    doc.setSelection(selection)


def _transparent_part(doc: Document) -> None:
    photo = _layer(doc, "Photo")
    photo.setPixelData(bytes(16 * 16 * 4), 0, 0, 16, 16)
    selection = Selection()
    selection.select(0, 0, 16, 16, 255)
    doc.setSelection(selection)


@pytest.mark.parametrize(
    "make,words",
    [
        (_group_active, "the active layer 'Group' is a grouplayer; select a paint layer"),
        (_grey_layer, "layer 'Grey' is in GRAYA; convert it to RGB/Alpha"),
        (_float_layer, "layer 'Photo' is F32; 8-bit and 16-bit integer channels are supported"),
        (_small_selection, "the area to stylize is 15x20 px; it needs at least 16 px"),
        (_transparent_part, "layer 'Photo' is empty in the area to stylize"),
    ],
)
def test_capture_says_why_it_cannot(make: Callable[[Document], None], words: str) -> None:
    doc = _document("U8")
    make(doc)
    with pytest.raises(layer_ops.StylizeInputError) as info:
        layer_ops.capture(doc)
    assert words in str(info.value)


def test_capture_without_a_document() -> None:
    with pytest.raises(layer_ops.StylizeInputError, match="open a document first"):
        layer_ops.capture(Krita.instance().activeDocument())


# --- results ---------------------------------------------------------------------------------


def _inverted(wire: bytes, dtype: str) -> bytes:
    """What FakeDaemon returns: the content's colours inverted, its alpha kept."""
    if dtype == "u8":
        return bytes(v if i % 4 == 3 else 255 - v for i, v in enumerate(wire))
    values = struct.unpack(f"<{len(wire) // 2}H", wire)
    out = (v if i % 4 == 3 else 65535 - v for i, v in enumerate(values))
    return struct.pack(f"<{len(values)}H", *out)


@pytest.mark.parametrize("depth", ["U8", "U16"])
def test_result_becomes_a_new_layer_above_the_source(depth: str) -> None:
    doc = _document(depth)
    _layer(doc, "Photo").setPixelData(_pattern(depth, 4, 4, alpha=0), 0, 0, 4, 4)  # a hole
    before = bytes(_layer(doc, "Photo").pixelData(0, 0, W, H))
    cap = layer_ops.capture(doc)
    result = _inverted(cap.wire, cap.dtype)
    wire = layer_ops.fit_result(cap, layouts.describe(W, H, 4, cap.dtype, 1), result)
    assert wire == result  # no selection: the daemon's pixels as they are, alpha included
    refreshed = doc.refreshed
    layer, note = layer_ops.add_result_layer(cap, wire, "stripes")
    assert note == ""
    assert _names(doc) == ["Photo", "Photo (stripes style)", "Top"]
    assert layer.colorDepth() == depth
    assert bytes(layer.pixelData(0, 0, W, H)) == layouts.wire_to_krita(result, cap.dtype)
    assert bytes(_layer(doc, "Photo").pixelData(0, 0, W, H)) == before
    assert doc.activeNode() is layer and doc.refreshed == refreshed + 1


def test_result_inside_the_selection_only() -> None:
    doc = _document("U8")
    selection = Selection()
    selection.select(8, 4, 16, 16, 255)
    selection.select(8, 4, 16, 1, 64)  # a soft top edge
    doc.setSelection(selection)
    cap = layer_ops.capture(doc)
    result = _inverted(cap.wire, "u8")
    wire = layer_ops.fit_result(cap, layouts.describe(16, 16, 4, "u8", 1), result)
    top_row, rest = wire[: 16 * 4], wire[16 * 4 :]
    assert rest == result[16 * 4 :]
    assert list(top_row[3::4]) == [(255 * 64 + 127) // 255] * 16  # alpha scaled by the edge
    layer, _ = layer_ops.add_result_layer(cap, wire, "stripes")
    pixels = bytes(layer.pixelData(0, 0, W, H))
    assert _crop(pixels, W, 4, 8, 4, 16, 16) == layouts.wire_to_krita(wire, "u8")
    assert not any(_crop(pixels, W, 4, 0, 0, 8, H))  # left of the selection: transparent
    assert not any(_crop(pixels, W, 4, 0, 20, W, 4))  # below it too


def test_result_keeps_a_converted_layers_depth() -> None:
    doc = _document("U8")
    _layer(doc, "Photo").setColorSpace("RGBA", "U16", krita_standin.PROFILE)
    cap = layer_ops.capture(doc)
    assert cap.dtype == "u16"
    layer, _ = layer_ops.add_result_layer(cap, cap.wire, "s")
    assert layer.colorDepth() == "U16"  # the image is 8-bit; the new layer follows its source
    assert bytes(layer.pixelData(0, 0, W, H)) == bytes(_layer(doc, "Photo").pixelData(0, 0, W, H))


def test_result_goes_on_top_when_the_source_is_gone() -> None:
    doc = _document("U8")
    cap = layer_ops.capture(doc)
    assert _layer(doc, "Photo").remove()
    layer, note = layer_ops.add_result_layer(cap, cap.wire, "stripes")
    assert _names(doc) == ["Top", "Photo (stripes style)"]
    assert "layer 'Photo' was gone" in note and doc.activeNode() is layer


@pytest.mark.parametrize(
    "desc,got",
    [
        (layouts.describe(W, H, 3, "u8", 1), f"{W}x{H} RGB u8"),
        (layouts.describe(W // 2, H // 2, 4, "u8", 1), f"{W // 2}x{H // 2} RGBA u8"),
        (layouts.describe(W, H, 4, "u16", 1), f"{W}x{H} RGBA u16"),
    ],
)
def test_a_result_in_another_layout_is_refused(desc: P.ImageDesc, got: str) -> None:
    cap = layer_ops.capture(_document("U8"))
    data = bytes(layouts.nbytes(desc["width"], desc["height"], desc["channels"], desc["dtype"]))
    with pytest.raises(layouts.LayoutError) as info:
        layer_ops.fit_result(cap, desc, data)
    assert f"sent back a {got} image for a {W}x{H} RGBA u8 area" in str(info.value)


# --- the docker, with an engine behind a real Client -------------------------------------------


class FakeDaemon:
    """Answers as the engine would; `job` says how a stylize request ends:
    'result' (the content inverted), 'hold' (until cancelled), 'error', 'rgb' (a wrong layout).
    state/startup/silent may change while a docker watches it. `features` stands for what an
    engine of another version says it can do (None: this version's).
    """

    def __init__(
        self,
        job: str = "result",
        defaults: Mapping[str, Any] | None = None,
        version: str = nst_client.__version__,
        silent: bool = False,
        state: str = P.READY,
        features: Sequence[str] | None = None,
    ) -> None:
        self.job, self.defaults, self.version, self.silent = job, defaults or {}, version, silent
        self.features = features
        self.state = state
        self.startup: P.Startup | None = None
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []
        self.links: list[_Link] = []
        #: (endpoint, thread name) of every status request: who polled, from where.
        self.polls: list[tuple[str, str]] = []

    def connect(self, settings: Settings, client_name: str = "nst-client") -> Client:
        """Stands in for nst_client.client.connect: a real Client on a transport to here."""
        self.links.append(_Link(self, settings.endpoint))
        return Client(
            settings.endpoint,
            transport=self.links[-1],
            timeout_s=settings.timeout_s,
            client_name=client_name,
        )

    def release(self) -> None:
        """End every job still held (as if cancelled), so no worker thread outlives a test."""
        for connection in self.links:
            for job in connection.jobs:
                connection.inbox.put((dict(P.cancelled(job)), []))

    def requests(self, kind: str) -> list[tuple[dict[str, Any], list[bytes]]]:
        return [(h, b) for h, b in self.sent if h["type"] == kind]

    def answer(self, header: dict[str, Any], buffers: list[bytes]) -> list[Received]:
        if self.silent:
            return []
        kind, rid = header["type"], header["id"]
        if kind == "hello":
            welcome = P.welcome(
                rid,
                version=self.version,
                device="cpu",
                weights="caffe",
                max_pixels=P.DEFAULT_MAX_PIXELS,
                max_tile_size=P.DEFAULT_MAX_TILE_SIZE,
                client_timeout_s=30.0,
                defaults=dict(self.defaults),
                state=self.state,
            )
            if self.features is not None:
                welcome["features"] = list(self.features)
            return [(dict(welcome), [])]
        if kind == "status":
            status = P.status(
                rid,
                running=None,
                queue=[],
                device="cpu",
                memory={"rss_bytes": 1},
                uptime_s=1.0,
                counts=(0, 0, 0),
                style_cache={"hits": 0, "misses": 0},
                version=self.version,
                state=self.state,
                startup=self.startup,
                pid=4242,
            )
            return [(dict(status), [])]
        if kind == "ping":
            return [(dict(P.pong(rid)), [])]
        if kind == "cancel":
            return [(dict(P.cancelled(header["job"])), [])]
        if kind != "stylize":
            return [(dict(P.error(rid, P.BAD_REQUEST, kind)), [])]
        content = header["content"]
        loss: P.Loss = {"total": 1.0, "content": 0.5, "style": 0.5}
        preview = layouts.describe(content["width"], content["height"], 4, content["dtype"], 1)
        replies: list[Received] = [
            (dict(P.accepted(rid, 0)), []),
            (
                dict(
                    P.progress(
                        rid,
                        iteration=5,
                        iterations=10,
                        scale=1,
                        scales=2,
                        loss=loss,
                        elapsed_s=1.0,
                        eta_s=1.0,
                        preview=preview,
                    )
                ),
                [buffers[0]],
            ),
        ]
        if self.job == "error":
            replies.append((dict(P.error(rid, P.OUT_OF_MEMORY, "the GPU is full")), []))
        elif self.job in ("result", "rgb"):
            image = _inverted(buffers[0], content["dtype"])
            desc = dict(preview)
            if self.job == "rgb":
                image = bytes(b for i, b in enumerate(image) if i % 4 != 3)
                desc["channels"] = 3
            stats = {"elapsed_s": 2.0, "iterations": 10}
            replies.append(({"type": "result", "id": rid, "image": desc, "stats": stats}, [image]))
        return replies


class _Link:
    """One connection to FakeDaemon (the Client's transport)."""

    def __init__(self, daemon: FakeDaemon, endpoint: str) -> None:
        self.daemon = daemon
        self.endpoint = endpoint
        self.inbox: queue.Queue[Received] = queue.Queue()
        self.jobs: list[str] = []

    def send(self, header: Mapping[str, Any], buffers: Sequence[P.Buffer] = ()) -> None:
        frames = [bytes(b) for b in buffers]
        self.daemon.sent.append((dict(header), frames))
        if header["type"] == "stylize":
            self.jobs.append(header["id"])
        if header["type"] == "status":
            self.daemon.polls.append((self.endpoint, threading.current_thread().name))
        for reply in self.daemon.answer(dict(header), frames):
            self.inbox.put(reply)

    def recv(self, timeout_s: float) -> Received | None:
        try:
            return self.inbox.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return None

    def close(self) -> None:
        pass


def _wait(predicate: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    app = krita_standin.application()
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.002)
    return True


def _settle(rounds: int = 5) -> None:
    """Let Qt lay out and paint what changed."""
    app = krita_standin.application()
    for _ in range(rounds):
        app.processEvents()


Docker = docker.NeuralStyleDocker
MakeDocker = Callable[..., tuple[Docker, FakeDaemon]]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plug-in's settings file, as the installer writes it (environment cleared)."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # the launcher's lock files
    path = tmp_path / CONFIG_NAME
    Settings(endpoint=ENDPOINT, transport="zmq", timeout_s=0.3).save(path)
    monkeypatch.setattr(link, "CONFIG_PATH", path)
    return path


@pytest.fixture
def make_docker(config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDocker]:
    """Builds the docker, shown 260 px wide, with FakeDaemon(**options) behind every Client
    (the job's, the launcher's, the watch's); its threads end with the test."""
    made: list[tuple[Docker, FakeDaemon]] = []

    def make(show: bool = True, **options: Any) -> tuple[Docker, FakeDaemon]:
        daemon = FakeDaemon(**options)
        monkeypatch.setattr(link, "connect", lambda s: daemon.connect(s, link.client_name(s)))
        monkeypatch.setattr(launcher, "connect", daemon.connect)
        # Its quick look for a listening port would find none: FakeDaemon has no socket.
        monkeypatch.setattr(launcher, "nobody_listens", lambda endpoint: False)
        dock = Docker()
        dock.resize(260, 800)
        if show:
            dock.show()
        made.append((dock, daemon))
        return made[-1]

    yield make
    for dock, daemon in made:
        daemon.release()
        dock.hide()
        docker.stop_watches()
        for thread in dock.findChildren(QThread):
            assert thread.wait(5000), "a worker thread did not end"
        dock.deleteLater()
    _settle()


@pytest.fixture
def style(tmp_path: Path) -> str:
    image = QImage(16, 12, QImage.Format_RGBA8888)
    image.fill(QColor(200, 40, 10, 255))
    path = tmp_path / "swatch.png"
    assert image.save(str(path))
    return str(path)


def _engine_says(dock: Docker, words: str, timeout_s: float = 3.0) -> bool:
    return _wait(lambda: words in dock.engine_state.text(), timeout_s)


def _bar_says(dock: Docker, text: str) -> bool:
    return _wait(lambda: dock.progress.text() == text)


def test_strength_slider_starts_at_the_engines_default(make_docker: MakeDocker) -> None:
    dock, _ = make_docker(defaults={"strength": 70})
    slider = dock.strength
    assert (slider.minimum(), slider.maximum()) == (strength.MINIMUM, strength.MAXIMUM)
    assert slider.value() == strength.DEFAULT  # before the engine said hello
    assert _wait(lambda: slider.value() == 70)
    assert dock.engine_state.text() == "Style engine ready (CPU)"


def test_the_controls_are_the_parameter_definition(make_docker: MakeDocker) -> None:
    """Ranges, presets, labels and help of the docker's job controls come from
    nst_client.params: a control that drifts from the definition fails here."""
    from nst_client import params as definition

    dock, _ = make_docker(show=False)
    specs = definition.SPECS
    assert (dock.strength.minimum(), dock.strength.maximum()) == (
        specs["strength"].minimum,
        specs["strength"].maximum,
    )
    presets = [
        (dock.quality.itemData(i), dock.quality.itemText(i)) for i in range(dock.quality.count())
    ]
    assert presets == [(q.name, q.label) for q in definition.QUALITIES]
    assert dock.quality.currentData() == definition.DEFAULT_QUALITY
    assert (dock.working_size.minimum(), dock.working_size.maximum()) == (
        definition.AUTO_SIZE,
        specs["size"].maximum,
    )
    assert dock.time_limit.maximum() == specs["time_budget"].maximum
    assert dock.preserve.text() == definition.label("preserve_colors")
    labels = {label.text() for label in dock.findChildren(QLabel)}
    for name in ("strength", "quality", "time_budget", "size"):
        assert definition.label(name) in labels, name
    for control, name in (
        (dock.strength, "strength"),
        (dock.working_size, "size"),
        (dock.time_limit, "time_budget"),
        (dock.preserve, "preserve_colors"),
    ):
        assert specs[name].help[1:] in control.toolTip(), name


def test_the_strength_value_follows_the_slider(make_docker: MakeDocker) -> None:
    dock, _ = make_docker(show=False)
    assert dock.strength_value.text() == str(round(strength.DEFAULT))
    for value in (0, 37, 100):
        dock.strength.setValue(value)
        assert dock.strength_value.text() == str(value)
    dock.strength.setValue(250)  # beyond the range: the slider clamps, the label follows
    assert dock.strength_value.text() == str(round(strength.MAXIMUM))


def test_a_strength_the_user_chose_stays(make_docker: MakeDocker) -> None:
    dock, daemon = make_docker(defaults={"strength": 70}, show=False)
    dock.strength.setValue(20)
    dock.show()
    assert _wait(lambda: bool(daemon.requests("hello")))
    _settle()
    assert dock.strength.value() == 20


def test_the_engine_line_follows_the_engine_from_a_watch_thread(make_docker: MakeDocker) -> None:
    dock, daemon = make_docker(state=P.STARTING)
    daemon.startup = {"step": "loading VGG-19", "fraction": 0.4}
    assert _engine_says(dock, "Starting the style engine… loading VGG-19 (40%)")
    assert not daemon.requests("hello")  # the default strength is asked once it is ready
    daemon.state, daemon.startup = P.READY, None
    dock._refresh_engine()
    assert _engine_says(dock, "Style engine ready (CPU)")
    # The endpoint and the transport are details, not words for the summary line.
    assert "tcp://" not in dock.engine_state.text()
    for words in (ENDPOINT, "transport zmq", "device cpu", "pid 4242"):
        assert words in dock.engine_panel.details.text() and words in dock.engine_state.toolTip()
    assert daemon.polls and all(thread != "MainThread" for _, thread in daemon.polls)
    assert not dock.engine_state.styleSheet()


def test_the_watch_polls_while_shown_and_stops_when_hidden(make_docker: MakeDocker) -> None:
    dock, daemon = make_docker(show=False)
    _settle()
    assert not daemon.polls and dock._watch is None
    dock.show()
    assert _wait(lambda: len(daemon.polls) >= 1)
    watch = dock._watch
    assert watch is not None and watch.isRunning()
    dock.hide()
    assert dock._watch is None
    assert watch.wait(3000)
    count = len(daemon.polls)
    time.sleep(0.1)
    _settle()
    assert len(daemon.polls) == count


def test_the_watch_polls_again_after_its_interval(
    make_docker: MakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "POLL_INTERVAL_S", 0.05)
    dock, daemon = make_docker()
    assert _wait(lambda: len(daemon.polls) >= 3)
    daemon.silent = True  # the engine goes away: the line says so within a poll or two
    assert _engine_says(dock, "Style engine not running")


def test_a_stale_plugin_is_told_to_reinstall(make_docker: MakeDocker) -> None:
    dock, _ = make_docker(version="99.0.0")
    assert _engine_says(dock, "Warning:")
    text = dock.engine_state.text()
    assert text.startswith("Style engine ready (CPU)\nWarning: ")
    assert "engine is 99.0.0" in text and "`nst install-plugin krita`" in text


def test_no_engine_is_said_in_the_engine_line(make_docker: MakeDocker) -> None:
    dock, _ = make_docker(silent=True)
    assert _engine_says(dock, "Style engine not running")
    # No engine command was installed, so it cannot start one: it says what to do.
    assert "reinstall it with `nst install-plugin`" in dock.engine_state.text()
    assert "no style engine answered at tcp://127.0.0.1:1" in dock.engine_panel.details.text()
    assert link.WHERE_SETTINGS in dock.engine_panel.details.text()


def test_a_failure_replaces_the_engine_state(
    make_docker: MakeDocker, config: Path, style: str
) -> None:
    """The engine answered, then went away: after the failed job the engine line says so
    (it never says "ready" beside the error), and the job line points at Engine settings."""
    remote = "tcp://192.0.2.7:5757"
    Settings(endpoint=remote, transport="zmq", timeout_s=0.3).save(config)
    dock, daemon = make_docker()
    assert _engine_says(dock, "Style engine ready (CPU)")
    _document("U8")
    dock.set_style(style)
    daemon.silent = True
    outcomes, _ = _run(dock)
    assert outcomes == ["failed"]
    words = f"o style engine answered at {remote} within "
    assert dock.status.text().startswith(f"Stylize failed: N{words}")
    assert link.WHERE_SETTINGS in dock.status.text()
    assert '"Engine address"' in dock.status.text()
    assert dock.engine_state.text().startswith(f"Style engine unreachable: n{words}")
    assert dock.engine_state.styleSheet() == widgets.ERROR_STYLE
    # The watch's next look (at once after the job) agrees, and nothing older undoes it.
    polls = len(daemon.polls)
    assert _wait(lambda: len(daemon.polls) > polls, 5.0)
    _settle()
    assert "ready" not in dock.engine_state.text()
    assert dock.engine_state.text().startswith("Style engine unreachable:")


def test_bad_settings_are_named(make_docker: MakeDocker, config: Path, style: str) -> None:
    config.write_text('{"transport": "pigeon"}')
    dock, daemon = make_docker()
    assert dock.engine_state.text().startswith(
        "Style engine settings cannot be used: transport in nst_config.json: must be one of"
    )
    assert dock.engine_state.styleSheet() == widgets.ERROR_STYLE and dock._watch is None
    _document("U8")
    dock.set_style(style)
    outcomes: list[str] = []
    dock.job_finished.connect(outcomes.append)
    dock.stylize()
    assert outcomes == ["failed"] and not daemon.sent
    assert dock.status.text().startswith("Cannot stylize: transport in nst_config.json")
    assert dock.status.text().endswith("; fix it under Engine settings")


def _run(dock: Docker, until: str = "", timeout_s: float = 3.0) -> tuple[list[str], list[str]]:
    """Click Stylize; returns (outcomes, progress bar texts seen) once the worker is done."""
    outcomes: list[str] = []
    texts: list[str] = []
    dock.job_finished.connect(outcomes.append)
    dock.progress.valueChanged.connect(lambda _: texts.append(dock.progress.text()))
    dock.stylize_button.click()
    if until == "progress":
        assert _wait(lambda: bool(texts), timeout_s)
        return outcomes, texts
    if until == "started":
        return outcomes, texts
    assert _wait(lambda: bool(outcomes) and dock._worker is None, timeout_s)
    return outcomes, texts


def test_stylize_adds_the_result_as_a_new_layer(make_docker: MakeDocker, style: str) -> None:
    dock, daemon = make_docker(defaults={"strength": 70})
    assert _wait(lambda: dock.strength.value() == 70)
    doc = _document("U8")
    before = bytes(_layer(doc, "Photo").pixelData(0, 0, W, H))
    assert dock.set_style(style)
    outcomes, texts = _run(dock)
    assert outcomes == ["done"], dock.status.text()
    assert "50% · 0:01 left · scale 1/2" in texts
    assert dock.progress.value() == 1000 and dock.progress.format().startswith("done in 0:0")
    preview = dock.preview.pixmap()
    assert preview is not None and not preview.isNull()
    assert _names(doc) == ["Photo", "Photo (swatch style)", "Top"]
    wire = layouts.krita_to_wire(before, "U8")[0]
    result = _layer(doc, "Photo (swatch style)")
    assert bytes(result.pixelData(0, 0, W, H)) == layouts.wire_to_krita(_inverted(wire, "u8"), "u8")
    assert bytes(_layer(doc, "Photo").pixelData(0, 0, W, H)) == before
    assert dock.last_layer is result and doc.activeNode() is result
    assert dock.status.text() == "Added layer 'Photo (swatch style)'. Edit > Undo removes it."
    assert dock.stylize_button.isEnabled() and not dock.cancel_button.isEnabled()
    assert dock.engine_state.text() == "Style engine ready (CPU)"
    # What went to the engine: the layer as wire RGBA, the style, the docker's settings.
    ((request, frames),) = daemon.requests("stylize")
    assert request["content"] == layouts.describe(W, H, 4, "u8", 1) and frames[0] == wire
    assert request["styles"] == [{**layouts.describe(16, 12, 4, "u8", 2), "weight": 1.0}]
    assert frames[1] == bytes([200, 40, 10, 255]) * (16 * 12)
    # The docker's defaults: the normal preset, the planner's size, no time limit.
    assert request["params"] == {"quality": "normal", "strength": 70.0, "preserve_colors": False}
    assert request["preview_every"] == docker.PREVIEW_EVERY
    recent = Krita.instance().readSetting(docker.SETTINGS_GROUP, "recent_styles", "[]")
    assert style in recent


def _sent_params(make_docker: MakeDocker, style: str, setup: Callable[[Docker], None]) -> Any:
    """The params of one job run after setup(dock) set the docker's controls."""
    dock, daemon = make_docker()
    _document("U8")
    assert dock.set_style(style)
    setup(dock)
    outcomes, _ = _run(dock)
    assert outcomes == ["done"], dock.status.text()
    ((request, _),) = daemon.requests("stylize")
    return request["params"]


def test_the_quality_starts_at_normal_and_says_what_each_means(make_docker: MakeDocker) -> None:
    dock, _ = make_docker(show=False)
    combo = dock.quality
    items = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    assert items == [("Draft", "draft"), ("Normal", "normal"), ("Final", "final")]
    assert combo.currentData() == "normal" and combo.isEnabled()
    tips = [combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(combo.count())]
    assert "quick look at a small size" in tips[0]
    assert "classic look" in tips[1] and "about a minute on a laptop CPU" in tips[1]
    assert "layer's own resolution" in tips[2] and "longest" in tips[2]
    assert combo.toolTip() == tips[1]
    combo.setCurrentIndex(2)
    assert combo.toolTip() == tips[2]
    # The other controls start off: no time limit, the planner's working size.
    assert dock.time_limit.value() == 0 and dock.time_limit.text() == "Off"
    assert dock.time_limit_s() is None
    assert dock.working_size.value() == 0 and dock.working_size.text() == "Auto"


@pytest.mark.parametrize("quality", ["draft", "normal", "final"])
def test_the_quality_choice_is_sent(make_docker: MakeDocker, style: str, quality: str) -> None:
    def choose(dock: Docker) -> None:
        dock.quality.setCurrentIndex(dock.quality.findData(quality))

    params = _sent_params(make_docker, style, choose)
    assert params["quality"] == quality
    assert not {"iterations", "size", "time_budget"} & set(params)


def test_a_time_limit_greys_the_quality_and_is_sent(make_docker: MakeDocker, style: str) -> None:
    def limit(dock: Docker) -> None:
        dock.quality.setCurrentIndex(dock.quality.findData("final"))
        dock.time_limit.stepBy(1)  # from Off to the first step
        assert dock.time_limit.value() == 15 and dock.time_limit.text() == "15 s"
        assert not dock.quality.isEnabled() and not dock.quality_label.isEnabled()
        assert "time limit" in dock.quality.toolTip()
        # Typed as a person says it.
        edit = dock.time_limit.lineEdit()
        assert edit is not None
        edit.selectAll()
        QTest.keyClicks(dock.time_limit, "1m30")
        QTest.keyClick(dock.time_limit, Qt.Key.Key_Return)
        assert dock.time_limit.value() == 90 and dock.time_limit.text() == "1 min 30 s"

    params = _sent_params(make_docker, style, limit)
    assert params["time_budget"] == 90.0 and "iterations" not in params


def test_a_time_limit_turned_off_gives_the_quality_back(make_docker: MakeDocker) -> None:
    dock, _ = make_docker(show=False)
    box = dock.time_limit
    box.stepBy(4)
    assert box.value() == 60 and not dock.quality.isEnabled()
    box.stepBy(1)
    assert box.value() == 90
    box.setValue(100)  # between two steps: the arrows go to the neighbours
    box.stepBy(1)
    assert box.value() == 120
    box.setValue(100)
    box.stepBy(-1)
    assert box.value() == 90
    box.stepBy(-10)
    assert box.value() == 0 and box.text() == "Off"
    assert dock.quality.isEnabled() and dock.quality_label.isEnabled()
    assert dock.quality.toolTip() == dock.quality.currentData(Qt.ItemDataRole.ToolTipRole)
    box.stepBy(1000)
    assert box.value() == 86400 and box.text() == "24 h"


def test_an_auto_working_size_is_not_sent_and_a_chosen_one_is(
    make_docker: MakeDocker, style: str
) -> None:
    def sized(dock: Docker) -> None:
        dock.working_size.stepBy(1)
        assert dock.working_size.text() == "64 px"
        dock.working_size.setValue(20)

    assert "size" not in _sent_params(make_docker, style, lambda dock: None)
    assert _sent_params(make_docker, style, sized)["size"] == 20


class ScriptedStart:
    """Stands in for launcher.ensure_running: reports each start-up fraction the test puts
    in `steps`, then (on None) returns the engine's state; honours should_cancel."""

    def __init__(self) -> None:
        self.steps: queue.Queue[float | None] = queue.Queue()
        self.cancelled = False

    def __call__(
        self,
        settings: Settings,
        on_state: Callable[[launcher.EngineState], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        timeout_s: float = 600.0,
    ) -> launcher.EngineState:
        assert on_state is not None and should_cancel is not None
        while True:
            try:
                step = self.steps.get(timeout=0.01)
            except queue.Empty:
                if should_cancel():
                    self.cancelled = True
                    raise JobCancelled("cancelled while the style engine was starting") from None
                continue
            if step is None:
                return launcher.probe(settings)
            summary = f"Starting the style engine… loading VGG-19 ({step:.0%})"
            on_state(launcher.EngineState(launcher.STARTING, summary, "details", step))


def test_the_engine_start_shows_in_the_progress_bar(
    make_docker: MakeDocker, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = ScriptedStart()
    monkeypatch.setattr(launcher, "ensure_running", start)
    dock, daemon = make_docker(show=False)  # no watch: the job alone moves the engine line
    doc = _document("U8")
    dock.set_style(style)
    dock.resize(260, 300)
    dock.show()
    dock.stop_watching()
    _settle(10)
    _, _, _, down = _scrolled(dock)
    assert down.maximum() > 0 and down.value() == 0
    dock.stylize_button.setFocus()
    outcomes, _ = _run(dock, until="started")
    assert not dock.stylize_button.isEnabled() and dock.cancel_button.isEnabled()
    # The focus went to Cancel, beside it: the docker did not scroll away from the buttons.
    assert dock.focusWidget() is dock.cancel_button
    _settle(10)
    assert down.value() == 0
    for step, shown in ((0.0, "0%"), (0.4, "40%"), (0.9, "90%")):
        start.steps.put(step)
        assert _bar_says(dock, f"Starting the style engine… {shown}")
        assert dock.progress.value() == int(1000 * step)
        assert dock.engine_state.text() == (
            f"Starting the style engine… loading VGG-19 ({step:.0%})"
        )
    assert not daemon.requests("stylize")  # nothing is sent before the engine is ready
    start.steps.put(None)
    assert _wait(lambda: bool(outcomes) and dock._worker is None)
    assert outcomes == ["done"]
    assert dock.engine_state.text() == "Style engine ready (CPU)"
    assert _names(doc) == ["Photo", "Photo (swatch style)", "Top"]


def test_cancel_while_the_engine_starts(
    make_docker: MakeDocker, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = ScriptedStart()
    monkeypatch.setattr(launcher, "ensure_running", start)
    dock, daemon = make_docker(show=False)
    doc = _document("U8")
    dock.set_style(style)
    outcomes, _ = _run(dock, until="started")
    start.steps.put(0.2)
    assert _bar_says(dock, "Starting the style engine… 20%")
    dock.cancel_button.click()
    assert _wait(lambda: bool(outcomes) and dock._worker is None)
    assert outcomes == ["cancelled"] and start.cancelled
    assert not daemon.requests("stylize") and not daemon.requests("hello")
    assert dock.status.text() == "Cancelled; no layer was added."
    assert _names(doc) == ["Photo", "Top"] and dock.stylize_button.isEnabled()


def test_cancel_adds_no_layer(make_docker: MakeDocker, style: str) -> None:
    dock, daemon = make_docker(job="hold")
    doc = _document("U8")
    dock.set_style(style)
    outcomes, _ = _run(dock, until="progress")
    assert _wait(lambda: bool(daemon.requests("stylize")))
    assert dock.cancel_button.isEnabled() and not dock.stylize_button.isEnabled()
    dock.cancel_button.click()
    assert dock.progress.format() == "cancelling…"
    assert _wait(lambda: bool(outcomes) and dock._worker is None)
    assert outcomes == ["cancelled"]
    ((request, _),) = daemon.requests("stylize")
    assert [h["job"] for h, _ in daemon.requests("cancel")] == [request["id"]]
    assert _names(doc) == ["Photo", "Top"]
    assert dock.status.text() == "Cancelled; no layer was added."
    assert dock.progress.format() == "cancelled" and dock.stylize_button.isEnabled()


def test_quitting_krita_during_a_job_ends_it_first(make_docker: MakeDocker, style: str) -> None:
    """Qt aborts Krita when a running QThread is deleted: at quit the job is cancelled and its
    thread waited for."""
    dock, daemon = make_docker(job="hold")
    doc = _document("U8")
    dock.set_style(style)
    outcomes, _ = _run(dock, until="progress")
    worker = dock._worker
    assert worker is not None and worker.isRunning()
    dock.end_job()
    assert worker.isFinished() and [h["type"] for h, _ in daemon.requests("cancel")] == ["cancel"]
    assert _wait(lambda: outcomes == ["cancelled"]) and _names(doc) == ["Photo", "Top"]


def test_a_refused_job_says_why(make_docker: MakeDocker, style: str) -> None:
    dock, _ = make_docker(job="error")
    doc = _document("U8")
    dock.set_style(style)
    outcomes, _ = _run(dock)
    assert outcomes == ["failed"]
    assert dock.status.text() == (
        "Stylize failed: The style engine refused the job (out_of_memory): the GPU is full"
    )
    assert dock.progress.format() == "failed" and dock.stylize_button.isEnabled()
    assert _names(doc) == ["Photo", "Top"]
    assert dock.engine_state.text() == "Style engine ready (CPU)"  # it refused; it is there


def test_a_result_in_another_layout_adds_no_layer(make_docker: MakeDocker, style: str) -> None:
    dock, _ = make_docker(job="rgb")
    doc = _document("U8")
    dock.set_style(style)
    outcomes, _ = _run(dock)
    assert outcomes == ["failed"]
    assert dock.status.text().startswith(
        f"Could not add the result layer: the daemon sent back a {W}x{H} RGB u8 image"
    )
    assert _names(doc) == ["Photo", "Top"]


def test_nothing_to_stylize_is_said_before_any_job(make_docker: MakeDocker, style: str) -> None:
    dock, daemon = make_docker()
    outcomes: list[str] = []
    dock.job_finished.connect(outcomes.append)
    dock.stylize()
    assert dock.status.text() == "Cannot stylize: choose a style image first"
    dock.set_style(style)
    dock.stylize()
    assert dock.status.text() == "Cannot stylize: open a document first"
    assert outcomes == ["failed", "failed"] and not daemon.requests("stylize")
    assert dock._worker is None and dock.stylize_button.isEnabled()


def test_a_missing_style_file_is_named(make_docker: MakeDocker, tmp_path: Path) -> None:
    dock, _ = make_docker()
    assert not dock.set_style(str(tmp_path / "gone.png"))
    assert dock.status.text() == f"style image not found: {tmp_path / 'gone.png'}"
    assert dock.thumbnail.text() == "no style"


# --- regions ---------------------------------------------------------------------------------


@pytest.fixture
def azure(tmp_path: Path) -> str:
    """A second style file, beside the `style` swatch."""
    image = QImage(10, 10, QImage.Format_RGBA8888)
    image.fill(QColor(20, 140, 210, 255))
    path = tmp_path / "azure.png"
    assert image.save(str(path))
    return str(path)


def _select(doc: Document, x: int, y: int, w: int, h: int, edge: int = 0) -> Selection:
    """Select a rectangle, its left column at `edge` (0: a hard edge)."""
    selection = Selection()
    selection.select(x, y, w, h, 255)
    if edge:
        selection.select(x, y, 1, h, edge)
    doc.setSelection(selection)
    return selection


def _rows(dock: Docker) -> list[Any]:
    return dock.regions_panel.region_rows()


def _labels(dock: Docker) -> list[str]:
    return [row.words.text() for row in _rows(dock)]


def _add_two(dock: Docker, doc: Document, azure: str) -> None:
    """Region 1 (selection 2,2 12x20, soft left edge) in the main style at strength 30,
    region 2 (selection 18,4 10x16) in azure at strength 80."""
    panel = dock.regions_panel
    dock.strength.setValue(30)
    _select(doc, 2, 2, 12, 20, edge=128)
    assert panel.add_from_selection(), dock.status.text()
    dock.strength.setValue(80)
    _select(doc, 18, 4, 10, 16)
    assert panel.add_from_selection(), dock.status.text()
    panel.set_region_style(_rows(dock)[1].region.ident, azure)


def test_a_region_from_the_selection_keeps_its_soft_edges(
    make_docker: MakeDocker, style: str
) -> None:
    dock, _ = make_docker(show=False)
    doc = _document("U8")
    assert dock.set_style(style)
    dock.strength.setValue(35)
    panel = dock.regions_panel
    assert panel.heading.text().startswith("No regions") and not panel.outside.isVisibleTo(dock)
    _select(doc, 4, 2, 12, 16, edge=128)
    assert panel.add_from_selection()
    assert dock.status.text() == "Added region 1 from the selection (12x16 px; swatch.png)."
    (row,) = _rows(dock)
    region = row.region
    assert (region.source, region.style_path, region.strength) == ("selection", style, 35.0)
    mask = region.mask
    assert (mask.canvas, mask.x, mask.y, mask.width, mask.height) == ((W, H), 4, 2, 12, 16)
    assert mask.values == (bytes([128]) + bytes([255]) * 11) * 16
    assert row.words.text() == "1. Selection\nswatch.png"
    assert row.strength.value() == 35 and row.value.text() == "35"
    thumb = row.mask_label.pixmap()
    assert thumb is not None and (thumb.width(), thumb.height()) == (44, 33)  # the canvas's 4:3
    spot = thumb.toImage()
    assert QColor(spot.pixel(20, 16)).value() == 255 and QColor(spot.pixel(40, 16)).value() == 0
    assert not row.style_button.icon().isNull()
    assert panel.heading.text().startswith("Regions") and panel.outside.isVisibleTo(dock)
    assert _names(doc) == ["Photo", "Top"]  # adding a region changes nothing in the document


def _nothing_selected(doc: Document) -> None:
    doc.setSelection(None)


def _empty_selection(doc: Document) -> None:
    doc.setSelection(Selection())


def _off_canvas(doc: Document) -> None:
    _select(doc, W + 4, 0, 8, 8)


@pytest.mark.parametrize(
    "make,words",
    [
        (_nothing_selected, "nothing is selected: select where the style goes"),
        (_empty_selection, "nothing is selected"),
        (_off_canvas, "the selection lies outside the canvas"),
    ],
)
def test_a_region_needs_a_selection(
    make_docker: MakeDocker, style: str, make: Callable[[Document], None], words: str
) -> None:
    dock, _ = make_docker(show=False)
    doc = _document("U8")
    dock.set_style(style)
    make(doc)
    assert not dock.regions_panel.add_from_selection()
    assert dock.status.text().startswith(f"Cannot add a region: {words}"), dock.status.text()
    assert dock.status.styleSheet() == widgets.ERROR_STYLE
    assert _rows(dock) == [] and _names(doc) == ["Photo", "Top"]


def test_a_region_needs_a_document(make_docker: MakeDocker) -> None:
    dock, _ = make_docker(show=False)
    assert not dock.regions_panel.add_from_selection()
    assert dock.status.text() == "Cannot add a region: open a document first"
    dock.regions_panel.fill_layer_menu()
    (entry,) = dock.regions_panel.layer_menu.actions()
    assert entry.text() == "(no paint layer or selection mask)" and not entry.isEnabled()


def _menu(dock: Docker) -> dict[str, Any]:
    dock.regions_panel.fill_layer_menu()
    return {a.text(): a for a in dock.regions_panel.layer_menu.actions()}


def test_a_region_from_a_layer_or_a_selection_mask(make_docker: MakeDocker, style: str) -> None:
    dock, _ = make_docker(show=False)
    doc = _document("U8")
    dock.set_style(style)
    root, photo, top = doc.rootNode(), _layer(doc, "Photo"), _layer(doc, "Top")
    sky = doc.createNode("Sky", "paintlayer")
    root.addChildNode(sky, None)
    sky.setPixelData(bytes([9, 9, 9, 200]) * (10 * 6), 20, 1, 10, 6)  # painted, any colour
    sky.setPixelData(bytes([9, 9, 9, 0]) * 6, 20, 1, 1, 6)  # an erased left column
    local = doc.createNode("Local", "selectionmask")
    assert isinstance(local, krita_standin.SelectionMask)
    photo.addChildNode(local, None)
    local.setSelection(_select(doc, 0, 10, 8, 4, edge=60))
    doc.setSelection(None)
    fade = doc.createNode("Fade", "transparencymask")
    top.addChildNode(fade, None)
    root.addChildNode(doc.createNode("Selection Mask", "selectionmask"), top)  # the global one
    # Top to bottom as the Layers docker shows them; masks Krita hands out, indented.
    assert list(_menu(dock)) == ["Sky", "Top", "Photo", "    Local"]
    _menu(dock)["Sky"].trigger()
    assert dock.status.text() == "Added region 1 from layer 'Sky' (9x6 px; swatch.png)."
    mask = _rows(dock)[0].region.mask
    assert (mask.x, mask.y, mask.width, mask.height) == (21, 1, 9, 6)
    assert mask.values == bytes([200]) * 54  # its alpha: how opaque it was painted
    _menu(dock)["    Local"].trigger()
    mask = _rows(dock)[1].region.mask
    assert (mask.x, mask.y, mask.values) == (0, 10, (bytes([60]) + bytes([255]) * 7) * 4)
    assert _labels(dock) == ["1. Layer 'Sky'\nswatch.png", "2. Mask 'Local'\nswatch.png"]
    assert not dock.regions_panel.add_from_node(fade)
    assert dock.status.text() == (
        "Cannot add a region: Krita does not hand plug-ins the pixels of the transparencymask "
        "'Fade': paint the region on a paint layer, or use a selection mask"
    )
    assert not dock.regions_panel.add_from_node(top)
    assert dock.status.text().endswith(
        "layer 'Top' has nothing painted: paint where the style goes"
    )
    assert len(_rows(dock)) == 2
    assert _names(doc) == ["Photo", "Top", "Selection Mask", "Sky"]


def test_an_opaque_layer_gives_its_grey(make_docker: MakeDocker, style: str) -> None:
    """A black-and-white picture as a layer (opaque over the whole canvas): white = the
    region, black = none of it."""
    dock, _ = make_docker(show=False)
    doc = _document("U8")
    dock.set_style(style)
    stencil = doc.createNode("Stencil", "paintlayer")
    doc.rootNode().addChildNode(stencil, None)
    stencil.setPixelData(bytes([0, 0, 0, 255]) * (W * H), 0, 0, W, H)
    stencil.setPixelData(bytes([255, 255, 255, 255]) * (8 * 8), 4, 4, 8, 8)
    assert dock.regions_panel.add_from_node(stencil)
    mask = _rows(dock)[0].region.mask
    assert (mask.x, mask.y, mask.width, mask.height) == (4, 4, 8, 8)
    assert mask.values == bytes([255]) * 64


def test_regions_move_and_go_with_their_buttons(
    make_docker: MakeDocker, style: str, azure: str
) -> None:
    dock, _ = make_docker(show=False)
    doc = _document("U8")
    dock.set_style(style)
    _add_two(dock, doc, azure)
    _select(doc, 0, 0, 4, 4)
    assert dock.regions_panel.add_from_selection()
    first, second, third = (row.region.ident for row in _rows(dock))
    rows = _rows(dock)
    assert [(r.up.isEnabled(), r.down.isEnabled()) for r in rows] == [
        (False, True),
        (True, True),
        (True, False),
    ]
    rows[0].down.click()
    assert [row.region.ident for row in _rows(dock)] == [second, first, third]
    assert _labels(dock)[0] == "1. Selection\nazure.png"  # numbered by place
    _rows(dock)[2].up.click()
    assert [row.region.ident for row in _rows(dock)] == [second, third, first]
    _rows(dock)[1].remove.click()
    assert [row.region.ident for row in _rows(dock)] == [second, first]
    _rows(dock)[0].remove.click()
    _rows(dock)[0].remove.click()
    assert _rows(dock) == [] and dock.regions_panel.heading.text().startswith("No regions")
    assert _names(doc) == ["Photo", "Top"]


def test_regions_are_remembered_per_document(
    make_docker: MakeDocker, style: str, azure: str
) -> None:
    dock, _ = make_docker(show=False)
    first = _document("U8")
    dock.set_style(style)
    _add_two(dock, first, azure)
    _rows(dock)[0].strength.setValue(12)
    dock.regions_panel.outside.setCurrentIndex(1)
    second = _document("U8")  # another document becomes active: Krita calls canvasChanged
    dock.canvasChanged(None)
    assert _rows(dock) == [] and not dock.regions_panel.outside.isVisibleTo(dock)
    _select(second, 0, 0, 8, 8)
    assert dock.regions_panel.add_from_selection()
    Krita.instance().setActiveDocument(first)
    dock.canvasChanged(None)
    assert _labels(dock) == ["1. Selection\nswatch.png", "2. Selection\nazure.png"]
    assert [row.region.strength for row in _rows(dock)] == [12.0, 80.0]
    assert dock.regions_panel.outside.currentData() == "main"
    # A docker made later (another window, or the docker closed and opened) shows them too.
    again, _ = make_docker(show=False)
    assert _labels(again) == _labels(dock)
    assert again.regions_panel.outside.currentData() == "main"
    # A closed document's regions are let go.
    key = regions.document_key(second)
    assert key in regions.STORE._documents
    second.close()
    dock.canvasChanged(None)
    assert key not in regions.STORE._documents and len(_rows(dock)) == 2


def _run_regions(dock: Docker) -> tuple[list[str], str]:
    """Click Stylize; (outcomes, the job line as the job started)."""
    outcomes, _ = _run(dock, until="started")
    said = dock.status.text()
    assert _wait(lambda: bool(outcomes) and dock._worker is None)
    return outcomes, said


def test_stylize_sends_a_style_per_region(make_docker: MakeDocker, style: str, azure: str) -> None:
    dock, daemon = make_docker()
    doc = _document("U8")
    before = bytes(_layer(doc, "Photo").pixelData(0, 0, W, H))
    dock.set_style(style)
    _add_two(dock, doc, azure)
    dock.strength.setValue(55)
    _select(doc, 0, 0, 6, 6)  # a selection left over: the regions say where
    outcomes, said = _run_regions(dock)
    assert outcomes == ["done"], dock.status.text()
    assert said == (
        "Stylizing 'Photo' (26x20, U8) in 2 regions (the regions say where: the selection is "
        "not used)…"
    )
    ((request, frames),) = daemon.requests("stylize")
    # The area around both regions; each region a style with its mask over that area.
    assert request["content"] == layouts.describe(26, 20, 4, "u8", 1)
    assert frames[0] == layouts.krita_to_wire(_crop(before, W, 4, 2, 2, 26, 20), "U8")[0]
    assert request["styles"] == [
        {
            **layouts.describe(16, 12, 4, "u8", 2),
            "weight": 1.0,
            "mask": layouts.describe(26, 20, 1, "u8", 3),
            "strength": 30.0,
        },
        {
            **layouts.describe(10, 10, 4, "u8", 4),
            "weight": 1.0,
            "mask": layouts.describe(26, 20, 1, "u8", 5),
            "strength": 80.0,
        },
    ]
    left = (bytes([128]) + bytes([255]) * 11 + bytes(14)) * 20
    right = b"".join(bytes(16) + bytes([255 if 2 <= r < 18 else 0]) * 10 for r in range(20))
    assert frames[2] == left and frames[3] == bytes([20, 140, 210, 255]) * 100
    assert frames[4] == right
    assert request["params"]["strength"] == 55.0
    # One new layer: the stylized regions, transparent where no region reaches.
    assert _names(doc) == ["Photo", "Photo (swatch + azure style)", "Top"]
    assert bytes(_layer(doc, "Photo").pixelData(0, 0, W, H)) == before
    layer = bytes(_layer(doc, "Photo (swatch + azure style)").pixelData(0, 0, W, H))
    inverted = layouts.wire_to_krita(_inverted(frames[0], "u8"), "u8")
    for y in range(H):
        for x in range(W):
            pixel = layer[(y * W + x) * 4 : (y * W + x + 1) * 4]
            inside = (2 <= x < 14 and 2 <= y < 22) or (18 <= x < 28 and 4 <= y < 20)
            if inside:
                at = ((y - 2) * 26 + x - 2) * 4
                assert pixel == inverted[at : at + 4], (x, y)
            else:
                assert pixel == bytes(4), (x, y)
    assert dock.status.text() == (
        "Added layer 'Photo (swatch + azure style)'. Edit > Undo removes it."
    )
    preview = dock.preview.pixmap()
    assert preview is not None and not preview.isNull()


def test_the_main_style_can_fill_the_rest(make_docker: MakeDocker, style: str, azure: str) -> None:
    dock, daemon = make_docker()
    doc = _document("U8")
    dock.set_style(azure)
    dock.strength.setValue(30)
    _select(doc, 0, 0, 16, H, edge=128)
    assert dock.regions_panel.add_from_selection()
    dock.regions_panel.set_region_style(_rows(dock)[0].region.ident, style)
    dock.regions_panel.outside.setCurrentIndex(dock.regions_panel.outside.findData("main"))
    doc.setSelection(None)
    dock.strength.setValue(65)
    outcomes, said = _run_regions(dock)
    assert outcomes == ["done"], dock.status.text()
    assert said == f"Stylizing 'Photo' ({W}x{H}, U8) in 1 region, azure.png elsewhere…"
    ((request, frames),) = daemon.requests("stylize")
    assert request["content"] == layouts.describe(W, H, 4, "u8", 1)
    region, rest = request["styles"]
    assert (region["strength"], region["mask"]["frame"]) == (30.0, 3)
    assert "strength" not in rest and rest["mask"] == layouts.describe(W, H, 1, "u8", 5)
    assert frames[3] == bytes([20, 140, 210, 255]) * 100  # the main style, azure
    assert frames[4] == (bytes([127]) + bytes(15) + bytes([255]) * 16) * H
    assert request["params"]["strength"] == 65.0  # the rest's strength: the main slider's
    layer = _layer(doc, "Photo (swatch + azure style)")
    assert bytes(layer.pixelData(0, 0, W, H))[3::4] == bytes([255]) * (W * H)  # all of it


def test_a_region_without_a_style_is_refused_before_any_job(make_docker: MakeDocker) -> None:
    dock, daemon = make_docker()
    doc = _document("U8")
    _select(doc, 0, 0, 16, 16)
    assert dock.regions_panel.add_from_selection()
    assert dock.status.text() == (
        "Added region 1 from the selection (16x16 px; no style yet: choose one)."
    )
    (row,) = _rows(dock)
    assert row.words.text() == "1. Selection\nno style yet"
    assert row.words.styleSheet() == widgets.ERROR_STYLE and row.style_button.text() == "style…"
    outcomes, _ = _run(dock)
    assert outcomes == ["failed"]
    assert dock.status.text() == (
        "Cannot stylize: region 1 (selection) has no style image: choose one with its style button"
    )
    assert not daemon.requests("stylize") and _names(doc) == ["Photo", "Top"]


def test_a_region_whose_canvas_changed_is_named(make_docker: MakeDocker, style: str) -> None:
    dock, daemon = make_docker()
    doc = _document("U8")
    dock.set_style(style)
    _select(doc, 0, 0, 16, 16)
    assert dock.regions_panel.add_from_selection()
    doc._width = 40  # Image > Resize Canvas
    outcomes, _ = _run(dock)
    assert outcomes == ["failed"] and not daemon.requests("stylize")
    assert dock.status.text() == (
        f"Cannot stylize: region 1 (selection) was made on a {W}x{H} canvas, the canvas is now "
        f"40x{H}: remove it and add it again"
    )


def test_an_engine_without_regions_says_so(make_docker: MakeDocker, style: str) -> None:
    dock, daemon = make_docker(features=[])
    doc = _document("U8")
    dock.set_style(style)
    _select(doc, 0, 0, 16, 16)
    assert dock.regions_panel.add_from_selection()
    outcomes, _ = _run(dock)
    assert outcomes == ["failed"] and not daemon.requests("stylize")
    assert "cannot style regions" in dock.status.text(), dock.status.text()
    assert "`nst install-plugin krita`" in dock.status.text()
    assert _names(doc) == ["Photo", "Top"]


def test_a_regions_style_comes_from_its_menu(
    make_docker: MakeDocker, style: str, azure: str
) -> None:
    dock, _ = make_docker(show=False)
    doc = _document("U8")
    dock.set_style(azure)
    dock.set_style(style)  # recent: swatch, azure
    _select(doc, 0, 0, 16, 16)
    assert dock.regions_panel.add_from_selection()
    (row,) = _rows(dock)
    dock.regions_panel.fill_style_menu(row)
    entries = {a.text(): a for a in row.style_menu.actions() if not a.isSeparator()}
    assert list(entries) == ["Choose a file…", "The main style: swatch.png", "azure.png"]
    entries["azure.png"].trigger()
    (row,) = _rows(dock)
    assert row.region.style_path == azure and row.words.text() == "1. Selection\nazure.png"
    assert row.style_button.toolTip() == azure
    # The main style stays the one shown, its recent list led by what was just used.
    assert dock.style_path.text() == style and dock.recent.currentData() == style
    assert [dock.recent.itemData(i) for i in range(dock.recent.count())] == [azure, style]


def test_the_docker_with_regions_fits_260_px(
    make_docker: MakeDocker, style: str, azure: str
) -> None:
    dock, _ = make_docker(silent=True)
    doc = _document("U8")
    dock.set_style(style)
    _add_two(dock, doc, azure)
    dock.resize(260, 900)
    _settle(20)
    assert _layout_problems(dock) == []
    assert _scrolled(dock)[1].width() <= 260


# --- engine settings -------------------------------------------------------------------------


def _certificates(folder: Path) -> tuple[Path, Path]:
    """A server public certificate and a client secret certificate, as `nst keys` makes them."""
    from nst_client.keyfiles import make_keys

    folder.mkdir()
    server, _ = make_keys(folder, "server")
    _, client = make_keys(folder, "client")
    return server, client


def _saved() -> dict[str, str]:
    app = Krita.instance()
    return {k: app.readSetting(link.SETTINGS_GROUP, k, "") for k in settings_mod.OVERRIDABLE}


def test_engine_settings_show_what_is_installed(make_docker: MakeDocker, config: Path) -> None:
    Settings(endpoint=ENDPOINT, transport="zmq", idle_exit_s=600.0, start_on_demand=False).save(
        config
    )
    dock, _ = make_docker(show=False)
    panel = dock.engine_panel
    assert not panel.box.isVisibleTo(dock)
    panel.toggle.click()
    assert panel.box.isVisibleTo(dock)
    assert panel.endpoint.text() == ENDPOINT
    assert panel.server_key.text() == panel.client_cert.text() == ""
    assert not panel.start_on_demand.isChecked()
    assert panel.idle_minutes.value() == 10 and panel.idle_minutes.text() == "10.0 min"
    panel.idle_minutes.setValue(0)
    assert panel.idle_minutes.text() == "never"
    panel.toggle.click()
    assert not panel.box.isVisibleTo(dock)


def test_the_words_beside_a_checkbox_toggle_it(make_docker: MakeDocker) -> None:
    """A QCheckBox's own text never wraps, so its words are a label that clicks it too."""
    dock, _ = make_docker(show=False)
    panel = dock.engine_panel
    (words,) = panel.box.findChildren(widgets.ClickableLabel)
    assert words.wordWrap() and words.text() == "Start the engine when needed"
    was = panel.start_on_demand.isChecked()
    QTest.mouseClick(words, Qt.MouseButton.LeftButton)
    assert panel.start_on_demand.isChecked() is not was


def test_engine_settings_round_trip(make_docker: MakeDocker, config: Path, tmp_path: Path) -> None:
    """Apply keeps what the user changed in Krita's settings; the next docker and every job
    read them back through nst_client.settings.load, over the installed file."""
    server, client = _certificates(tmp_path / "keys")
    dock, daemon = make_docker()
    panel = dock.engine_panel
    assert _wait(lambda: bool(daemon.polls))
    other = "tcp://127.0.0.1:2"
    panel.endpoint.setText(other)
    panel.server_key.setText(str(server))
    panel.client_cert.setText(str(client))
    panel.start_on_demand.setChecked(False)
    panel.idle_minutes.setValue(5)
    assert panel.apply(), panel.message.text()
    assert panel.message.text() == "Saved; the docker uses these settings now."
    assert _saved() == {
        "endpoint": other,
        "curve_server_key": str(server),
        "curve_client_cert": str(client),
        "start_on_demand": "false",
        "idle_exit_s": "300",
    }
    loaded = link.load_settings()
    assert (loaded.endpoint, loaded.curve_server_key, loaded.curve_client_cert) == (
        other,
        str(server),
        str(client),
    )
    assert (loaded.start_on_demand, loaded.idle_exit_s) == (False, 300.0)
    assert loaded.transport == "zmq" and loaded.timeout_s == 0.3  # the file's, untouched
    # The watch now looks at the new endpoint.
    assert _wait(lambda: daemon.polls[-1][0] == other)
    # A docker made later (Krita restarted) shows the saved values.
    again = make_docker(show=False)[0].engine_panel
    assert again.endpoint.text() == other
    assert again.server_key.text() == str(server)
    assert not again.start_on_demand.isChecked() and again.idle_minutes.value() == 5
    # Emptying a field goes back to the installed value; untouched ones stay saved.
    again.endpoint.setText("")
    assert again.apply()
    assert again.endpoint.text() == ENDPOINT
    assert _saved()["endpoint"] == "" and _saved()["idle_exit_s"] == "300"
    assert link.load_settings().endpoint == ENDPOINT


def test_an_idle_time_in_seconds_is_shown_and_kept(make_docker: MakeDocker, config: Path) -> None:
    """20 s (an installer's --idle-exit 20) is 0.3 min, never "never"; Apply keeps 20 s."""
    Settings(endpoint=ENDPOINT, transport="zmq", timeout_s=0.3, idle_exit_s=20.0).save(config)
    dock, _ = make_docker(show=False)
    panel = dock.engine_panel
    assert panel.idle_minutes.text() == "0.3 min"
    panel.endpoint.setText("tcp://127.0.0.1:4")
    assert panel.apply()
    assert _saved()["idle_exit_s"] == "" and link.load_settings().idle_exit_s == 20.0


def test_untouched_settings_follow_the_installed_file(
    make_docker: MakeDocker, config: Path
) -> None:
    """Apply saves only what changed, so a reinstall with another endpoint still counts."""
    dock, _ = make_docker(show=False)
    panel = dock.engine_panel
    panel.idle_minutes.setValue(7)
    assert panel.apply()
    assert _saved()["endpoint"] == "" and _saved()["idle_exit_s"] == "420"
    Settings(endpoint="tcp://127.0.0.1:3", transport="zmq", timeout_s=0.3).save(config)
    loaded = link.load_settings()
    assert (loaded.endpoint, loaded.idle_exit_s) == ("tcp://127.0.0.1:3", 420.0)


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("endpoint", "localhost:5757", "expected tcp://HOST:PORT, got 'localhost:5757'"),
        ("curve_server_key", "/nonexistent/server.key", "/nonexistent/server.key: no such file"),
        ("curve_client_cert", "/nonexistent/c.key_secret", "needs curve_server_key too"),
    ],
)
def test_bad_engine_settings_are_not_saved(
    make_docker: MakeDocker, field: str, value: str, words: str
) -> None:
    dock, _ = make_docker(show=False)
    panel = dock.engine_panel
    edits = {
        "endpoint": panel.endpoint,
        "curve_server_key": panel.server_key,
        "curve_client_cert": panel.client_cert,
    }
    edits[field].setText(value)
    panel.idle_minutes.setValue(3)
    assert not panel.apply()
    message = panel.message.text()
    assert message.startswith("Not saved: ") and words in message, message
    assert panel.message.styleSheet() == widgets.ERROR_STYLE
    assert set(_saved().values()) == {""}  # nothing at all, not even the good idle time
    assert link.load_settings().endpoint == ENDPOINT


def test_a_saved_setting_that_went_bad_is_named(make_docker: MakeDocker, tmp_path: Path) -> None:
    server, _ = _certificates(tmp_path / "keys")
    Krita.instance().writeSetting(link.SETTINGS_GROUP, "curve_server_key", str(server))
    assert link.load_settings().curve_server_key == str(server)
    server.unlink()
    dock, _ = make_docker()
    panel = dock.engine_panel
    assert dock.engine_state.text().startswith("Style engine settings cannot be used: ")
    assert f"{server}: no such file" in panel.message.text()
    # The bad value shows, so that emptying the field (back to none) mends it.
    assert panel.server_key.text() == str(server)
    panel.server_key.setText("")
    assert panel.apply(), panel.message.text()
    assert _saved()["curve_server_key"] == "" and link.load_settings().curve_server_key is None
    assert _engine_says(dock, "Style engine ready (CPU)")


# --- layout ----------------------------------------------------------------------------------


def _scrolled(dock: Docker) -> tuple[QWidget, QWidget, QScrollBar, QScrollBar]:
    """The docker's scroll area: (content, viewport, horizontal bar, vertical bar)."""
    scroll = dock.scroll_area
    parts = (
        scroll.widget(),
        scroll.viewport(),
        scroll.horizontalScrollBar(),
        scroll.verticalScrollBar(),
    )
    content, viewport, across, down = parts
    assert content is not None and viewport is not None
    assert across is not None and down is not None
    return content, viewport, across, down


def _layout_problems(dock: Docker) -> list[str]:
    """What a user would see as broken: a widget (partly) outside the scroll area's viewport,
    two visible widgets of one parent overlapping, a horizontal scroll bar, a width forced
    above MAX_FIXED_WIDTH."""
    content, viewport, across, _ = _scrolled(dock)
    problems: list[str] = []
    if across.isVisible():
        problems.append("a horizontal scroll bar")
    if content.width() > viewport.width():
        problems.append(f"content {content.width()} px in a {viewport.width()} px viewport")
    panel = dock.regions_panel
    parents = [content, dock.engine_panel, dock.engine_panel.box, panel, panel.rows]
    parents += panel.region_rows()
    for parent in parents:
        kids = [w for w in parent.findChildren(QWidget, options=FIND_DIRECT) if w.isVisible()]
        for w in kids:
            name = w.objectName() or f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}"
            top_left = w.mapTo(content, QPoint(0, 0))
            rect = QRect(top_left, w.size())
            if rect.left() < 0 or rect.right() >= viewport.width():
                problems.append(f"{name} spans x {rect.left()}..{rect.right()}")
            if max(w.minimumWidth(), w.minimumSizeHint().width()) > MAX_FIXED_WIDTH:
                problems.append(f"{name} needs {w.minimumSizeHint().width()} px")
        for i, a in enumerate(kids):
            for b in kids[i + 1 :]:
                if a.geometry().intersects(b.geometry()):
                    problems.append(f"{a.objectName() or a} overlaps {b.objectName() or b}")
    return problems


LONG_ERROR = (
    "Stylize failed: no style engine answered at tcp://127.0.0.1:57571 within 5 s: start it "
    "with `nst daemon start --endpoint tcp://127.0.0.1:57571` (the program nst-daemon), or "
    "check the endpoint in " + link.WHERE_SETTINGS
)


@pytest.mark.parametrize("height", [800, 420])
@pytest.mark.parametrize("expanded", [False, True])
def test_the_docker_fits_260_px(
    make_docker: MakeDocker, style: str, height: int, expanded: bool
) -> None:
    dock, _ = make_docker(silent=True)
    dock.set_style(style)
    dock.resize(260, height)
    dock._say(LONG_ERROR, error=True)
    dock.engine_panel.toggle.setChecked(expanded)
    assert _engine_says(dock, "not running")
    _settle(20)
    content, viewport, _, down = _scrolled(dock)
    assert viewport.width() <= 260
    assert _layout_problems(dock) == []
    if height < 600:  # too short for everything: it scrolls up and down, never sideways
        assert down.maximum() > 0
    labels = [w for w in content.findChildren(QLabel) if w.text()]
    unwrapped = {w.objectName() for w in labels if not w.wordWrap()}
    assert unwrapped <= {"nst_strength_value", "nst_style_thumbnail", "nst_preview"}
    assert dock.scroll_area.widgetResizable()


def test_the_preview_follows_the_docker_width(make_docker: MakeDocker) -> None:
    dock, _ = make_docker()
    heights = {}
    for width in (260, 420):
        dock.resize(width, 900)
        _settle(20)
        preview = dock.preview
        assert abs(preview.height() - preview.width() * 3 / 4) <= 1, preview.size()
        assert preview.width() >= _scrolled(dock)[1].width() - 40
        heights[width] = preview.height()
    assert heights[420] > heights[260]
    image = QImage(400, 100, QImage.Format_RGBA8888)
    image.fill(QColor(0, 90, 200, 255))
    dock.preview.show_image(image)
    shown = dock.preview.pixmap()
    assert shown is not None and shown.width() == dock.preview.width() - 2  # aspect kept
    assert shown.height() == round(shown.width() / 4)


def test_previews_show_the_wire_layouts_the_plugin_sends() -> None:
    for dtype, fmt in (("u8", QImage.Format_RGBA8888), ("u16", QImage.Format_RGBA64)):
        data = layouts.krita_to_wire(_pattern(dtype.upper()), dtype.upper())[0]
        image = images.to_qimage(layouts.describe(W, H, 4, dtype, 1), data)
        assert (image.width(), image.height(), image.format()) == (W, H, fmt)
        pixel = image.pixelColor(1, 0)  # wire R,G,B = Krita's pattern with B and R swapped
        assert (pixel.red(), pixel.green(), pixel.blue()) == (199, 2, 5)
    with pytest.raises(images.ImageError, match="3-channel u8"):
        images.to_qimage(layouts.describe(W, H, 3, "u8", 1), bytes(W * H * 3))
