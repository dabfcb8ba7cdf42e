"""A stand-in for Krita's `krita` module, so the Neural Style docker runs in unit tests.

Krita's Python API (libkis) exists only inside Krita. This module has the part of it the
plug-in uses, with Krita's names and behaviour as far as the plug-in can tell: layers keep
their pixels as Krita hands them out (B,G,R,A interleaved at the layer's depth, the whole
canvas), `childNodes()` lists bottom to top, `addChildNode(node, above)` puts node just above
`above` (on top for None), a selection's x/y/width/height bound its selected pixels, a paint
layer's bounds() are those of its painted pixels (the whole canvas when it has none), a
selection mask hands out its selection while a transparency mask's pixelData is empty (as in
Krita 5.1).

`load_plugin()` makes the Qt application (offscreen), installs this module as
sys.modules['krita'] and imports the plug-in package `neural_style` from plugins/krita.
`reset()` gives a fresh `Krita.instance()` (no documents, no settings) for each test.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from PyQt5.QtCore import QByteArray, QRect
from PyQt5.QtWidgets import QApplication, QDockWidget

from nst_client import layouts

PLUGIN_ROOT = Path(__file__).resolve().parents[2] / "plugins" / "krita"
#: Channels of each colour model and bytes per channel of each depth.
MODEL_CHANNELS = {"RGBA": 4, "GRAYA": 2, "CMYKA": 5, "LABA": 4}
DEPTH_BYTES = {"U8": 1, "U16": 2, "F16": 2, "F32": 4}
PROFILE = "sRGB-elle-V2-srgbtrc.icc"
_DTYPES = {"U8": "u8", "U16": "u16", "F32": "f32"}
#: Node types whose pixels Krita 5.1 does not hand out through pixelData.
MASK_TYPES = ("transparencymask", "selectionmask", "filtermask")
_APP: list[QApplication] = []


def application() -> QApplication:
    """The one QApplication of the test session, on Qt's offscreen platform."""
    if not _APP:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        existing = QApplication.instance()
        _APP.append(existing if isinstance(existing, QApplication) else QApplication([]))
    return _APP[0]


def load_plugin() -> ModuleType:
    """The plug-in package, imported as Krita would (its folder on sys.path, `krita` here)."""
    application()
    sys.modules["krita"] = sys.modules[__name__]
    if str(PLUGIN_ROOT) not in sys.path:
        sys.path.insert(0, str(PLUGIN_ROOT))
    import neural_style

    return neural_style


def reset() -> Krita:
    """A fresh Krita: no documents, no settings, no docker factories."""
    Krita._instance = Krita()
    return Krita._instance


