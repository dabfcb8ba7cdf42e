"""The one place that knows each pixel layout the product meets, and converts between them.

Wire layout (protocol v1): H*W*C values, row-major, channels interleaved in the order
grey | grey+alpha | R,G,B | R,G,B,A, little-endian, as ``u8``, ``u16`` or ``f32`` (0..1).
Krita hands out B,G,R,A instead; GIMP's ``R'G'B'A u8/u16/float`` Babl formats are already
the wire layout. Pure Python, numpy only where arrays are asked for, so that the editors'
bundled Python can use it. The engine's own layout (0..1 floats, alpha set aside) is in
nst_core.pixels.
"""

from __future__ import annotations

import sys
from array import array
from typing import TYPE_CHECKING, Any, cast

from .protocol import quote

if TYPE_CHECKING:
    from .protocol import ImageDesc

#: dtype name -> (bytes per value, array typecode, maximum value)
DTYPES: dict[str, tuple[int, str, float]] = {
    "u8": (1, "B", 255.0),
    "u16": (2, "H", 65535.0),
    "f32": (4, "f", 1.0),
}
#: numpy dtype names for each wire dtype (little-endian).
NUMPY_DTYPES = {"u8": "<u1", "u16": "<u2", "f32": "<f4"}
CHANNELS = (1, 2, 3, 4)


class LayoutError(ValueError):
    """An image buffer or descriptor that does not describe a valid image."""


def nbytes(width: int, height: int, channels: int, dtype: str) -> int:
    """Size in bytes of a wire image."""
    return width * height * channels * DTYPES[dtype][0]


def describe(width: int, height: int, channels: int, dtype: str, frame: int) -> ImageDesc:
    """A protocol image descriptor."""
    return {"width": width, "height": height, "channels": channels, "dtype": dtype, "frame": frame}


def check_descriptor(desc: Any, field: str = "image") -> ImageDesc:
    """Validate a descriptor's fields and types; raises LayoutError naming the bad field."""
    if not isinstance(desc, dict):
        raise LayoutError(f"{field}: expected a map, got {type(desc).__name__}")
    for key in ("width", "height", "channels", "frame"):
        value = desc.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise LayoutError(f"{field}.{key}: expected an integer, got {quote(value)}")
    if desc["width"] <= 0 or desc["height"] <= 0:
        raise LayoutError(
            f"{field}: width and height must be positive, got {desc['width']}x{desc['height']}"
        )
    if desc["channels"] not in CHANNELS:
        raise LayoutError(f"{field}.channels: must be 1, 2, 3 or 4, got {desc['channels']}")
    dtype = desc.get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise LayoutError(f"{field}.dtype: must be one of u8, u16, f32, got {quote(dtype)}")
    return cast("ImageDesc", desc)  # checked field by field above


def check_buffer(
    desc: ImageDesc, buf: bytes | bytearray | memoryview, field: str = "image"
) -> None:
    """Raise LayoutError when a frame's length does not match its descriptor."""
    want = nbytes(desc["width"], desc["height"], desc["channels"], desc["dtype"])
    got = len(memoryview(buf).cast("B"))
    if got != want:
        raise LayoutError(
            f"{field}: frame {desc['frame']} holds {got} bytes but "
            f"{desc['width']}x{desc['height']}x{desc['channels']} {desc['dtype']} needs {want}"
        )


def _values(buf: bytes | bytearray | memoryview, dtype: str) -> array:
    values = array(DTYPES[dtype][1])
    values.frombytes(bytes(buf))
    if sys.byteorder == "big" and dtype != "u8":
        values.byteswap()
    return values


def _to_bytes(values: array) -> bytes:
    if sys.byteorder == "big" and values.itemsize > 1:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def swap_red_blue(buf: bytes | bytearray | memoryview, dtype: str, channels: int = 4) -> bytes:
    """B,G,R(,A) <-> R,G,B(,A): Krita's pixelData order to the wire order, and back."""
    if channels not in (3, 4):
        raise LayoutError(f"red/blue swap needs 3 or 4 channels, got {channels}")
    src = _values(buf, dtype)
    out = array(src.typecode, src)
    out[0::channels] = src[2::channels]
    out[2::channels] = src[0::channels]
    return _to_bytes(out)


