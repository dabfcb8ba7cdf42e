"""QImage <-> wire images: loading the style picture and showing previews (Qt, no PIL/numpy).

Krita's Python has neither PIL nor numpy, so QImage does the decoding and scaling. Wire u16
RGBA equals QImage.Format_RGBA64 on little-endian machines (every machine Krita ships for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nst_client import layouts
from nst_client.client import RawImage
from nst_client.protocol import ImageDesc

from .qt import (
    FORMAT_RGBA64,
    FORMAT_RGBA8888,
    KEEP_ASPECT,
    SMOOTH,
    QImage,
    qimage_bytes,
    qimage_from_bytes,
)

#: The QImage format of each wire RGBA dtype the plug-in sends (and so gets back).
QIMAGE_FORMATS = {"u8": (FORMAT_RGBA8888, 4), "u16": (FORMAT_RGBA64, 8)}


class ImageError(ValueError):
    """A picture that cannot be used; the message says which and why."""


def load_style(path: str, max_side: int) -> tuple[RawImage, Any]:
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
    # Frame 0: the client places the style in its message when it sends it.
    desc = layouts.describe(image.width(), image.height(), 4, "u8", 0)
    return (desc, qimage_bytes(image)), image


def to_qimage(desc: ImageDesc, data: bytes) -> Any:
    """A wire RGBA u8/u16 image (the layout the plug-in sends) as a QImage; u16 stays 16-bit."""
    fmt = QIMAGE_FORMATS.get(desc["dtype"])
    if desc["channels"] != 4 or fmt is None:
        raise ImageError(f"cannot show a {desc['channels']}-channel {desc['dtype']} image")
    layouts.check_buffer(desc, data)
    width = desc["width"]
    return qimage_from_bytes(data, width, desc["height"], width * fmt[1], fmt[0])
