"""Reading the area to stylize from Krita and adding the result as a new layer (GUI thread).

The source layer is only ever read (pixelData); the result goes into a fresh paint layer whose
pixels are set before it is inserted, so inserting it is the single undoable step: in Krita
5.1 `Node.addChildNode` goes through the image's undo adapter (measured: Edit > Undo removes
the layer), while `setPixelData` on a layer would bypass the undo stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nst_client import layouts
from nst_client.client import RawImage
from nst_client.protocol import ImageDesc

from . import pixels

SUPPORTED_DEPTHS = {"U8": "u8", "U16": "u16"}
CHANNEL_NAMES = {1: "grey", 2: "grey+alpha", 3: "RGB", 4: "RGBA"}
MIN_SIDE = 16
#: (x, y, width, height) on the canvas.
Rect = tuple[int, int, int, int]


class StylizeInputError(ValueError):
    """Why the current document/layer/selection cannot be stylized, in words for the user."""


@dataclass
class Capture:
    """What a job was started from: enough to put the result back even if focus moved."""

    document: Any
    node: Any
    node_id: Any
    source_name: str
    depth: str
    x: int
    y: int
    width: int
    height: int
    wire: bytes
    dtype: str
    mask: bytes | None

    def content(self) -> RawImage:
        return layouts.describe(self.width, self.height, 4, self.dtype, 1), self.wire


def _selection_rect(document: Any) -> tuple[int, int, int, int, Any]:
    """(x, y, w, h, selection-or-None) of the area to stylize, clipped to the canvas."""
    doc_w, doc_h = document.width(), document.height()
    selection = document.selection()
    if selection is None or selection.width() <= 0 or selection.height() <= 0:
        return 0, 0, doc_w, doc_h, None
    x0, y0 = max(selection.x(), 0), max(selection.y(), 0)
    x1 = min(selection.x() + selection.width(), doc_w)
    y1 = min(selection.y() + selection.height(), doc_h)
    if x1 <= x0 or y1 <= y0:
        raise StylizeInputError("the selection lies outside the canvas")
    return x0, y0, x1 - x0, y1 - y0, selection


def capture(document: Any, regions: tuple[Rect, bytes | None] | None = None) -> Capture:
    """Read the active paint layer (inside the selection, if any) as wire RGBA. With
    `regions` (their area, and where the result shows: 0 = transparent, None = everywhere)
    the regions say where, and the current selection is not used."""
    if document is None:
        raise StylizeInputError("open a document first")
    node = document.activeNode()
    if node is None:
        raise StylizeInputError("select the paint layer to stylize in the Layers docker")
    if node.type() != "paintlayer":
        raise StylizeInputError(
            f"the active layer {node.name()!r} is a {node.type() or 'mask'}; select a paint layer"
        )
    if node.colorModel() != "RGBA":
        raise StylizeInputError(
            f"layer {node.name()!r} is in {node.colorModel()}; convert it "
            f"to RGB/Alpha (Image > Convert Image Color Space)"
        )
    depth = node.colorDepth()
    if depth not in SUPPORTED_DEPTHS:
        raise StylizeInputError(
            f"layer {node.name()!r} is {depth}; 8-bit and 16-bit integer channels are supported"
        )
    if regions is None:
        x, y, width, height, selection = _selection_rect(document)
    else:
        (x, y, width, height), selection = regions[0], None
    if min(width, height) < MIN_SIDE:
        raise StylizeInputError(
            f"the area to stylize is {width}x{height} px; it needs at "
            f"least {MIN_SIDE} px on each side"
        )
    raw = bytes(node.pixelData(x, y, width, height))
    expected = layouts.nbytes(width, height, 4, SUPPORTED_DEPTHS[depth])
    if len(raw) != expected:
        raise StylizeInputError(
            f"Krita returned {len(raw)} bytes for a {width}x{height} "
            f"{depth} area (expected {expected})"
        )
    wire, dtype = layouts.krita_to_wire(raw, depth)
    mask = bytes(selection.pixelData(x, y, width, height)) if selection is not None else None
    if regions is not None:
        mask = regions[1]
    if mask is not None and not any(mask):
        raise StylizeInputError("the selection is empty")
    visible = wire if mask is None else pixels.mask_alpha(wire, dtype, mask)
    if pixels.alpha_is_empty(visible, dtype):
        raise StylizeInputError(f"layer {node.name()!r} is empty in the area to stylize")
    return Capture(
        document=document,
        node=node,
        node_id=node.uniqueId(),
        source_name=node.name(),
        depth=depth,
        x=x,
        y=y,
        width=width,
        height=height,
        wire=wire,
        dtype=dtype,
        mask=mask,
    )


def result_name(source_name: str, style_name: str) -> str:
    return f"{source_name} ({style_name} style)"


def _find_node(parent: Any, unique_id: Any) -> Any:
    for child in parent.childNodes():
        if child.uniqueId() == unique_id:
            return child
        found = _find_node(child, unique_id)
        if found is not None:
            return found
    return None


def _layout(width: int, height: int, channels: int, dtype: str) -> str:
    return f"{width}x{height} {CHANNEL_NAMES.get(channels, f'{channels}-channel')} {dtype}"


def fit_result(cap: Capture, image: ImageDesc, data: bytes) -> bytes:
    """The daemon's result as the new layer's wire RGBA: outside the selection transparent.

    The daemon returns the content's own layout (the engine keeps alpha); anything else is a
    daemon this plug-in does not match, and no layer is made from it.
    """
    want = (cap.width, cap.height, 4, cap.dtype)
    got = (image["width"], image["height"], image["channels"], image["dtype"])
    if got != want:
        raise layouts.LayoutError(
            f"the daemon sent back a {_layout(*got)} image for a {_layout(*want)} area; "
            f"update the daemon and reinstall the plug-in (`nst install-plugin krita`)"
        )
    layouts.check_buffer(image, data, "result")
    return data if cap.mask is None else pixels.mask_alpha(data, cap.dtype, cap.mask)


def add_result_layer(cap: Capture, wire: bytes, style_name: str) -> tuple[Any, str]:
    """Insert the result as a new paint layer directly above the source; (layer, note)."""
    document = cap.document
    layer = document.createNode(result_name(cap.source_name, style_name), "paintlayer")
    if (layer.colorModel(), layer.colorDepth()) != (cap.node.colorModel(), cap.depth):
        layer.setColorSpace(cap.node.colorModel(), cap.depth, cap.node.colorProfile())
    layer.setPixelData(layouts.wire_to_krita(wire, cap.dtype), cap.x, cap.y, cap.width, cap.height)
    source = _find_node(document.rootNode(), cap.node_id)
    note = ""
    if source is not None and source.parentNode() is not None:
        source.parentNode().addChildNode(layer, source)
    else:
        document.rootNode().addChildNode(layer, None)
        note = f" (layer {cap.source_name!r} was gone: result added on top)"
    document.setActiveNode(layer)
    document.refreshProjection()
    return layer, note