class Selection:
    """A global selection: one byte a pixel (0 = not selected, 255 = fully selected)."""

    def __init__(self) -> None:
        self._patches: list[tuple[int, int, int, int, bytes]] = []

    def select(self, x: int, y: int, w: int, h: int, value: int) -> None:
        self._patches.append((x, y, w, h, bytes([value]) * (w * h)))

    def setPixelData(self, value: bytes, x: int, y: int, w: int, h: int) -> None:
        if len(value) != w * h:
            raise ValueError(f"{len(value)} bytes for a {w}x{h} selection")
        self._patches.append((x, y, w, h, bytes(value)))

    def _bounds(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) around the selected pixels; all 0 when nothing is selected."""
        if not self._patches:
            return 0, 0, 0, 0
        x0 = min(p[0] for p in self._patches)
        y0 = min(p[1] for p in self._patches)
        w = max(p[0] + p[2] for p in self._patches) - x0
        h = max(p[1] + p[3] for p in self._patches) - y0
        mask = bytes(self.pixelData(x0, y0, w, h))
        rows = [r for r in range(h) if any(mask[r * w : (r + 1) * w])]
        cols = [c for c in range(w) if any(mask[c::w])]
        if not rows:
            return 0, 0, 0, 0
        return x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1

    def x(self) -> int:
        return self._bounds()[0]

    def y(self) -> int:
        return self._bounds()[1]

    def width(self) -> int:
        x0, _, x1, _ = self._bounds()
        return x1 - x0

    def height(self) -> int:
        _, y0, _, y1 = self._bounds()
        return y1 - y0

    def pixelData(self, x: int, y: int, w: int, h: int) -> QByteArray:
        out = bytearray(w * h)
        for px, py, pw, ph, data in self._patches:
            for row in range(max(y, py), min(y + h, py + ph)):
                left, right = max(x, px), min(x + w, px + pw)
                if left < right:
                    src = (row - py) * pw + (left - px)
                    dst = (row - y) * w + (left - x)
                    out[dst : dst + right - left] = data[src : src + right - left]
        return QByteArray(bytes(out))


class Node:
    """A layer. Pixels cover the whole canvas; outside it pixelData reads zeros."""

    def __init__(
        self,
        document: Document,
        name: str,
        node_type: str = "paintlayer",
        model: str = "RGBA",
        depth: str = "U8",
        profile: str = PROFILE,
    ) -> None:
        self._document = document
        self._name, self._type = name, node_type
        self._model, self._depth, self._profile = model, depth, profile
        self._id = uuid.uuid4()
        self._parent: Node | None = None
        self._children: list[Node] = []
        self._pixels = bytearray(document.width() * document.height() * self._bpp())

    def _bpp(self) -> int:
        return MODEL_CHANNELS[self._model] * DEPTH_BYTES[self._depth]

    def name(self) -> str:
        return self._name

    def setName(self, name: str) -> None:
        self._name = name

    def type(self) -> str:
        return self._type

    def uniqueId(self) -> uuid.UUID:
        return self._id

    def colorModel(self) -> str:
        return self._model

    def colorDepth(self) -> str:
        return self._depth

    def colorProfile(self) -> str:
        return self._profile

    def setColorSpace(self, model: str, depth: str, profile: str) -> bool:
        """Converts the pixels, as Krita does (here between RGBA depths only)."""
        if model != self._model:
            raise NotImplementedError("the stand-in converts between RGBA depths only")
        data = layouts.convert_dtype(self._pixels, _DTYPES[self._depth], _DTYPES[depth])
        self._depth, self._profile, self._pixels = depth, profile, bytearray(data)
        return True

    def parentNode(self) -> Node | None:
        return self._parent

    def childNodes(self) -> list[Node]:
        return list(self._children)

    def addChildNode(self, child: Node, above: Node | None) -> bool:
        at = len(self._children) if above is None else self._children.index(above) + 1
        self._children.insert(at, child)
        child._parent = self
        return True

    def remove(self) -> bool:
        if self._parent is None:
            return False
        self._parent._children.remove(self)
        self._parent = None
        return True

    def _rows(self, x: int, y: int, w: int, h: int) -> list[tuple[int, int, int]]:
        """(offset in the layer, offset in the area, bytes) of each row part on the canvas."""
        bpp, doc_w, doc_h = self._bpp(), self._document.width(), self._document.height()
        left, right = max(x, 0), min(x + w, doc_w)
        if left >= right:
            return []
        return [
            ((row * doc_w + left) * bpp, ((row - y) * w + left - x) * bpp, (right - left) * bpp)
            for row in range(max(y, 0), min(y + h, doc_h))
        ]

    def bounds(self) -> QRect:
        """Around the pixels that are not all zero; the whole canvas when there are none."""
        bpp, width = self._bpp(), self._document.width()
        row_bytes = width * bpp
        rows = [self._pixels[r * row_bytes : (r + 1) * row_bytes] for r in range(self._height())]
        used = [r for r, row in enumerate(rows) if any(row)]
        if not used:
            return QRect(0, 0, width, self._height())
        columns = [
            c for c in range(width) if any(any(row[c * bpp : (c + 1) * bpp]) for row in rows)
        ]
        return QRect(columns[0], used[0], columns[-1] + 1 - columns[0], used[-1] + 1 - used[0])

    def _height(self) -> int:
        return self._document.height()

    def pixelData(self, x: int, y: int, w: int, h: int) -> QByteArray:
        if self._type in MASK_TYPES:
            return QByteArray()  # Krita 5.1 gives plug-ins no mask's pixels this way
        out = bytearray(w * h * self._bpp())
        for src, dst, n in self._rows(x, y, w, h):
            out[dst : dst + n] = self._pixels[src : src + n]
        return QByteArray(bytes(out))

    def setPixelData(self, value: bytes, x: int, y: int, w: int, h: int) -> bool:
        data = bytes(value)
        if len(data) != w * h * self._bpp():
            return False
        for dst, src, n in self._rows(x, y, w, h):
            self._pixels[dst : dst + n] = data[src : src + n]
        return True


class SelectionMask(Node):
    """A local selection on a layer: its values are a Selection's."""

    def __init__(self, document: Document, name: str) -> None:
        super().__init__(document, name, "selectionmask")
        self._selection = Selection()

    def selection(self) -> Selection:
        return self._selection

    def setSelection(self, selection: Selection) -> None:
        self._selection = selection


