"""Pure-Python pixel helpers for the docker (no Qt, no Krita), so they stay testable anywhere.

Images here are wire RGBA buffers (R,G,B,A interleaved, little-endian u8 or u16): the byte
order conversion to and from Krita's B,G,R,A happens only in nst_client.layouts.
Loops run over runs of equal mask bytes, not over pixels, so big hard-edged selections stay
fast in Krita's Python, which has no numpy.
"""

from __future__ import annotations

import re

BYTES_PER_VALUE = {"u8": 1, "u16": 2}
_ZERO_RUN = re.compile(rb"\x00+")
_PARTIAL = re.compile(rb"[\x01-\xfe]")


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
