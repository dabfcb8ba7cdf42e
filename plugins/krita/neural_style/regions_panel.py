"""The docker's "Regions": a style per part of the layer, listed for the active document.

A region comes from the current selection or from a paint layer or selection mask (chosen in
a menu of the document's layers); each row shows where the region lies (its mask, white on
black, over the whole canvas), its style (a button with the style's thumbnail and a menu:
a file, the main style, a recent one), its strength, and buttons to move it up or down (the
first wins where regions overlap) or remove it. The rules live in `regions` (no Qt); this
panel only shows them and turns clicks into calls. What goes outside the regions (the photo
as it is, or the main style) is a choice of the document's too.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from krita import Krita

from nst_client import strength
from nst_client.client import RawImage, StyleInput

from . import images, layer_ops, regions
from .qt import (
    ALIGN_CENTER,
    ALIGN_RIGHT_CENTER,
    ARROW_DOWN,
    ARROW_UP,
    COMBO_SHRINKS,
    FORMAT_GREY8,
    HORIZONTAL,
    INSTANT_POPUP,
    KEEP_ASPECT,
    SMOOTH,
    STYLED_PANEL,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QIcon,
    QLabel,
    QMenu,
    QPixmap,
    QPushButton,
    QSize,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
    qimage_from_bytes,
)
from .widgets import ERROR_STYLE, wrapped

THUMB = 44
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif);;All files (*)"
OUTSIDE_CHOICES = (
    (regions.OUTSIDE_PHOTO, "the photo"),
    (regions.OUTSIDE_MAIN, "the main style"),
)
NONE_YET = "No regions: the main style covers the layer (or the selection)."
SOME = "Regions (the first wins where they overlap):"

#: (main style's path, main strength): what a new region starts with.
Defaults = Callable[[], tuple[str, float]]


def _action(menu: QMenu, text: str) -> Any:
    """A new entry of the menu (PyQt's stubs say addAction may give None)."""
    action = menu.addAction(text)
    if action is None:
        raise RuntimeError(f"Qt made no menu entry {text!r}")
    return action


def mask_pixmap(mask: regions.Mask) -> QPixmap:
    width, height, grey = regions.thumbnail(mask, THUMB)
    return QPixmap.fromImage(qimage_from_bytes(grey, width, height, width, FORMAT_GREY8))


class RegionRow(QFrame):
    """One region: its mask, its style button, its words; its strength and its buttons."""

    def __init__(self, panel: RegionsPanel, number: int, region: regions.Region) -> None:
        super().__init__(panel.rows)
        self.setObjectName("nst_region")
        self.setFrameShape(STYLED_PANEL)
        self.region = region
        self.mask_label = QLabel(self)
        self.mask_label.setObjectName("nst_region_mask")
        self.mask_label.setFixedSize(THUMB, THUMB)
        self.mask_label.setAlignment(ALIGN_CENTER)
        self.mask_label.setPixmap(panel.mask_thumbnail(region))
        self.mask_label.setToolTip(f"Where region {number} lies (white: all of its style)")
        self.style_button = QToolButton(self)
        self.style_button.setObjectName("nst_region_style")
        self.style_button.setFixedSize(THUMB + 6, THUMB + 6)
        self.style_button.setIconSize(QSize(THUMB, THUMB))
        self.style_button.setPopupMode(INSTANT_POPUP)
        self.style_button.setToolTip(region.style_path or "Choose this region's style")
        icon = panel.style_icon(region.style_path)
        if icon is None:
            self.style_button.setText("style…")
        else:
            self.style_button.setIcon(icon)
        self.style_menu = QMenu(self.style_button)
        self.style_menu.aboutToShow.connect(partial(panel.fill_style_menu, self))
        self.style_button.setMenu(self.style_menu)
        style_name = Path(region.style_path).name if region.style_path else "no style yet"
        source = region.source[:1].upper() + region.source[1:]
        self.words = wrapped(f"{number}. {source}\n{style_name}", self, "nst_region_label")
        if icon is None:
            self.words.setStyleSheet(ERROR_STYLE)
        top = QHBoxLayout()
        top.addWidget(self.mask_label)
        top.addWidget(self.style_button)
        top.addWidget(self.words, 1)

        self.strength = QSlider(HORIZONTAL, self)
        self.strength.setObjectName("nst_region_strength")
        self.strength.setRange(int(strength.MINIMUM), int(strength.MAXIMUM))
        self.strength.setValue(round(region.strength))
        self.strength.setToolTip(f"Region {number}'s strength (the same scale as Strength)")
        self.value = QLabel(str(self.strength.value()), self)
        self.value.setObjectName("nst_region_strength_value")
        self.value.setAlignment(ALIGN_RIGHT_CENTER)
        digits = self.value.fontMetrics().horizontalAdvance(str(int(strength.MAXIMUM)))
        self.value.setFixedWidth(digits + 4)
        self.strength.valueChanged.connect(partial(panel.set_strength, region.ident))
        self.strength.valueChanged.connect(self.value.setNum)
        bottom = QHBoxLayout()
        bottom.addWidget(self.strength, 1)
        bottom.addWidget(self.value)
        self.up = self._button(ARROW_UP, "", "nst_region_up", "Move up: wins where they overlap")
        self.down = self._button(ARROW_DOWN, "", "nst_region_down", "Move down")
        self.remove = self._button(None, "✕", "nst_region_remove", "Remove this region")
        self.up.clicked.connect(partial(panel.move_region, region.ident, -1))
        self.down.clicked.connect(partial(panel.move_region, region.ident, 1))
        self.remove.clicked.connect(partial(panel.remove_region, region.ident))
        for button in (self.up, self.down, self.remove):
            bottom.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(bottom)

    def _button(self, arrow: Any, text: str, name: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setObjectName(name)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        if arrow is not None:
            button.setArrowType(arrow)
        else:
            button.setText(text)
        return button


class RegionsPanel(QWidget):
    """The regions of the active document; `said` carries words (and whether they are an
    error) for the docker's job line, `chosen` a style file picked for a region."""

    said = pyqtSignal(str, bool)
    chosen = pyqtSignal(str)

    def __init__(
        self, parent: QWidget, defaults: Defaults, recent: Callable[[], list[str]]
    ) -> None:
        super().__init__(parent)
        self.setObjectName("nst_regions")
        self._defaults, self._recent = defaults, recent
        self._document: str | None = None
        self._icons: dict[str, QIcon | None] = {}
        self._masks: dict[int, QPixmap] = {}
        self._rows: list[RegionRow] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.heading = wrapped(NONE_YET, self, "nst_regions_heading")
        self.heading.setToolTip(
            "Each region gets its own style and strength in one job. With regions, the "
            "regions say where: the current selection is not used."
        )
        layout.addWidget(self.heading)
        self.rows = QWidget(self)
        self.rows.setObjectName("nst_region_rows")
        self.rows_layout = QVBoxLayout(self.rows)
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.rows)
        self.from_selection = QPushButton("Selection", self)
        self.from_selection.setObjectName("nst_region_from_selection")
        self.from_selection.setToolTip("Add a region from the current selection (soft edges kept)")
        self.from_selection.clicked.connect(self._selection_clicked)
        self.from_layer = QPushButton("Layer…", self)
        self.from_layer.setObjectName("nst_region_from_layer")
        self.from_layer.setToolTip(
            "Add a region from a layer: a paint layer's painted pixels (its alpha; a layer "
            "opaque over the whole canvas gives its grey value, white = all), or a selection "
            "mask's values"
        )
        self.layer_menu = QMenu(self.from_layer)
        self.layer_menu.aboutToShow.connect(self.fill_layer_menu)
        self.from_layer.setMenu(self.layer_menu)
        layout.addWidget(wrapped("Add a region from:", self))
        row = QHBoxLayout()
        row.addWidget(self.from_selection, 1)
        row.addWidget(self.from_layer, 1)
        layout.addLayout(row)
        self.outside = QComboBox(self)
        self.outside.setObjectName("nst_outside_regions")
        for value, text in OUTSIDE_CHOICES:
            self.outside.addItem(text, value)
        self.outside.setSizeAdjustPolicy(COMBO_SHRINKS)
        self.outside.setMinimumContentsLength(6)
        self.outside.setToolTip(
            "What the rest of the layer gets: it stays the photo (the new layer is transparent "
            "there), or the main style above"
        )
        self.outside.currentIndexChanged.connect(self._outside_changed)
        self.outside_label = wrapped("Outside the regions:", self, "nst_outside_label")
        row = QHBoxLayout()
        row.addWidget(self.outside_label)
        row.addWidget(self.outside, 1)
        layout.addLayout(row)
        self.sync()

    # -- the active document's list ---------------------------------------------------------
    def _active(self) -> tuple[str | None, regions.DocumentRegions | None]:
        """The active document's key and regions; (None, None) without a document."""
        document = Krita.instance().activeDocument()
        if document is None:
            return None, None
        return regions.document_key(document), regions.regions_of(document, Krita.instance())

    def current(self) -> regions.DocumentRegions | None:
        """The active document's regions, shown first if another document became active."""
        key, found = self._active()
        if key != self._document:
            self._document = key
            self._show(found)
        return found

    def sync(self) -> None:
        """Show the active document's regions (the docker calls this when the canvas changes)."""
        self._document, found = self._active()
        self._show(found)

    def _show(self, found: regions.DocumentRegions | None) -> None:
        for row in self._rows:
            row.hide()
            row.deleteLater()
        listed = found.regions if found is not None else []
        self._rows = [RegionRow(self, number, region) for number, region in enumerate(listed, 1)]
        for number, row in enumerate(self._rows, start=1):
            row.up.setEnabled(number > 1)
            row.down.setEnabled(number < len(listed))
            self.rows_layout.addWidget(row)
        self.rows.setVisible(bool(listed))
        self.heading.setText(SOME if listed else NONE_YET)
        self.outside.blockSignals(True)
        outside = found.outside if found is not None else regions.OUTSIDE_PHOTO
        self.outside.setCurrentIndex(self.outside.findData(outside))
        self.outside.blockSignals(False)
        self.outside.setVisible(bool(listed))
        self.outside_label.setVisible(bool(listed))
        live = {r.ident for r in listed}
        self._masks = {k: v for k, v in self._masks.items() if k in live}

    def region_rows(self) -> list[RegionRow]:
        """The rows shown, first region first."""
        return list(self._rows)

    # -- adding -----------------------------------------------------------------------------
    def add_from_selection(self) -> bool:
        document = Krita.instance().activeDocument()
        return self._add(lambda: regions.from_selection(document), "the selection", "selection")

    def _selection_clicked(self) -> None:
        self.add_from_selection()

    def add_from_node(self, node: Any) -> bool:
        document = Krita.instance().activeDocument()
        name = node.name()
        source = f"layer {name!r}" if node.type() == "paintlayer" else f"mask {name!r}"
        return self._add(lambda: regions.from_node(document, node), source, source)

    def _add(self, take: Callable[[], regions.Mask], what: str, source: str) -> bool:
        """Add a region from `take()`: False, with the reason said and nothing changed, when
        it cannot be made."""
        found = self.current()
        try:
            if found is None:
                raise regions.RegionError("open a document first")
            mask = take()
            style_path, start = self._defaults()
            number = found.add(regions.Region(mask, source, style_path, start))
        except regions.RegionError as exc:
            self.said.emit(f"Cannot add a region: {exc}", True)
            return False
        self._show(found)
        style = Path(style_path).name if style_path else "no style yet: choose one"
        self.said.emit(
            f"Added region {number} from {what} ({mask.width}x{mask.height} px; {style}).", False
        )
        return True

    def fill_layer_menu(self) -> None:
        """The document's paint layers and selection masks, as the Layers docker lists them."""
        self.layer_menu.clear()
        found = regions.sources(Krita.instance().activeDocument())
        for label, node in found:
            _action(self.layer_menu, label).triggered.connect(partial(self._add_chosen, node))
        if not found:
            _action(self.layer_menu, "(no paint layer or selection mask)").setEnabled(False)

    def _add_chosen(self, node: Any) -> None:
        self.add_from_node(node)

    # -- editing ----------------------------------------------------------------------------
    def _edit(self, change: Callable[[regions.DocumentRegions], bool]) -> None:
        found = self.current()
        if found is not None and change(found):
            self._show(found)

    def move_region(self, ident: int, step: int) -> None:
        self._edit(lambda found: found.move(ident, step))

    def remove_region(self, ident: int) -> None:
        self._edit(lambda found: found.remove(ident))

    def set_strength(self, ident: int, value: int) -> None:
        found = self.current()
        region = found.find(ident) if found is not None else None
        if region is not None:
            region.strength = float(value)

    def set_region_style(self, ident: int, path: str) -> None:
        """Give a region its style (the file is checked, and the reason said if it cannot
        be read; the region keeps the path so that it shows which)."""
        self._icons.pop(path, None)

        def change(found: regions.DocumentRegions) -> bool:
            region = found.find(ident)
            if region is None:
                return False
            region.style_path = path
            return True

        self._edit(change)
        if self.style_icon(path) is not None:
            self.chosen.emit(path)

    def _browse(self, row: RegionRow) -> None:
        start = row.region.style_path or self._defaults()[0]
        folder = str(Path(start).parent) if start else ""
        path, _ = QFileDialog.getOpenFileName(self, "Choose a style image", folder, IMAGE_FILTER)
        if path:
            self.set_region_style(row.region.ident, path)

    def fill_style_menu(self, row: RegionRow) -> None:
        menu = row.style_menu
        menu.clear()
        _action(menu, "Choose a file…").triggered.connect(partial(self._browse, row))
        main = self._defaults()[0]
        choices = ([("The main style: ", main)] if main else []) + [
            ("", path) for path in self._recent() if path != main
        ]
        if choices:
            menu.addSeparator()
        for words, path in choices:
            action = _action(menu, f"{words}{Path(path).name}")
            action.setToolTip(path)
            action.triggered.connect(partial(self.set_region_style, row.region.ident, path))

    def _outside_changed(self, _: int) -> None:
        found = self.current()
        if found is not None:
            found.outside = str(self.outside.currentData())

    # -- pictures ---------------------------------------------------------------------------
    def mask_thumbnail(self, region: regions.Region) -> QPixmap:
        if region.ident not in self._masks:
            self._masks[region.ident] = mask_pixmap(region.mask)
        return self._masks[region.ident]

    def style_icon(self, path: str) -> QIcon | None:
        """The style's thumbnail; None (and the reason said) when it cannot be read."""
        if not path:
            return None
        if path not in self._icons:
            try:
                _, image = images.load_style(path, max_side=2 * THUMB)
            except images.ImageError as exc:
                self.said.emit(str(exc), True)
                self._icons[path] = None
            else:
                scaled = image.scaled(THUMB, THUMB, KEEP_ASPECT, SMOOTH)
                self._icons[path] = QIcon(QPixmap.fromImage(scaled))
        return self._icons[path]

    # -- the job ----------------------------------------------------------------------------
    def job(
        self, document: Any, main_path: str, load: Callable[[str], RawImage]
    ) -> tuple[layer_ops.Capture, list[StyleInput], str, str] | None:
        """The area, styles, result name and words of a regions job; None when the document
        has no regions (the main style's job, as before). RegionError or StylizeInputError
        say why it cannot run."""
        found = self.current() if document is not None else None
        if found is None or not found.regions:
            return None
        plan = regions.plan(found, (document.width(), document.height()))
        styles: list[StyleInput] = list(regions.styles(found, plan, load, main_path))
        capture = layer_ops.capture(document, (plan.area, plan.shown))
        paths = [r.style_path for r in found.regions]
        if plan.rest is not None:
            paths.append(main_path)
        names = list(dict.fromkeys(Path(p).stem for p in paths))
        count = len(found.regions)
        words = f"in {count} region{'s' if count > 1 else ''}"
        if plan.rest is not None:
            words += f", {Path(main_path).name} elsewhere"
        if document.selection() is not None and document.selection().width() > 0:
            words += " (the regions say where: the selection is not used)"
        return capture, styles, " + ".join(names), words
