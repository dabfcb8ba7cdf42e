"""QImage <-> wire images: loading the style picture, previews and resizing (Qt, no PIL/numpy).

Krita's Python has neither PIL nor numpy, so QImage does the decoding and scaling. Wire u16
RGBA equals QImage.Format_RGBA64 on little-endian machines (every machine Krita ships for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import pixels
from .link import layouts
from .qt import (
    FORMAT_GRAYSCALE8,
    FORMAT_RGB888,
    FORMAT_RGBA64,
    FORMAT_RGBA8888,
    IGNORE_ASPECT,
    KEEP_ASPECT,
    SMOOTH,
    QImage,
    qimage_bytes,
    qimage_from_bytes,
)

RawImage = tuple[dict[str, Any], bytes]
#: Style pictures are shrunk to this long side before sending: the engine works far below it.
MAX_STYLE_SIDE = 2048


class ImageError(ValueError):
    """A picture that cannot be used; the message says which and why."""


def load_style(path: str, max_side: int = MAX_STYLE_SIDE) -> tuple[RawImage, Any]:
    """Read a style picture as u8 RGBA: (raw image for the wire, QImage for the thumbnail)."""
    file = Path(path).expanduser()
    if not str(path).strip():
        raise ImageError("choose a style image first")
    if not file.is_file():
        raise ImageError(f"style image not found: {file}")
    image = QImage(str(file))
    if image.isNull():
        raise ImageError(
            f"cannot read the style image {file.name} (not a picture Qt can open, or a broken file)"
        )
    if max(image.width(), image.height()) > max_side:
        image = image.scaled(max_side, max_side, KEEP_ASPECT, SMOOTH)
    image = image.convertToFormat(FORMAT_RGBA8888)
    desc = {"width": image.width(), "height": image.height(), "channels": 4, "dtype": "u8"}
    return (desc, qimage_bytes(image)), image


def to_qimage(desc: dict[str, Any], data: bytes) -> Any:
    """A wire image as a QImage (for previews and scaling); u16 RGBA stays 16-bit."""
    width, height, channels, dtype = (
        desc["width"],
        desc["height"],
        desc["channels"],
        desc["dtype"],
    )
    if dtype == "f32":
        data, dtype = layouts.convert_dtype(data, "f32", "u8"), "u8"
    if dtype == "u16" and channels == 4:
        return qimage_from_bytes(data, width, height, width * 8, FORMAT_RGBA64)
    if dtype == "u16":
        data, dtype = layouts.convert_dtype(data, "u16", "u8"), "u8"
    if channels == 4:
        return qimage_from_bytes(data, width, height, width * 4, FORMAT_RGBA8888)
    if channels == 3:
        return qimage_from_bytes(data, width, height, width * 3, FORMAT_RGB888)
    if channels == 1:
        return qimage_from_bytes(data, width, height, width, FORMAT_GRAYSCALE8)
    grey = bytes(data[0::2])  # grey + alpha: show the grey
    return qimage_from_bytes(grey, width, height, width, FORMAT_GRAYSCALE8)


def resize_rgba(
    data: bytes, dtype: str, width: int, height: int, new_width: int, new_height: int
) -> bytes:
    """Smoothly rescale a wire RGBA image (u8 or u16), for a result at another size."""
    fmt = FORMAT_RGBA64 if dtype == "u16" else FORMAT_RGBA8888
    bpp = pixels.pixel_size(dtype)
    image = qimage_from_bytes(data, width, height, width * bpp, fmt)
    scaled = image.scaled(new_width, new_height, IGNORE_ASPECT, SMOOTH).convertToFormat(fmt)
    out = qimage_bytes(scaled)
    if len(out) != new_width * new_height * bpp:
        raise ImageError(f"resizing {width}x{height} to {new_width}x{new_height} failed")
    return out