class Document:
    """An open image: a root group holding a "Background" paint layer, which is active."""

    def __init__(
        self,
        width: int,
        height: int,
        name: str = "Untitled",
        model: str = "RGBA",
        depth: str = "U8",
        profile: str = PROFILE,
    ) -> None:
        self._width, self._height, self._name = width, height, name
        self._model, self._depth, self._profile = model, depth, profile
        self._root = Node(self, "root", "grouplayer", model, depth, profile)
        self._active: Node | None = self.createNode("Background", "paintlayer")
        self._root.addChildNode(self._active, None)
        self._selection: Selection | None = None
        self.refreshed = 0

    def name(self) -> str:
        return self._name

    def width(self) -> int:
        return self._width

    def height(self) -> int:
        return self._height

    def colorModel(self) -> str:
        return self._model

    def colorDepth(self) -> str:
        return self._depth

    def rootNode(self) -> Node:
        return self._root

    def createNode(self, name: str, node_type: str) -> Node:
        """A new node in the image's colour space, not yet in the layer stack."""
        if node_type == "selectionmask":
            return SelectionMask(self, name)
        return Node(self, name, node_type, self._model, self._depth, self._profile)

    def createGroupLayer(self, name: str) -> Node:
        return self.createNode(name, "grouplayer")

    def activeNode(self) -> Node | None:
        return self._active

    def setActiveNode(self, node: Node) -> None:
        self._active = node

    def selection(self) -> Selection | None:
        return self._selection

    def setSelection(self, selection: Selection | None) -> None:
        self._selection = selection

    def refreshProjection(self) -> None:
        self.refreshed += 1

    def close(self) -> bool:
        Krita.instance()._forget(self)
        return True


class Krita:
    """The application object: settings, the active document, registered dockers."""

    _instance: Krita | None = None

    def __init__(self) -> None:
        self.settings: dict[tuple[str, str], str] = {}
        self._documents: list[Document] = []
        self.factories: list[DockWidgetFactory] = []
        self._active: Document | None = None

    @classmethod
    def instance(cls) -> Krita:
        if cls._instance is None:
            cls._instance = Krita()
        return cls._instance

    def readSetting(self, group: str, name: str, default: str) -> str:
        return self.settings.get((group, name), default)

    def writeSetting(self, group: str, name: str, value: str) -> None:
        self.settings[(group, name)] = str(value)

    def activeDocument(self) -> Document | None:
        return self._active

    def setActiveDocument(self, document: Document | None) -> None:
        if document is not None and document not in self._documents:
            self._documents.append(document)
        self._active = document

    def documents(self) -> list[Document]:
        return list(self._documents)

    def _forget(self, document: Document) -> None:
        self._documents.remove(document)
        if self._active is document:
            self._active = self._documents[-1] if self._documents else None

    def addDockWidgetFactory(self, factory: DockWidgetFactory) -> None:
        self.factories.append(factory)


class DockWidget(QDockWidget):
    """Krita's docker base class: a QDockWidget told when the active canvas changes."""

    def __init__(self) -> None:
        super().__init__()

    def canvas(self) -> Any:
        return None

    def canvasChanged(self, canvas: Any) -> None:
        raise NotImplementedError("a docker must implement canvasChanged")


class DockWidgetFactoryBase:
    DockTornOff, DockTop, DockBottom, DockRight, DockLeft, DockMinimized = range(6)


class DockWidgetFactory(DockWidgetFactoryBase):
    def __init__(self, identifier: str, area: int, docker: type[DockWidget]) -> None:
        self.identifier, self.area, self.docker = identifier, area, docker

    def id(self) -> str:
        return self.identifier
