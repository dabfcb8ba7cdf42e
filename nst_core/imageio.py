"""Reading and writing image files for the command line, keeping 16-bit and alpha.

Pillow reads most formats but keeps 16-bit RGB(A) PNGs only as 8-bit and cannot write them,
so 16-bit PNGs go through pypng (pure Python, tiny). Arrays are H x W x C, u8 or u16.

Files may come from careless or hostile hands: a few hundred bytes can declare gigabytes of
pixels, so every decoder is handed a file only once its header passed the pixel limit; results
are written whole or not at all, and their destination is checked before the work.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from nst_client.protocol import DEFAULT_MAX_PIXELS

from . import pixels

if TYPE_CHECKING:
    from PIL import ImageFile


class ImageFileError(ValueError):
    """A file that is missing or cannot be read as an image; the message names it."""


def _png_header(path: Path) -> tuple[int, int, int] | None:
    """(width, height, bit depth) from a PNG's IHDR, or None for anything else."""
    with path.open("rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), head[24]


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    """The one pixel limit, applied to every decoder's header before any pixel is decoded."""
    width, height = size
    if width * height > max_pixels:
        raise ImageFileError(
            f"{path}: {width} x {height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}; --max-pixels raises it"
        )


_PILLOW_LIMIT = threading.Lock()


def _open_lazily(path: Path) -> ImageFile.ImageFile:
    """Image.open, which reads only the header, without Pillow's own pixel limit.

    Pillow's (a warning from 89 MP, an error without the size from 179 MP) would speak before
    ours, and refuse what --max-pixels allowed. It is a module setting only, so it is lifted
    for this call alone, under a lock, and put back at once.
    """
    from PIL import Image

    with _PILLOW_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """H x W x C array (C = 1..4), uint8, or uint16 for 16-bit PNGs.

    ImageFileError for a missing, corrupt or truncated file, and for one over `max_pixels`
    (the daemon's default limit), the latter found from the header alone.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageFileError(f"{p}: no such file")
    try:
        header = _png_header(p)
        if header is not None and header[2] == 16:
            import png

            _check_pixels(p, header[:2], max_pixels)
            width, height, rows, info = png.Reader(filename=str(p)).asDirect()
            planes = info["planes"]
            arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
            return arr.reshape(height, width, planes)
        with _open_lazily(p) as img:
            _check_pixels(p, img.size, max_pixels)
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


def read_mask(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image file as a style's mask: H x W x 1. A grey file is taken as it is (u8/u16);
    a colour one by its luminance; where the file has alpha, transparent counts as black
    (so a layer painted on transparency masks where it is painted)."""
    arr = read_image(path, max_pixels)
    if arr.shape[2] == 1:
        return arr
    unit = pixels.to_unit_float(arr)
    colour, alpha = unit[:, :, : 1 if arr.shape[2] == 2 else 3], None
    if arr.shape[2] in (2, 4):
        alpha = unit[:, :, -1:]
    if colour.shape[2] == 3:
        colour = colour @ np.array([[0.299], [0.587], [0.114]], np.float32)
    grey = colour
    if alpha is not None:
        grey = grey * alpha
    return np.ascontiguousarray(grey, dtype=np.float32).clip(0.0, 1.0)


def _destination(path: str | os.PathLike[str]) -> Path:
    """The file to replace: a symbolic link is written through, not replaced by a file."""
    p = Path(path)
    return p.resolve() if p.is_symlink() else p


def _encode(p: Path, arr: np.ndarray, f: IO[bytes]) -> None:
    """The one place that picks the encoder: pypng for 16-bit (PNG only), Pillow by extension."""
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
        rows = arr.astype(">u2").reshape(height, width * planes)
        writer.write_packed(f, (row.tobytes() for row in rows))  # big-endian rows, as PNG's
        return
    from PIL import Image

    fmt = Image.registered_extensions().get(p.suffix.lower())
    if fmt not in Image.SAVE:
        raise ImageFileError(f"{p}: no image format for {p.suffix!r}; use .png, .tif, .jpg, ...")
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    image = Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode=mode)
    try:
        image.save(f, format=fmt)
    except (KeyError, ValueError, OSError) as exc:
        raise ImageFileError(f"{p}: cannot write ({exc})") from None


def check_output(path: str | os.PathLike[str], like: np.ndarray | None = None) -> None:
    """Refuse, before any work, an output that write_image could not write.

    A folder, a missing or unwritable folder, a read-only file; given `like` (the content,
    whose dtype and channels the result keeps), a format that cannot hold it, found by
    encoding a 1 x 1 image with the very encoder write_image will use.
    """
    p = _destination(path)
    if p.is_dir():
        raise ImageFileError(f"{p}: is a folder, not an image file")
    if not p.parent.is_dir():
        raise ImageFileError(f"{p.parent}: output folder does not exist")
    if not os.access(p.parent, os.W_OK | os.X_OK):
        raise ImageFileError(f"{p.parent}: cannot write in this folder")
    if p.exists() and not os.access(p, os.W_OK):
        raise ImageFileError(f"{p}: read-only, not replaced")
    if like is not None:
        channels = like.shape[2] if like.ndim == 3 else 1
        _encode(p, np.zeros((1, 1, channels), like.dtype), io.BytesIO())


def write_image(path: str | os.PathLike[str], arr: np.ndarray) -> None:
    """Write u8 (any Pillow format) or u16/f32 (PNG, 16-bit) images, whole or not at all.

    Into a temporary file beside the destination, renamed over it once complete: a failure
    (an encoder error, a full disk, Ctrl-C) leaves no partial file and keeps an earlier one.
    """
    p = _destination(path)
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.part")
    try:  # 0o666 less the umask, like any new file (mkstemp's would be 0o600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise ImageFileError(f"{p}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            _encode(p, arr, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise ImageFileError(f"{p}: cannot write ({exc.strerror or exc})") from None
        raise
