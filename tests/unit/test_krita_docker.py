"""The Krita docker without Krita: layers in and out, and the docker's widgets through a job.

tests/unit/krita_standin.py stands in for Krita's `krita` module; Qt runs offscreen. Behind
the docker's real worker threads and a real nst_client Client sits FakeDaemon, a transport
that answers as the daemon would. No processes, no sockets, no torch.
"""

from __future__ import annotations

import queue
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import krita_standin
import pytest
from krita_standin import Document, Krita, Node, Selection
from PyQt5.QtCore import QThread
from PyQt5.QtGui import QColor, QImage

import nst_client
from nst_client import layouts, strength
from nst_client import protocol as P
from nst_client.client import Client, Received
from nst_client.settings import CONFIG_NAME, Settings

krita_standin.load_plugin()
from neural_style import docker, images, layer_ops, link  # noqa: E402

W, H = 32, 24
ENDPOINT = "tcp://127.0.0.1:1"


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


# --- the docker, with a daemon behind a real Client --------------------------------------------


class FakeDaemon:
    """Answers as the daemon would; `job` says how a stylize request ends:
    'result' (the content inverted), 'hold' (until cancelled), 'error', 'rgb' (a wrong layout).
    """

    def __init__(
        self,
        job: str = "result",
        defaults: Mapping[str, Any] | None = None,
        version: str = nst_client.__version__,
        silent: bool = False,
    ) -> None:
        self.job, self.defaults, self.version, self.silent = job, defaults or {}, version, silent
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []
        self.links: list[_Link] = []

    def connect(self, settings: Settings) -> Client:
        """Stands in for link.connect: a real Client on a transport to this daemon."""
        self.links.append(_Link(self))
        return Client(settings.endpoint, transport=self.links[-1], timeout_s=settings.timeout_s)

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
            )
            return [(dict(welcome), [])]
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

    def __init__(self, daemon: FakeDaemon) -> None:
        self.daemon = daemon
        self.inbox: queue.Queue[Received] = queue.Queue()
        self.jobs: list[str] = []

    def send(self, header: Mapping[str, Any], buffers: Sequence[P.Buffer] = ()) -> None:
        frames = [bytes(b) for b in buffers]
        self.daemon.sent.append((dict(header), frames))
        if header["type"] == "stylize":
            self.jobs.append(header["id"])
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