def convert_dtype(buf: bytes | bytearray | memoryview, src: str, dst: str) -> bytes:
    """Wire values from one dtype to another, rounded and clipped (u8 <-> u16 <-> f32)."""
    if src == dst:
        return bytes(buf)
    values = _values(buf, src)
    top_src, top_dst = DTYPES[src][2], DTYPES[dst][2]
    if dst == "f32":
        return _to_bytes(array("f", (v / top_src for v in values)))
    return _to_bytes(
        array(
            DTYPES[dst][1], (int(min(max(v / top_src, 0.0), 1.0) * top_dst + 0.5) for v in values)
        )
    )


def krita_to_wire(buf: bytes | bytearray | memoryview, depth: str) -> tuple[bytes, str]:
    """Krita RGBA pixelData (B,G,R,A; 'U8' or 'U16' or 'F32') -> (wire RGBA bytes, dtype)."""
    dtype = {"U8": "u8", "U16": "u16", "F32": "f32"}.get(depth)
    if dtype is None:
        raise LayoutError(f"Krita colour depth {depth!r} is not supported (U8, U16, F32)")
    return swap_red_blue(buf, dtype), dtype


def wire_to_krita(buf: bytes | bytearray | memoryview, dtype: str) -> bytes:
    """Wire RGBA bytes -> Krita's B,G,R,A pixelData."""
    return swap_red_blue(buf, dtype)


def channel_count(grey: bool, alpha: bool) -> int:
    """1, 2, 3 or 4: the wire's grey | grey+alpha | RGB | RGBA."""
    return (1 if grey else 3) + (1 if alpha else 0)


def gimp_dtype(precision: str) -> str:
    """The wire dtype for a GIMP precision's nick ("u8-non-linear", "half-linear", ...):
    u8, u16, else f32 (u32, half and double too)."""
    if precision.startswith("u8"):
        return "u8"
    if precision.startswith("u16"):
        return "u16"
    return "f32"


def gimp_format(dtype: str, channels: int) -> str:
    """The Babl format name GIMP reads and writes for a wire layout (perceptual, as GIMP shows)."""
    model = {1: "Y'", 2: "Y'A", 3: "R'G'B'", 4: "R'G'B'A"}[channels]
    kind = {"u8": "u8", "u16": "u16", "f32": "float"}[dtype]
    return f"{model} {kind}"


# --- numpy side (the engine, the daemon and clients that have numpy) -------------------------


def to_array(desc: ImageDesc, buf: bytes | bytearray | memoryview, copy: bool = True) -> Any:
    """Wire frame -> numpy array (H, W, C) of its dtype.

    A copy by default, so the frame may be freed. copy=False gives a read-only view of the
    frame where the machine's byte order allows (one 64 MiB copy less on a 4096^2 layer).
    """
    import numpy as np

    check_buffer(desc, buf)
    arr = np.frombuffer(buf, dtype=NUMPY_DTYPES[desc["dtype"]])
    arr = arr.reshape(desc["height"], desc["width"], desc["channels"])
    return arr.astype(arr.dtype.newbyteorder("="), copy=copy)


def wire_dtype(arr: Any) -> str:
    """The wire dtype name of a numpy array; LayoutError for any other dtype."""
    name = {"uint8": "u8", "uint16": "u16", "float32": "f32"}.get(str(arr.dtype))
    if name is None:
        raise LayoutError(f"image dtype {arr.dtype} is not supported (uint8, uint16, float32)")
    return name


def from_array(arr: Any, frame: int) -> tuple[ImageDesc, bytes]:
    """numpy array (H, W) or (H, W, C) -> (descriptor, little-endian bytes)."""
    import numpy as np

    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in CHANNELS:
        raise LayoutError(f"image shape {arr.shape} is not H x W x C with C in 1..4")
    dtype = wire_dtype(arr)
    data = np.ascontiguousarray(arr, dtype=NUMPY_DTYPES[dtype]).tobytes()
    return describe(arr.shape[1], arr.shape[0], arr.shape[2], dtype, frame), data
