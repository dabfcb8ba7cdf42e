"""The "Neural Style" docker: pick a style, press Stylize, get a new layer above the source.

All daemon traffic runs in worker QThreads; this class only reads widgets, reads and writes
layers on the GUI thread (quick), and reacts to the workers' signals, so Krita never freezes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from krita import DockWidget, Krita

from nst_client import strength
from nst_client.client import JobResult, RawImage
from nst_client.progress import Progress, format_duration
from nst_client.settings import SettingsError

from . import images, job_params, layer_ops, link
from .qt import (
    ALIGN_CENTER,
    HORIZONTAL,
    KEEP_ASPECT,
    SIZE_EXPANDING,
    SIZE_PREFERRED,
    SMOOTH,
    TEXT_SELECTABLE,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPixmap,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)
from .worker import StatusWorker, StylizeWorker

DOCKER_ID = "neural_style_docker"
TITLE = "Neural Style"
SETTINGS_GROUP = "neural_style"
MAX_RECENT = 8
THUMB = 96
PREVIEW_W, PREVIEW_H = 200, 150
PREVIEW_EVERY = 5
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif);;All files (*)"


class NeuralStyleDocker(DockWidget):
    """Docker panel; `job_finished` says 'done', 'failed' or 'cancelled' after each run."""

    job_finished = pyqtSignal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(TITLE)
        self._worker: StylizeWorker | None = None
        self._status_worker: StatusWorker | None = None
        self._capture: layer_ops.Capture | None = None
        self._style_name = ""
        self._started = 0.0
        #: Where the strength slider starts: the daemon's default once it said hello.
        self._strength_start = round(strength.DEFAULT)
        self.last_layer: Any = None
        self._build()
        self._load_recent()
        self.check_daemon()

    # -- widgets ----------------------------------------------------------------------------
    def _build(self) -> None:
        root = QWidget(self)
        layout = QVBoxLayout(root)

        self.style_path = QLineEdit(root)
        self.style_path.setObjectName("nst_style_path")
        self.style_path.setPlaceholderText("Style image (painting, texture)…")
        self.style_path.editingFinished.connect(self._style_path_edited)
        browse = QPushButton("Browse…", root)
        browse.setObjectName("nst_browse")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.style_path)
        row.addWidget(browse)
        layout.addLayout(row)

        self.thumbnail = QLabel("no style", root)
        self.thumbnail.setObjectName("nst_style_thumbnail")
        self.thumbnail.setFixedSize(THUMB, THUMB)
        self.thumbnail.setAlignment(ALIGN_CENTER)
        self.thumbnail.setStyleSheet("border: 1px solid palette(mid);")
        self.recent = QComboBox(root)
        self.recent.setObjectName("nst_recent_styles")
        self.recent.setToolTip("Recently used style images")
        self.recent.activated.connect(self._recent_chosen)
        self.recent.setSizePolicy(SIZE_EXPANDING, SIZE_PREFERRED)
        side = QVBoxLayout()
        side.addWidget(QLabel("Recent styles:", root))
        side.addWidget(self.recent)
        side.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.thumbnail)
        row.addLayout(side)
        layout.addLayout(row)

        form = QFormLayout()
        self.strength = QSlider(HORIZONTAL, root)
        self.strength.setObjectName("nst_strength")
        self.strength.setRange(int(strength.MINIMUM), int(strength.MAXIMUM))
        self.strength.setValue(self._strength_start)
        self.strength.setToolTip(
            f"How much style: {strength.MINIMUM:g} = a hint, {strength.DEFAULT:g} = the classic "
            f"look, {strength.MAXIMUM:g} = only the painting's texture"
        )
        form.addRow("Strength", self.strength)
        self.iterations = QSpinBox(root)
        self.iterations.setObjectName("nst_iterations")
        self.iterations.setRange(1, 5000)
        self.iterations.setSingleStep(50)
        self.iterations.setValue(300)
        self.iterations.setToolTip("Quality: optimizer iterations (more = finer, slower)")
        form.addRow("Quality (iterations)", self.iterations)
        self.size = QSpinBox(root)
        self.size.setObjectName("nst_size")
        self.size.setRange(job_params.MIN_SIZE, 8192)
        self.size.setSingleStep(64)
        self.size.setValue(512)
        self.size.setSuffix(" px")
        self.size.setToolTip(
            "Long side the style is worked out at; the result is scaled to "
            "the layer. Larger = finer brush strokes, much slower."
        )
        form.addRow("Working size", self.size)
        self.preserve = QCheckBox("Preserve colours", root)
        self.preserve.setObjectName("nst_preserve_colors")
        self.preserve.setToolTip("Transfer only the texture; keep the layer's colours")
        form.addRow(self.preserve)
        layout.addLayout(form)

        self.stylize_button = QPushButton("Stylize", root)
        self.stylize_button.setObjectName("nst_stylize")
        self.stylize_button.clicked.connect(self.stylize)
        self.cancel_button = QPushButton("Cancel", root)
        self.cancel_button.setObjectName("nst_cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        row = QHBoxLayout()
        row.addWidget(self.stylize_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)

        self.progress = QProgressBar(root)
        self.progress.setObjectName("nst_progress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        layout.addWidget(self.progress)

        self.preview = QLabel("preview", root)
        self.preview.setObjectName("nst_preview")
        self.preview.setFixedSize(PREVIEW_W, PREVIEW_H)
        self.preview.setAlignment(ALIGN_CENTER)
        self.preview.setStyleSheet("border: 1px solid palette(mid);")
        layout.addWidget(self.preview, 0, ALIGN_CENTER)

        self.status = QLabel("", root)
        self.status.setObjectName("nst_status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(TEXT_SELECTABLE)
        layout.addWidget(self.status)
        self.daemon_status = QLabel("Daemon: checking…", root)
        self.daemon_status.setObjectName("nst_daemon_status")
        self.daemon_status.setWordWrap(True)
        self.daemon_status.setTextInteractionFlags(TEXT_SELECTABLE)
        layout.addWidget(self.daemon_status)
        layout.addStretch(1)
        self.setWidget(root)

    def canvasChanged(self, canvas: Any) -> None:  # noqa: N802 (Krita's name)
        """Required by DockWidget; the docker works on whatever document is active."""

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        """Re-check the daemon when the docker is shown: it may have been started since."""
        super().showEvent(event)
        self.check_daemon()

    # -- status -----------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #c0392b;" if error else "")
        self.status.setText(text)

    def check_daemon(self) -> None:
        """Ask the daemon for its device in the background; updates the status line."""
        if self._status_worker is not None and self._status_worker.isRunning():
            return
        try:
            settings = link.load_settings()
        except SettingsError as exc:
            self._daemon_unavailable(f"Daemon settings: {exc}")
            return
        worker = StatusWorker(settings, self)
        worker.welcomed.connect(self._welcomed)
        worker.unavailable.connect(self._daemon_unavailable)
        worker.finished.connect(self._status_done)
        self._status_worker = worker
        worker.start()

    def _status_done(self) -> None:
        if self._status_worker is not None:
            self._status_worker.deleteLater()
        self._status_worker = None

    def _daemon_unavailable(self, text: str) -> None:
        self.daemon_status.setStyleSheet("color: #c0392b;")
        self.daemon_status.setText(text)

    def _welcomed(self, line: str, welcome: dict[str, Any]) -> None:
        """The daemon said hello: its device, a stale-plug-in warning, its default strength."""
        note = link.version_warning(welcome)
        self.daemon_status.setStyleSheet("color: #d35400;" if note else "")
        self.daemon_status.setText(f"{line}\nWarning: {note}" if note else line)
        start = round(strength.default_strength(welcome))
        if self.strength.value() == self._strength_start:  # not moved by the user
            self.strength.setValue(start)
        self._strength_start = start

    # -- style picking ----------------------------------------------------------------------
    def _browse(self) -> None:
        start = str(Path(self.style_path.text()).parent) if self.style_path.text() else ""
        path, _ = QFileDialog.getOpenFileName(self, "Choose a style image", start, IMAGE_FILTER)
        if path:
            self.set_style(path)

    def _style_path_edited(self) -> None:
        path = self.style_path.text().strip()
        if path:
            self.set_style(path)

    def _recent_chosen(self, index: int) -> None:
        path = self.recent.itemData(index)
        if path:
            self.set_style(path)

    def set_style(self, path: str) -> bool:
        """Show the style's thumbnail and remember it; False (and a message) if unusable."""
        if self.style_path.text() != path:
            self.style_path.setText(path)
        try:
            _, image = images.load_style(path, max_side=4 * THUMB)
        except images.ImageError as exc:
            self.thumbnail.setText("no style")
            self._say(str(exc), error=True)
            return False
        self.thumbnail.setPixmap(QPixmap.fromImage(image.scaled(THUMB, THUMB, KEEP_ASPECT, SMOOTH)))
        self._remember(path)
        self._say(f"Style: {Path(path).name}")
        return True

    def _load_recent(self) -> None:
        raw = Krita.instance().readSetting(SETTINGS_GROUP, "recent_styles", "[]")
        try:
            paths = [p for p in json.loads(raw) if isinstance(p, str)]
        except ValueError:
            paths = []
        self._fill_recent(paths)
        if paths and Path(paths[0]).is_file():
            self.set_style(paths[0])

    def _fill_recent(self, paths: list[str]) -> None:
        self.recent.blockSignals(True)
        self.recent.clear()
        for path in paths:
            self.recent.addItem(Path(path).name, path)
            self.recent.setItemData(self.recent.count() - 1, path, 3)  # 3 = ToolTipRole
        self.recent.blockSignals(False)

    def _remember(self, path: str) -> None:
        paths = [path] + [
            self.recent.itemData(i)
            for i in range(self.recent.count())
            if self.recent.itemData(i) != path
        ]
        paths = paths[:MAX_RECENT]
        self._fill_recent(paths)
        Krita.instance().writeSetting(SETTINGS_GROUP, "recent_styles", json.dumps(paths))

    # -- running a job ----------------------------------------------------------------------
    def _set_busy(self, busy: bool) -> None:
        self.stylize_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def stylize(self) -> None:
        """Stylize the active layer (or its selected part) with the chosen style."""
        if self._worker is not None:
            return
        try:
            settings = link.load_settings()
            style_path = self.style_path.text().strip()
            style, _ = images.load_style(style_path)
            capture = layer_ops.capture(Krita.instance().activeDocument())
        except (SettingsError, images.ImageError, layer_ops.StylizeInputError) as exc:
            self._say(f"Cannot stylize: {exc}", error=True)
            self.progress.setValue(0)
            self.progress.setFormat("idle")
            self.job_finished.emit("failed")
            return
        self._remember(style_path)
        params = job_params.build_params(
            iterations=self.iterations.value(),
            size=self.size.value(),
            strength=self.strength.value(),
            preserve_colors=self.preserve.isChecked(),
            area=(capture.width, capture.height),
        )
        self._capture = capture
        self._style_name = Path(style_path).stem
        self._started = time.monotonic()
        worker = StylizeWorker(settings, capture.content(), style, params, PREVIEW_EVERY, self)
        worker.welcomed.connect(self._welcomed)
        worker.progressed.connect(self._progressed)
        worker.succeeded.connect(self._succeeded)
        worker.failed.connect(self._failed)
        worker.cancelled.connect(self._cancelled)
        worker.finished.connect(self._worker_done)
        self._worker = worker
        self._set_busy(True)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.preview.setText("preview")
        self._say(
            f"Stylizing {capture.source_name!r} ({capture.width}x{capture.height}, "
            f"{capture.depth}) with {Path(style_path).name}…"
        )
        worker.start()

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.cancel_button.setEnabled(False)
            self.progress.setFormat("cancelling…")

    def _progressed(self, progress: Progress) -> None:
        self.progress.setFormat(progress.text())  # first: valueChanged then shows this text
        self.progress.setValue(int(progress.fraction * 1000))
        if progress.preview is not None:
            self._show_preview(progress.preview)

    def _show_preview(self, raw: RawImage) -> None:
        try:
            image = images.to_qimage(*raw)
        except Exception as exc:  # a bad preview must not end the job
            self.preview.setText(f"no preview ({exc})")
            return
        self.preview.setPixmap(
            QPixmap.fromImage(image.scaled(PREVIEW_W, PREVIEW_H, KEEP_ASPECT, SMOOTH))
        )

    def _succeeded(self, result: JobResult) -> None:
        capture = self._capture
        if capture is None:
            return
        try:
            wire = layer_ops.fit_result(capture, result.image, result.data)
            layer, note = layer_ops.add_result_layer(capture, wire, self._style_name)
        except Exception as exc:
            self._say(f"Could not add the result layer: {exc}", error=True)
            self.job_finished.emit("failed")
            return
        self.last_layer = layer
        self.progress.setValue(1000)
        took = format_duration(time.monotonic() - self._started)
        self.progress.setFormat(f"done in {took}")
        self._show_preview(result.raw)
        self._say(f"Added layer {layer.name()!r}{note}. Edit > Undo removes it.")
        self.job_finished.emit("done")

    def _failed(self, message: str) -> None:
        self.progress.setFormat("failed")
        self._say(f"Stylize failed: {message}", error=True)
        self.job_finished.emit("failed")

    def _cancelled(self) -> None:
        self.progress.setValue(0)
        self.progress.setFormat("cancelled")
        self._say("Cancelled; no layer was added.")
        self.job_finished.emit("cancelled")

    def _worker_done(self) -> None:
        if self._worker is not None:
            self._worker.deleteLater()
        self._worker = None
        self._capture = None
        self._set_busy(False)
