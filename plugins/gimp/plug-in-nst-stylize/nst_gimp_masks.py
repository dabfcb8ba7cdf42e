"""A one-channel mask's pixels without numpy (GIMP's Python has none): the box a region
covers, a mask cut to the box the plug-in sends, and the rest of the image that the regions
leave. Masks are wire bytes (nst_client.layouts), u8 or u16.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence

from nst_client import layouts


def mask_dtype(dtype: str) -> str:
    """A mask's wire dtype for a job's: u8 for an 8-bit image, else u16 (steps enough for any
    soft edge, and GIMP clips a float channel's values outside 0..1 while converting)."""
    return "u8" if dtype == "u8" else "u16"


def mask_format(dtype: str) -> str:
    """The Babl format a mask is read in: linear Y, the values as GIMP keeps a selection
    (a channel is read as GIMP turns it into a selection)."""
    return {"u8": "Y u8", "u16": "Y u16"}[dtype]


#: The content's rectangle: x, y, width, height.
Box = tuple[int, int, int, int]


def mask_bounds(data: bytes, width: int, dtype: str) -> Box | None:
    """The smallest box holding every non-zero value of a one-channel mask; None if none."""
    step = layouts.DTYPES[dtype][0]
    row_bytes = width * step
    rows = [y for y in range(len(data) // row_bytes) if any(_row(data, y, row_bytes))]
    if not rows:
        return None
    left, right = width, 0
    for y in rows:
        row = _row(data, y, row_bytes)
        left = min(left, (len(row) - len(row.lstrip(b"\0"))) // step)
        right = max(right, (len(row.rstrip(b"\0")) + step - 1) // step)
    return left, rows[0], right - left, rows[-1] + 1 - rows[0]


def _row(data: bytes, y: int, row_bytes: int) -> bytes:
    return data[y * row_bytes : (y + 1) * row_bytes]


def union(boxes: Sequence[Box]) -> Box:
    left = min(b[0] for b in boxes)
    top = min(b[1] for b in boxes)
    right = max(b[0] + b[2] for b in boxes)
    bottom = max(b[1] + b[3] for b in boxes)
    return left, top, right - left, bottom - top


def crop_mask(data: bytes, width: int, dtype: str, box: Box) -> bytes:
    """A one-channel mask of WIDTH cut to BOX."""
    step = layouts.DTYPES[dtype][0]
    x, y, w, h = box
    rows = (data[((y + r) * width + x) * step : ((y + r) * width + x + w) * step] for r in range(h))
    return b"".join(rows)


def _values(data: bytes, dtype: str) -> array:
    values = array(layouts.DTYPES[dtype][1])
    values.frombytes(data)
    if sys.byteorder == "big" and values.itemsize > 1:
        values.byteswap()
    return values


def rest_of(masks: Sequence[bytes], dtype: str) -> bytes:
    """What the masks leave: top - their sum, never below 0, so that the rest and the regions
    add up to all of the image (a soft edge shares its pixels)."""
    top = int(layouts.DTYPES[dtype][2])
    if dtype == "u8" and len(masks) == 1:
        return masks[0].translate(_INVERTED_U8)
    columns = zip(*(_values(m, dtype) for m in masks), strict=True)
    rest = array(layouts.DTYPES[dtype][1], (max(0, top - sum(c)) for c in columns))
    if sys.byteorder == "big" and rest.itemsize > 1:
        rest.byteswap()
    return rest.tobytes()


_INVERTED_U8 = bytes(255 - v for v in range(256))
