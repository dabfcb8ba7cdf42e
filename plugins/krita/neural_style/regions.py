"""A style per region, without Qt: each open document's regions, and the job they make.

A region is a mask taken when it is added (the selection's soft values, a paint layer's alpha,
or a selection mask's values; one byte a pixel, kept over its bounding box in canvas
coordinates), the style image it gets and its own strength. Each document has its list, kept
here while Krita runs: the key is the root node's unique id, which Krita keeps for the
document's life; the lists of documents no longer open are dropped.

At Stylize the list makes the job. The first region in the list wins where regions overlap
(as the upper of two layers would); a soft edge leaves the rest of a pixel to the regions
below. The area sent is the rectangle around every region (the whole canvas when the main
style fills what the regions leave); each region goes as a RawStyle whose mask is its share
over that area. Outside the regions the engine keeps the photo, so the new layer is made
transparent there: it holds only what was stylized.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nst_client import layouts, strength
from nst_client.client import RawImage, RawStyle
from nst_client.protocol import MAX_STYLES

#: One style goes to the main style when it fills the rest.
MAX_REGIONS = MAX_STYLES - 1
#: What the engine puts outside the regions: the photo as it is, or the main style.
OUTSIDE_PHOTO, OUTSIDE_MAIN = "photo", "main"
#: The node types a region can be made from (Krita 5.1 hands plug-ins no other mask's pixels).
SOURCE_TYPES = ("paintlayer", "selectionmask", "transparencymask")
#: (x, y, width, height) in canvas pixels.
Rect = tuple[int, int, int, int]

_INVERT = bytes(255 - v for v in range(256))
_ANY = bytes([0] + [255] * 255)
_IDS = itertools.count(1)


class RegionError(ValueError):
    """Why a region cannot be added or used, in words for the user."""


@dataclass(frozen=True)
class Mask:
    """Values 0 (none of the style) .. 255 (all of it) over a rectangle of a canvas."""

    canvas: tuple[int, int]
    x: int
    y: int
    width: int
    height: int
    values: bytes

    def rect(self) -> Rect:
        return self.x, self.y, self.width, self.height

    def crop(self, area: Rect) -> bytes:
        """The values over `area`, 0 where this mask does not reach."""
        ax, ay, aw, ah = area
        out = bytearray(aw * ah)
        left, right = max(ax, self.x), min(ax + aw, self.x + self.width)
        if left >= right:
            return bytes(out)
        for row in range(max(ay, self.y), min(ay + ah, self.y + self.height)):
            src = (row - self.y) * self.width + left - self.x
            dst = (row - ay) * aw + left - ax
            out[dst : dst + right - left] = self.values[src : src + right - left]
        return bytes(out)


@dataclass
class Region:
    """A part of the layer with its own style; `source` says where its mask came from."""

    mask: Mask
    source: str
    style_path: str = ""
    strength: float = strength.DEFAULT
    ident: int = field(default_factory=lambda: next(_IDS))


@dataclass
class DocumentRegions:
    """One document's regions, first winning, and what goes outside them."""

    regions: list[Region] = field(default_factory=list)
    outside: str = OUTSIDE_PHOTO

    def add(self, region: Region) -> int:
        """Append a region; returns its number (1 = the first)."""
        if len(self.regions) >= MAX_REGIONS:
            raise RegionError(f"a document has at most {MAX_REGIONS} regions")
        self.regions.append(region)
        return len(self.regions)

    def find(self, ident: int) -> Region | None:
        return next((r for r in self.regions if r.ident == ident), None)

    def move(self, ident: int, step: int) -> bool:
        """Move a region `step` places (-1: up, towards winning); False when it cannot."""
        region = self.find(ident)
        if region is None:
            return False
        at = self.regions.index(region)
        to = at + step
        if not 0 <= to < len(self.regions):
            return False
        self.regions.insert(to, self.regions.pop(at))
        return True

    def remove(self, ident: int) -> bool:
        region = self.find(ident)
        if region is None:
            return False
        self.regions.remove(region)
        return True


