"""Pure-Python pixel helpers for the docker (no Qt, no Krita), so they stay testable anywhere.

Images here are wire RGBA buffers (R,G,B,A interleaved, little-endian u8 or u16): the byte
order conversion to and from Krita's B,G,R,A happens only in nst_core.layouts (vendored).
Loops run over runs of equal mask bytes, not over pixels, so big hard-edged selections stay
fast in Krita's Python, which has no numpy.
"""

from __future__ import annotations

import re

BYTES_PER_VALUE = {"u8": 1, "u16": 2}
_ZERO_RUN = re.compile(rb"\x00+")
_PARTIAL = re.compile(rb"[\x01-\xfe]")


def pixel_size(dtype: str, channels: int = 4) -> int:
    if dtype not in BYTES_PER_VALUE:
        raise ValueError(f"pixel type {dtype!r} is not supported here (u8, u16)")
    return BYTES_PER_VALUE[dtype] * channels


def alpha_is_empty(rgba: bytes, dtype: str) -> bool:
    """True when every pixel of an RGBA buffer is fully transparent."""
    size = BYTES_PER_VALUE[dtype]
    step = 4 * size
    return all(not any(rgba[3 * size + k :: step]) for k in range(size))


def mask_alpha(rgba: bytes, dtype: str, mask: bytes) -> bytes:
    """Multiply each pixel's alpha by a selection mask (one byte a pixel, 0..255).

    Fully unselected pixels become transparent black; partly selected ones keep their colour
    with proportionally less alpha: the result composites through the selection's soft edge.
    """
    size = BYTES_PER_VALUE[dtype]
    bpp = 4 * size
    if len(rgba) != len(mask) * bpp:
        raise ValueError(
            f"mask of {len(mask)} pixels does not match an image of {len(rgba) // bpp} pixels"
        )
    out = bytearray(rgba)
    for run in _ZERO_RUN.finditer(mask):
        start, end = run.span()
        out[start * bpp : end * bpp] = bytes((end - start) * bpp)
    for hit in _PARTIAL.finditer(mask):
        i = hit.start()
        weight = mask[i]
        at = i * bpp + 3 * size
        alpha = int.from_bytes(out[at : at + size], "little")
        out[at : at + size] = ((alpha * weight + 127) // 255).to_bytes(size, "little")
    return bytes(out)


def add_alpha(data: bytes, channels: int, dtype: str) -> bytes:
    """A grey or RGB wire buffer -> opaque RGBA (for a daemon that dropped the alpha)."""
    size = BYTES_PER_VALUE[dtype]
    if channels == 4:
        return data
    if channels not in (1, 3) or len(data) % (channels * size):
        raise ValueError(f"cannot make RGBA from {channels} channels ({len(data)} bytes)")
    n = len(data) // (channels * size)
    out = bytearray(b"\xff" * (n * 4 * size))
    for c in range(3):
        src_c = 0 if channels == 1 else c
        for k in range(size):
            out[c * size + k :: 4 * size] = data[src_c * size + k :: channels * size]
    return bytes(out)


def copy_alpha(rgba: bytes, alpha_from: bytes, dtype: str) -> bytes:
    """rgba with its alpha replaced by alpha_from's (two RGBA buffers of one size)."""
    size = BYTES_PER_VALUE[dtype]
    if len(rgba) != len(alpha_from):
        raise ValueError("copy_alpha needs two buffers of the same size")
    out = bytearray(rgba)
    for k in range(size):
        out[3 * size + k :: 4 * size] = alpha_from[3 * size + k :: 4 * size]
    return bytes(out)
