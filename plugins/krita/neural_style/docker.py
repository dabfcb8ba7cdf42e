"""The "Neural Style" docker: pick a style, press Stylize, get a new layer above the source.
With regions (regions_panel), each part of the layer gets its own style in the same job.

All engine traffic runs in worker QThreads; this class only reads widgets, reads and writes
layers on the GUI thread (quick), and reacts to the workers' signals, so Krita never freezes.
Two lines say what is going on: the job line (nst_status) for the last job, and the engine
line (nst_engine_state), kept current by an EngineWatch thread while the docker is visible.
Everything sits in a scroll area and wraps, so a narrow docker on a small screen still shows
every control without overlaps. The Engine settings fold-out is its own widget (engine_panel),
the wrapping labels and the preview are shared ones (widgets).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from krita import DockWidget, Krita

from nst_client import launcher, strength
from nst_client import params as P
from nst_client.client import CANCEL_GRACE_S, JobResult, RawImage, StyleInput
from nst_client.progress import Progress, format_duration
from nst_client.settings import Settings, SettingsError

from . import images, layer_ops, link, regions
from .engine_panel import EnginePanel
from .qt import (
    ALIGN_CENTER,
    ALIGN_RIGHT_CENTER,
    COMBO_SHRINKS,
    HORIZONTAL,
    KEEP_ASPECT,
    NO_FRAME,
    SCROLLBAR_OFF,
    SIZE_EXPANDING,
    SIZE_PREFERRED,
    SMOOTH,
    TEXT_SELECTABLE,
    TOOLTIP_ROLE,
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPixmap,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)
from .regions_panel import RegionsPanel
from .widgets import ERROR_STYLE, WARNING_STYLE, DurationBox, PreviewBox, tip, wrapped
from .worker import EngineWatch, StylizeWorker, plain, stop_watches

DOCKER_ID = "neural_style_docker"
TITLE = "Neural Style"
SETTINGS_GROUP = link.SETTINGS_GROUP
MAX_RECENT = 8
THUMB = 96
PREVIEW_EVERY = 5
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif);;All files (*)"


class NeuralStyleDocker(DockWidget):
    """Docker panel; `job_finished` says 'done', 'failed' or 'cancelled' after each run."""

    job_finished = pyqtSignal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(TITLE)
        self._worker: StylizeWorker | None = None
        self._watch: EngineWatch | None = None
        self._capture: layer_ops.Capture | None = None
        self._style_name = ""
        self._started = 0.0
        #: The engine's state as last shown, and when it was learnt (monotonic).
        self.engine: launcher.EngineState | None = None
        self._engine_at = 0.0
        #: Where the strength slider starts: the engine's default once it said hello.
        self._strength_start = round(strength.DEFAULT)
        self.last_layer: Any = None
        self._build()
        self._load_recent()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(stop_watches)
            app.aboutToQuit.connect(self.end_job)

    # -- widgets ----------------------------------------------------------------------------
    def _build(self) -> None:
        self.scroll_area = QScrollArea(self)
        self.scroll_area.setObjectName("nst_scroll")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setHorizontalScrollBarPolicy(SCROLLBAR_OFF)
        self.scroll_area.setFrameShape(NO_FRAME)
        root = QWidget(self.scroll_area)
        root.setObjectName("nst_content")
        layout = QVBoxLayout(root)
        self._build_style(root, layout)
        self._build_params(root, layout)
        self.regions_panel = RegionsPanel(root, self._region_defaults, self._recent_paths)
        self.regions_panel.said.connect(self._say)
        self.regions_panel.chosen.connect(self._remember)
        layout.addWidget(self.regions_panel)
        self._build_job(root, layout)
        self.engine_panel = EnginePanel(root)
        self.engine_panel.applied.connect(self._settings_applied)
        layout.addWidget(self.engine_panel)
        layout.addStretch(1)
        self.scroll_area.setWidget(root)
        self.setWidget(self.scroll_area)

    def _build_style(self, root: QWidget, layout: QVBoxLayout) -> None:
        self.style_path = QLineEdit(root)
        self.style_path.setObjectName("nst_style_path")
        self.style_path.setPlaceholderText("Style image (painting, texture)…")
        self.style_path.editingFinished.connect(self._style_path_edited)
        browse = QPushButton("Browse…", root)
        browse.setObjectName("nst_browse")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.style_path, 1)
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
        self.recent.setSizeAdjustPolicy(COMBO_SHRINKS)
        self.recent.setMinimumContentsLength(3)
        self.recent.activated.connect(self._recent_chosen)
        self.recent.setSizePolicy(SIZE_EXPANDING, SIZE_PREFERRED)
        side = QVBoxLayout()
        side.addWidget(wrapped("Recent styles:", root))
        side.addWidget(self.recent)
        side.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.thumbnail)
        row.addLayout(side, 1)
        layout.addLayout(row)

    def _build_params(self, root: QWidget, layout: QVBoxLayout) -> None:
        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        self.strength = QSlider(HORIZONTAL, root)
        self.strength.setObjectName("nst_strength")
        self.strength.setRange(int(strength.MINIMUM), int(strength.MAXIMUM))
        self.strength.setToolTip(tip("strength"))
        self.strength_value = QLabel(root)
        self.strength_value.setObjectName("nst_strength_value")
        self.strength_value.setAlignment(ALIGN_RIGHT_CENTER)
        digits = self.strength_value.fontMetrics().horizontalAdvance(str(int(strength.MAXIMUM)))
        self.strength_value.setFixedWidth(digits + 4)
        self.strength.valueChanged.connect(self.strength_value.setNum)
        self.strength.setValue(self._strength_start)
        self.strength_value.setNum(self.strength.value())
        row = QHBoxLayout()
        row.addWidget(self.strength, 1)
        row.addWidget(self.strength_value)
        grid.addWidget(wrapped(P.label("strength"), root), 0, 0)
        grid.addLayout(row, 0, 1)

        self.quality = QComboBox(root)
        self.quality.setObjectName("nst_quality")
        for preset in P.QUALITIES:
            self.quality.addItem(preset.label, preset.name)
            self.quality.setItemData(self.quality.count() - 1, preset.help, TOOLTIP_ROLE)
        self.quality.setCurrentIndex(self.quality.findData(P.DEFAULT_QUALITY))
        self.quality.setSizeAdjustPolicy(COMBO_SHRINKS)
        self.quality.setMinimumContentsLength(6)
        self.quality.currentIndexChanged.connect(self._quality_tip)
        self.quality_label = wrapped(P.label("quality"), root, "nst_quality_label")
        grid.addWidget(self.quality_label, 1, 0)
        grid.addWidget(self.quality, 1, 1)

        self._build_time_limit(root, grid, 2)

        self.working_size = QSpinBox(root)
        self.working_size.setObjectName("nst_size")
        # 0 shows as "Auto" (the planner decides); a typed 1..15 counts as P.MIN_SIZE.
        self.working_size.setRange(P.AUTO_SIZE, int(P.SPECS["size"].maximum or 0))
        self.working_size.setSingleStep(64)
        self.working_size.setSpecialValueText("Auto")
        self.working_size.setValue(P.AUTO_SIZE)
        self.working_size.setSuffix(" px")
        self.working_size.setToolTip(tip("size", "Auto"))
        grid.addWidget(wrapped(P.label("size"), root), 3, 0)
        grid.addWidget(self.working_size, 3, 1)
        layout.addLayout(grid)
        self.preserve = QCheckBox(P.label("preserve_colors"), root)
        self.preserve.setObjectName("nst_preserve_colors")
        self.preserve.setToolTip(tip("preserve_colors"))
        layout.addWidget(self.preserve)

    def _build_time_limit(self, root: QWidget, grid: QGridLayout, row: int) -> None:
        """Off, or the time the job is fitted into; the quality is greyed while it is on."""
        self.time_limit = DurationBox(root)
        self.time_limit.setObjectName("nst_time_limit")
        self.time_limit.setToolTip(tip("time_budget", "Off", "type 90 s, 2 min or 1:30"))
        self.time_limit.valueChanged.connect(self._time_limit_changed)
        grid.addWidget(wrapped(P.label("time_budget"), root), row, 0)
        grid.addWidget(self.time_limit, row, 1)
        self._time_limit_changed(self.time_limit.value())

    def _time_limit_changed(self, seconds: int) -> None:
        on = seconds > 0
        self.quality.setEnabled(not on)
        self.quality_label.setEnabled(not on)
        self._quality_tip()

    def _quality_tip(self, *_: Any) -> None:
        if self.time_limit.value() > 0:
            tip = P.QUALITY_WHILE_LIMITED
        else:
            tip = str(self.quality.currentData(TOOLTIP_ROLE) or "")
        self.quality.setToolTip(tip)

    def time_limit_s(self) -> float | None:
        """The time limit in seconds; None when it is off."""
        return float(self.time_limit.value()) or None

    def _build_job(self, root: QWidget, layout: QVBoxLayout) -> None:
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

        self.preview = PreviewBox(root)
        self.preview.setObjectName("nst_preview")
        layout.addWidget(self.preview)

        self.status = wrapped("", root, "nst_status")
        self.status.setTextInteractionFlags(TEXT_SELECTABLE)
        layout.addWidget(self.status)
        self.engine_state = wrapped("Style engine: checking…", root, "nst_engine_state")
        self.engine_state.setTextInteractionFlags(TEXT_SELECTABLE)
        layout.addWidget(self.engine_state)

    def canvasChanged(self, canvas: Any) -> None:
        """Another document (or none) is active: show its regions."""
        self.regions_panel.sync()

    def showEvent(self, event: Any) -> None:
        """Watch the engine only while someone can see the docker."""
        super().showEvent(event)
        self.regions_panel.sync()
        self.watch_engine()

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self.stop_watching()

    # -- the engine's state -----------------------------------------------------------------
    def watch_engine(self, daemon: Settings | None = None) -> None:
        """Start polling the engine (with these settings, else the saved ones)."""
        if self._watch is not None:
            return
        if daemon is None:
            try:
                daemon = link.load_settings()
            except SettingsError as exc:
                self._settings_broken(exc)
                return
        # Owned by the application, not the docker: Krita may delete a docker whose watch
        # is still in a poll; the watch stops then, and deletes itself once it has ended.
        watch = EngineWatch(daemon, QApplication.instance())
        watch.state_changed.connect(self._watched)
        watch.welcomed.connect(self._welcomed)
        watch.finished.connect(self._watch_ended)
        watch.finished.connect(watch.deleteLater)
        self.destroyed.connect(watch.stop)
        self._watch = watch
        watch.start()

    def stop_watching(self) -> None:
        """Stop polling; returns at once (the thread ends after the poll in flight)."""
        if self._watch is not None:
            self._watch.stop()
            self._watch = None

    def _watch_ended(self) -> None:
        if self.sender() is self._watch:
            self._watch = None

    def _refresh_engine(self) -> None:
        if self._watch is not None:
            self._watch.refresh()

    def _watched(self, state: launcher.EngineState, began: float) -> None:
        """A poll's answer, unless a newer state came from a job meanwhile."""
        if self.sender() is self._watch and began >= self._engine_at:
            self._show_engine(state)

    def _job_engine_state(self, state: launcher.EngineState) -> None:
        """The engine's state as the running job saw it (starting, ready, or unreachable)."""
        self._engine_at = time.monotonic()
        self._show_engine(state)
        if state.phase == launcher.STARTING and self._worker is not None:
            percent = f" {round(100 * state.fraction)}%" if state.fraction is not None else ""
            self.progress.setFormat(f"Starting the style engine…{percent}")
            self.progress.setValue(int(1000 * (state.fraction or 0.0)))

    def _show_engine(self, state: launcher.EngineState) -> None:
        self.engine = state
        note = link.version_warning(state.version)
        summary = plain(state.summary)
        text = f"{summary}\nWarning: {note}" if note else summary
        if state.phase == launcher.UNREACHABLE:
            style = ERROR_STYLE
        else:
            style = WARNING_STYLE if note else ""
        self.engine_state.setStyleSheet(style)
        self.engine_state.setText(text)
        self.engine_state.setToolTip(plain(state.details))
        self.engine_panel.show_details(plain(state.details))

    def _settings_broken(self, exc: SettingsError) -> None:
        self.engine = None
        self._engine_at = time.monotonic()
        self.engine_state.setStyleSheet(ERROR_STYLE)
        self.engine_state.setText(
            f"Style engine settings cannot be used: {exc}. Fix them under Engine settings."
        )
        self.engine_state.setToolTip("")

    def _settings_applied(self, daemon: Settings) -> None:
        """Engine settings were saved: watch the engine they name from now on."""
        self.stop_watching()
        if self.isVisible():
            self.watch_engine(daemon)

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

    def _recent_paths(self) -> list[str]:
        return [str(self.recent.itemData(i)) for i in range(self.recent.count())]

    def _region_defaults(self) -> tuple[str, float]:
        """A new region starts with the main style (if it can be read) and strength."""
        path = self.style_path.text().strip()
        return (path if Path(path).expanduser().is_file() else ""), float(self.strength.value())

    def _fill_recent(self, paths: list[str]) -> None:
        self.recent.blockSignals(True)
        self.recent.clear()
        for path in paths:
            self.recent.addItem(Path(path).name, path)
            self.recent.setItemData(self.recent.count() - 1, path, TOOLTIP_ROLE)
        # The main style stays the one shown when a region's style was remembered.
        self.recent.setCurrentIndex(max(self.recent.findData(self.style_path.text()), 0))
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
    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet(ERROR_STYLE if error else "")
        self.status.setText(text)

    def _set_busy(self, busy: bool) -> None:
        """Swap Stylize and Cancel, the focus going to the one enabled: a disabled button's
        focus would jump to the next widget and scroll the docker to it."""
        now, then = (self.cancel_button, self.stylize_button)[:: 1 if busy else -1]
        # The focus widget, not hasFocus(): that is false while Krita's window is
        # inactive, yet disabling the focus widget still moves the focus and scrolls.
        had_focus = self.focusWidget() is then
        now.setEnabled(True)
        if had_focus:
            now.setFocus()
        then.setEnabled(False)

    def stylize(self) -> None:
        """Stylize the active layer (or its selected part) with the chosen style."""
        if self._worker is not None:
            return
        try:
            try:
                daemon = link.load_settings()
            except SettingsError as exc:
                raise SettingsError(f"{exc}; fix it under Engine settings") from None
            style_path = self.style_path.text().strip()
            capture, styles, style_name, what = self._job_inputs(style_path)
        except (
            SettingsError,
            images.ImageError,
            layer_ops.StylizeInputError,
            regions.RegionError,
        ) as exc:
            self._say(f"Cannot stylize: {exc}", error=True)
            self.progress.setValue(0)
            self.progress.setFormat("idle")
            self.job_finished.emit("failed")
            return
        params = P.editor_params(
            quality=str(self.quality.currentData()),
            time_limit_s=self.time_limit.value(),
            size=self.working_size.value(),
            strength=self.strength.value(),
            preserve_colors=self.preserve.isChecked(),
            area=(capture.width, capture.height),
        )
        self._capture = capture
        self._style_name = style_name
        self._started = time.monotonic()
        worker = StylizeWorker(daemon, capture.content(), styles, params, PREVIEW_EVERY, self)
        worker.engine_state.connect(self._job_engine_state)
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
        self.preview.show_text("preview")
        self._say(
            f"Stylizing {capture.source_name!r} ({capture.width}x{capture.height}, "
            f"{capture.depth}) {what}…"
        )
        worker.start()

    def _job_inputs(self, style_path: str) -> tuple[layer_ops.Capture, list[StyleInput], str, str]:
        """The area, the styles, the name the result is given and the words for them: the
        active document's regions, or else (as without regions) the main style over the
        layer or its selected part."""
        limit = P.style_side_limit(self.working_size.value())
        document = Krita.instance().activeDocument()
        job = self.regions_panel.job(document, style_path, lambda p: images.load_style(p, limit)[0])
        if job is not None:
            return job
        style, _ = images.load_style(style_path, limit)
        capture = layer_ops.capture(document)
        self._remember(style_path)
        name = Path(style_path)
        return capture, [(style, 1.0)], name.stem, f"with {name.name}"

    def end_job(self) -> None:
        """Krita is quitting: cancel the job and wait for its thread (Qt aborts the process
        when a running QThread is deleted); the engine's cancel grace bounds the wait."""
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait(int(1000 * (CANCEL_GRACE_S + 5)))

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.cancel_button.clearFocus()  # else it jumps down the docker, scrolling it
            self.cancel_button.setEnabled(False)
            self.progress.setFormat("cancelling…")

    def _welcomed(self, welcome: dict[str, Any]) -> None:
        """The engine's default strength becomes the slider's, unless the user moved it."""
        start = round(strength.default_strength(welcome))
        if self.strength.value() == self._strength_start:
            self.strength.setValue(start)
        self._strength_start = start

    def _progressed(self, progress: Progress) -> None:
        self.progress.setFormat(progress.text())  # first: valueChanged then shows this text
        self.progress.setValue(int(progress.fraction * 1000))
        if progress.preview is not None:
            self._show_preview(progress.preview)

    def _show_preview(self, raw: RawImage) -> None:
        try:
            image = images.to_qimage(*raw)
        except Exception as exc:  # a bad preview must not end the job
            self.preview.show_text(f"no preview ({exc})")
            return
        self.preview.show_image(image)

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
        self._refresh_engine()