class RegionStore:
    """Every document's regions while Krita runs (not saved with the file)."""

    def __init__(self) -> None:
        self._documents: dict[str, DocumentRegions] = {}

    def of(self, key: str) -> DocumentRegions:
        return self._documents.setdefault(key, DocumentRegions())

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget the documents not among `keys` (those closed): their masks hold memory."""
        live = set(keys)
        for key in [k for k in self._documents if k not in live]:
            del self._documents[key]


STORE = RegionStore()


def document_key(document: Any) -> str:
    """The document's key in the store: its root node's unique id, as text."""
    uid = document.rootNode().uniqueId()
    return str(uid.toString()) if hasattr(uid, "toString") else str(uid)


def regions_of(document: Any, app: Any) -> DocumentRegions:
    """The document's regions, dropping those of documents that were closed."""
    STORE.keep_only(document_key(d) for d in app.documents())
    return STORE.of(document_key(document))


# --- masks from Krita ------------------------------------------------------------------------


def trimmed(values: bytes, area: Rect, canvas: tuple[int, int]) -> Mask | None:
    """A mask of `values` over `area`, cut to the box around its non-zero values; None when
    every value is 0. bytes.strip does the scanning in C: Krita's Python has no numpy."""
    x, y, width, height = area
    rows = [values[r * width : (r + 1) * width] for r in range(height)]
    used = [r for r, row in enumerate(rows) if row.strip(b"\0")]
    if not used:
        return None
    top, bottom = used[0], used[-1] + 1
    left = min(width - len(rows[r].lstrip(b"\0")) for r in used)
    right = max(len(rows[r].rstrip(b"\0")) for r in used)
    cut = b"".join(row[left:right] for row in rows[top:bottom])
    return Mask(canvas, x + left, y + top, right - left, bottom - top, cut)


def _on_canvas(document: Any, rect: Rect) -> Rect | None:
    x, y, w, h = rect
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, document.width()), min(y + h, document.height())
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def _selection_values(document: Any, selection: Any, what: str) -> Mask:
    if selection is None or selection.width() <= 0 or selection.height() <= 0:
        raise RegionError(f"{what} is empty")
    rect = (selection.x(), selection.y(), selection.width(), selection.height())
    area = _on_canvas(document, rect)
    if area is None:
        raise RegionError(f"{what} lies outside the canvas")
    values = bytes(selection.pixelData(*area))
    if len(values) != area[2] * area[3]:
        raise RegionError(f"Krita returned {len(values)} bytes for {what} of {area[2]}x{area[3]}")
    mask = trimmed(values, area, (document.width(), document.height()))
    if mask is None:
        raise RegionError(f"{what} is empty")
    return mask


def from_selection(document: Any) -> Mask:
    """The current selection, soft edges kept (Krita's 8-bit selection values)."""
    if document is None:
        raise RegionError("open a document first")
    selection = document.selection()
    if selection is None or selection.width() <= 0 or selection.height() <= 0:
        raise RegionError(
            "nothing is selected: select where the style goes (any selection tool; soft "
            "edges are kept), then add the region"
        )
    return _selection_values(document, selection, "the selection")


def layer_values(raw: bytes, model: str, depth: str, pixels: int, whole: bool) -> bytes:
    """A paint layer's pixels (Krita's order) as one byte a pixel: its alpha (paint where the
    style goes, in any colour); but a layer opaque over the whole canvas (`whole`) gives its
    grey value instead (a black-and-white mask: white = all of the style)."""
    channels = {"RGBA": 4, "GRAYA": 2}.get(model)
    size = {"U8": 1, "U16": 2}.get(depth)
    if channels is None:
        raise RegionError(f"it is in {model}; paint the region on an RGB or grey layer")
    if size is None:
        raise RegionError(f"it is {depth}; use an 8-bit or 16-bit integer layer")
    if len(raw) != pixels * channels * size:
        raise RegionError(f"Krita returned {len(raw)} bytes for {pixels} pixels")
    if size == 2:
        raw = raw[1::2]  # the high byte of each little-endian value
    alpha = raw[channels - 1 :: channels]
    if not whole or alpha.count(255) != len(alpha):
        return alpha
    if channels == 2:
        return raw[0::2]
    return bytes(map(_luma, raw[2::4], raw[1::4], raw[0::4]))