Docker = docker.NeuralStyleDocker
MakeDocker = Callable[..., tuple[Docker, FakeDaemon]]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plug-in's settings file, as the installer writes it (environment cleared)."""
    for name in ("NST_ENDPOINT", "NST_TRANSPORT", "NST_PYTHON", "NST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / CONFIG_NAME
    Settings(endpoint=ENDPOINT, transport="zmq", timeout_s=0.3).save(path)
    monkeypatch.setattr(link, "CONFIG_PATH", path)
    return path


@pytest.fixture
def make_docker(config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDocker]:
    """Builds the docker with FakeDaemon(**options) behind it; its threads end with the test."""
    made: list[tuple[Docker, FakeDaemon]] = []

    def make(**options: Any) -> tuple[Docker, FakeDaemon]:
        daemon = FakeDaemon(**options)
        monkeypatch.setattr(link, "connect", daemon.connect)
        made.append((Docker(), daemon))
        return made[-1]

    yield make
    for dock, daemon in made:
        daemon.release()
        for thread in dock.findChildren(QThread):
            assert thread.wait(5000), "a worker thread did not end"


@pytest.fixture
def style(tmp_path: Path) -> str:
    image = QImage(16, 12, QImage.Format_RGBA8888)
    image.fill(QColor(200, 40, 10, 255))
    path = tmp_path / "swatch.png"
    assert image.save(str(path))
    return str(path)


def _answered(dock: Docker) -> bool:
    return "checking" not in dock.daemon_status.text()


def test_strength_slider_starts_at_the_daemons_default(make_docker: MakeDocker) -> None:
    dock, _ = make_docker(defaults={"strength": 70})
    slider = dock.strength
    assert (slider.minimum(), slider.maximum()) == (strength.MINIMUM, strength.MAXIMUM)
    assert slider.value() == strength.DEFAULT  # before the daemon said hello
    assert _wait(lambda: _answered(dock))
    assert slider.value() == 70
    assert dock.daemon_status.text() == f"Daemon connected: cpu via zmq ({ENDPOINT})"


def test_a_strength_the_user_chose_stays(make_docker: MakeDocker) -> None:
    dock, _ = make_docker(defaults={"strength": 70})
    dock.strength.setValue(20)
    assert _wait(lambda: _answered(dock))
    assert dock.strength.value() == 20


def test_a_stale_plugin_is_told_to_reinstall(make_docker: MakeDocker) -> None:
    dock, _ = make_docker(version="99.0.0")
    assert _wait(lambda: _answered(dock))
    text = dock.daemon_status.text()
    assert text.startswith("Daemon connected: cpu via zmq")
    assert "engine is 99.0.0" in text and "`nst install-plugin krita`" in text


def test_no_daemon_is_said_in_the_status_line(make_docker: MakeDocker) -> None:
    dock, _ = make_docker(silent=True)
    assert _wait(lambda: _answered(dock))
    assert dock.daemon_status.text().startswith(
        f"Daemon not connected: no NST daemon answered at {ENDPOINT} within 0.3 s"
    )


def test_bad_settings_are_named(make_docker: MakeDocker, config: Path, style: str) -> None:
    config.write_text('{"transport": "pigeon"}')
    dock, daemon = make_docker()
    assert "Daemon settings: transport in nst_config.json: must be one of" in (
        dock.daemon_status.text()
    )
    _document("U8")
    dock.set_style(style)
    outcomes: list[str] = []
    dock.job_finished.connect(outcomes.append)
    dock.stylize()
    assert outcomes == ["failed"] and not daemon.sent
    assert dock.status.text().startswith("Cannot stylize: transport in nst_config.json")


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
    assert _wait(lambda: bool(outcomes) and dock._worker is None, timeout_s)
    return outcomes, texts


def test_stylize_adds_the_result_as_a_new_layer(make_docker: MakeDocker, style: str) -> None:
    dock, daemon = make_docker(defaults={"strength": 70})
    assert _wait(lambda: _answered(dock))
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
    # What went to the daemon: the layer as wire RGBA, the style, the docker's settings.
    ((request, frames),) = daemon.requests("stylize")
    assert request["content"] == layouts.describe(W, H, 4, "u8", 1) and frames[0] == wire
    assert request["styles"] == [{**layouts.describe(16, 12, 4, "u8", 2), "weight": 1.0}]
    assert frames[1] == bytes([200, 40, 10, 255]) * (16 * 12)
    assert request["params"] == {
        "iterations": dock.iterations.value(),
        "size": W,  # the working size is capped at the area's long side
        "strength": 70.0,
        "preserve_colors": False,
    }
    assert request["preview_every"] == docker.PREVIEW_EVERY
    recent = Krita.instance().readSetting(docker.SETTINGS_GROUP, "recent_styles", "[]")
    assert style in recent


def test_cancel_adds_no_layer(make_docker: MakeDocker, style: str) -> None:
    dock, daemon = make_docker(job="hold")
    doc = _document("U8")
    dock.set_style(style)
    outcomes, _ = _run(dock, until="progress")
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


def test_a_refused_job_says_why(make_docker: MakeDocker, style: str) -> None:
    dock, _ = make_docker(job="error")
    doc = _document("U8")
    dock.set_style(style)
    outcomes, _ = _run(dock)
    assert outcomes == ["failed"]
    assert dock.status.text() == (
        "Stylize failed: the daemon refused the job (out_of_memory): the GPU is full"
    )
    assert dock.progress.format() == "failed" and dock.stylize_button.isEnabled()
    assert _names(doc) == ["Photo", "Top"]


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


def test_previews_show_the_wire_layouts_the_plugin_sends() -> None:
    for dtype, fmt in (("u8", QImage.Format_RGBA8888), ("u16", QImage.Format_RGBA64)):
        data = layouts.krita_to_wire(_pattern(dtype.upper()), dtype.upper())[0]
        image = images.to_qimage(layouts.describe(W, H, 4, dtype, 1), data)
        assert (image.width(), image.height(), image.format()) == (W, H, fmt)
        pixel = image.pixelColor(1, 0)  # wire R,G,B = Krita's pattern with B and R swapped
        assert (pixel.red(), pixel.green(), pixel.blue()) == (199, 2, 5)
    with pytest.raises(images.ImageError, match="3-channel u8"):
        images.to_qimage(layouts.describe(W, H, 3, "u8", 1), bytes(W * H * 3))
