"""Reading and writing image files for the command line, keeping 16-bit and alpha.

Pillow reads most formats but keeps 16-bit RGB(A) PNGs only as 8-bit and cannot write them,
so 16-bit PNGs go through pypng (pure Python, tiny). Arrays are H x W x C, u8 or u16.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class ImageFileError(ValueError):
    """A file that is missing or cannot be read as an image; the message names it."""


def _png_bit_depth(path: Path) -> int:
    with path.open("rb") as f:
        head = f.read(29)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 25:
        return 0
    return head[24]


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """H x W x C array (C = 1..4), uint8, or uint16 for 16-bit PNGs."""
    p = Path(path)
    if not p.is_file():
        raise ImageFileError(f"{p}: no such file")
    try:
        if _png_bit_depth(p) == 16:
            import png

            width, height, rows, info = png.Reader(filename=str(p)).asDirect()
            planes = info["planes"]
            arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
            return arr.reshape(height, width, planes)
        from PIL import Image

        with Image.open(p) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.uint16 if mode != "I" else np.int32)
                return arr.clip(0, 65535).astype(np.uint16)[:, :, None]
            if mode not in ("L", "LA", "RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in mode or "transparency" in img.info else "RGB")
            arr = np.asarray(img)
    except ImageFileError:
        raise
    except Exception as exc:
        raise ImageFileError(f"{p}: cannot read as an image ({exc})") from None
    return arr if arr.ndim == 3 else arr[:, :, None]


def write_image(path: str | os.PathLike[str], arr: np.ndarray) -> None:
    """Write u8 (any Pillow format) or u16/f32 (PNG, 16-bit) images."""
    p = Path(path)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.dtype == np.float32:
        arr = np.rint(np.clip(arr, 0, 1) * 65535).astype(np.uint16)
    if arr.dtype == np.uint16:
        if p.suffix.lower() != ".png":
            raise ImageFileError(f"{p}: 16-bit results can only be written as .png")
        import png

        height, width, planes = arr.shape
        writer = png.Writer(
            width, height, greyscale=planes <= 2, alpha=planes in (2, 4), bitdepth=16
        )
        with p.open("wb") as f:
            writer.write(f, arr.reshape(height, width * planes).tolist())
        return
    from PIL import Image

    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    image = Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode=mode)
    try:
        image.save(p)
    except (KeyError, ValueError, OSError) as exc:
        raise ImageFileError(f"{p}: cannot write ({exc})") from None