def _luma(red: int, green: int, blue: int) -> int:
    return (77 * red + 150 * green + 29 * blue + 128) >> 8


def from_node(document: Any, node: Any) -> Mask:
    """A paint layer's alpha (or grey value, see layer_values), or a selection mask's values."""
    if document is None:
        raise RegionError("open a document first")
    kind, name = node.type(), node.name()
    if kind != "paintlayer":
        if not hasattr(node, "selection"):
            raise RegionError(
                f"Krita does not hand plug-ins the pixels of the {kind or 'mask'} {name!r}: "
                f"paint the region on a paint layer, or use a selection mask"
            )
        return _selection_values(document, node.selection(), f"the mask {name!r}")
    bounds = node.bounds()
    area = _on_canvas(document, (bounds.x(), bounds.y(), bounds.width(), bounds.height()))
    if area is None:
        raise RegionError(f"layer {name!r} has nothing on the canvas")
    whole = area == (0, 0, document.width(), document.height())
    raw = bytes(node.pixelData(*area))
    try:
        values = layer_values(raw, node.colorModel(), node.colorDepth(), area[2] * area[3], whole)
    except RegionError as exc:
        raise RegionError(f"layer {name!r}: {exc}") from None
    mask = trimmed(values, area, (document.width(), document.height()))
    if mask is None:
        raise RegionError(f"layer {name!r} has nothing painted: paint where the style goes")
    return mask


def sources(document: Any) -> list[tuple[str, Any]]:
    """The layers and masks a region can be made from, top to bottom as the Layers docker
    lists them, children indented; the global selection's mask is left out ("Selection")."""
    found: list[tuple[str, Any]] = []

    def walk(parent: Any, depth: int) -> None:
        for node in reversed(parent.childNodes()):
            kind = node.type()
            usable = kind == "paintlayer" or (kind in SOURCE_TYPES and hasattr(node, "selection"))
            if usable and not (depth == 0 and kind == "selectionmask"):
                found.append(("    " * depth + node.name(), node))
            walk(node, depth + 1)

    if document is not None:
        walk(document.rootNode(), 0)
    return found


def thumbnail(mask: Mask, side: int) -> tuple[int, int, bytes]:
    """(width, height, grey values) of the whole canvas at most `side` px, the region white."""
    cw, ch = mask.canvas
    scale = side / max(cw, ch)
    tw, th = max(1, round(cw * scale)), max(1, round(ch * scale))
    out = bytearray(tw * th)
    columns = [int((tx + 0.5) * cw / tw) - mask.x for tx in range(tw)]
    for ty in range(th):
        y = int((ty + 0.5) * ch / th) - mask.y
        if 0 <= y < mask.height:
            row = mask.values[y * mask.width : (y + 1) * mask.width]
            for tx, x in enumerate(columns):
                if 0 <= x < mask.width:
                    out[ty * tw + tx] = row[x]
    return tw, th, bytes(out)


# --- the job ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionJob:
    """What the regions send: the area, each region's share of it (in the list's order), the
    main style's share when it fills the rest, and where the new layer shows (None: all)."""

    area: Rect
    shares: list[bytes]
    rest: bytes | None
    shown: bytes | None


def _around(rects: Iterable[Rect]) -> Rect:
    boxes = list(rects)
    x0, y0 = min(r[0] for r in boxes), min(r[1] for r in boxes)
    x1, y1 = max(r[0] + r[2] for r in boxes), max(r[1] + r[3] for r in boxes)
    return x0, y0, x1 - x0, y1 - y0


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def plan(regions: DocumentRegions, canvas: tuple[int, int]) -> RegionJob:
    """The job of these regions on a canvas of this size; RegionError names a region that
    cannot be used (made on a canvas of another size, or hidden by the ones before it)."""
    if not regions.regions:
        raise RegionError("there are no regions")
    for number, region in enumerate(regions.regions, start=1):
        if region.mask.canvas != canvas:
            was, now = region.mask.canvas, canvas
            raise RegionError(
                f"region {number} ({region.source}) was made on a {was[0]}x{was[1]} canvas, "
                f"the canvas is now {now[0]}x{now[1]}: remove it and add it again"
            )
    fill = regions.outside == OUTSIDE_MAIN
    area = (0, 0, *canvas) if fill else _around(r.mask.rect() for r in regions.regions)
    covered = bytearray(area[2] * area[3])
    shares: list[bytes] = []
    for number, region in enumerate(regions.regions, start=1):
        mask = region.mask
        values = mask.values
        if any(_overlap(mask.rect(), r.mask.rect()) for r in regions.regions[: number - 1]):
            taken = _cut(covered, area, mask.rect())
            values = bytes(map(min, values, taken.translate(_INVERT)))
            if not values.strip(b"\0"):
                raise RegionError(
                    f"region {number} ({region.source}) lies wholly under the regions before "
                    f"it: move it up or remove it"
                )
            _paste(covered, area, mask.rect(), bytes(map(operator.add, taken, values)))
        else:
            _paste(covered, area, mask.rect(), values)
        shares.append(Mask(mask.canvas, *mask.rect(), values).crop(area))
    rest = bytes(covered).translate(_INVERT) if fill else None
    if rest is not None and not rest.strip(b"\0"):
        rest = None  # the regions cover everything: the main style has no part
    return RegionJob(area, shares, rest, None if fill else bytes(covered).translate(_ANY))


def _cut(buffer: bytearray, area: Rect, rect: Rect) -> bytes:
    """The part `rect` of a buffer over `area` (rect inside area)."""
    aw, (x, y, w, h) = area[2], rect
    starts = ((y - area[1] + r) * aw + x - area[0] for r in range(h))
    return b"".join(bytes(buffer[s : s + w]) for s in starts)


def _paste(buffer: bytearray, area: Rect, rect: Rect, values: bytes) -> None:
    aw, (x, y, w, h) = area[2], rect
    for r in range(h):
        at = (y - area[1] + r) * aw + x - area[0]
        buffer[at : at + w] = values[r * w : (r + 1) * w]


def mask_image(values: bytes, area: Rect) -> RawImage:
    """A share as the mask the engine takes: one channel, u8, at the area's size."""
    return layouts.describe(area[2], area[3], 1, "u8", 0), values


def styles(
    regions: DocumentRegions,
    job: RegionJob,
    load: Callable[[str], RawImage],
    main_path: str,
) -> list[RawStyle]:
    """The job's styles: each region's (its mask, its strength), then the main style on what
    they leave if it has a part (the job's strength). `load` reads a style image; its
    ValueError is said with the region it belongs to."""
    out: list[RawStyle] = []
    for number, (region, share) in enumerate(zip(regions.regions, job.shares, strict=True), 1):
        what = f"region {number} ({region.source})"
        if not region.style_path.strip():
            raise RegionError(f"{what} has no style image: choose one with its style button")
        try:
            image = load(region.style_path)
        except ValueError as exc:
            raise RegionError(f"{what}: {exc}") from None
        out.append(RawStyle(image, 1.0, mask_image(share, job.area), float(region.strength)))
    if job.rest is not None:
        try:
            image = load(main_path)
        except ValueError as exc:
            raise RegionError(f"the main style (outside the regions): {exc}") from None
        out.append(RawStyle(image, 1.0, mask_image(job.rest, job.area)))
    return out
