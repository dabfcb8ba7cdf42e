"""How big every image and every VGG-19 pass of a job will be, known before anything runs.

Pure Python (no torch), so the daemon can check a request against its limits on the socket
thread, before a byte is allocated for it; the engine sizes its scales, tiles and style
images with these same functions, so the check and the run cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .params import TILE_OVERLAP, ParamError, StyleParams

Size = tuple[int, int]  # (height, width)


class LimitError(ParamError):
    """A job that would exceed the daemon's limits; the message names the parameter."""


def fit(height: int, width: int, long_side: int) -> Size:
    """(h, w) scaled so the long side is long_side, aspect kept."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def scale_sizes(height: int, width: int, size: int | str, min_scale: int) -> list[Size]:
    """(h, w) of each scale, coarse to fine: halving from the final size down to min_scale."""
    long_side = max(height, width)
    final = long_side if size == "full" else min(int(size), long_side)
    sides = [final]
    while sides[-1] / 2 >= min_scale:
        sides.append(round(sides[-1] / 2))
    return [fit(height, width, s) for s in reversed(sides)]


def tile_spans(length: int, tile: int, overlap: int = TILE_OVERLAP) -> list[tuple[int, int]]:
    """Start/stop of overlapping tiles covering 0..length."""
    if length <= tile:
        return [(0, length)]
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [(round(i * step), round(i * step) + tile) for i in range(count)]


#: VGG-19's largest stride (pool5 sees the image at 1/32): style pieces start on it.
VGG_STRIDE = 32


Piece = tuple[int, int, int, int]


def style_pieces(length: int, tile: int, margin: int = TILE_OVERLAP) -> list[Piece]:
    """(window start, kept start, kept stop, window stop) of the pieces a style is read in.

    A Gram matrix is a sum over pixels, so pieces add up; each is read with `margin` pixels
    of context on either side (window at most `tile`), and only its kept part counts, so the
    features there are nearly those of one whole pass. Kept starts and windows fall on
    multiples of VGG_STRIDE, where every layer's pixels map back exactly.
    """
    if length <= tile:
        return [(0, 0, length, length)]
    step = (tile - 2 * margin) // VGG_STRIDE * VGG_STRIDE
    pieces: list[Piece] = []
    for start in range(0, length, step):
        stop = min(start + step, length)
        pieces.append((max(0, start - margin), start, stop, min(length, stop + margin)))
    return pieces


def style_size(style: Size, working: Size, style_scale: float) -> Size:
    """A style image's size when matched against a working image of size `working`."""
    side = max(1, round(max(working) * style_scale))
    return fit(style[0], style[1], side)


def check_limits(
    content: Size, styles: Sequence[Size], params: StyleParams, max_pixels: int, max_tile: int
) -> None:
    """LimitError unless every image the job makes stays within max_pixels and every VGG pass
    within a max_tile x max_tile tile (the memory of a pass grows with its pixels)."""
    if params.tile_size > max_tile:
        raise LimitError(
            "tile_size",
            f"{params.tile_size} is over this daemon's limit of {max_tile} (--max-tile-size)",
        )
    final = scale_sizes(*content, params.size, params.min_scale)[-1]
    for i, style in enumerate(styles):
        h, w = style_size(style, final, params.style_scale)
        if h * w > max_pixels:
            raise LimitError(
                "style_scale",
                f"{params.style_scale:g} makes styles[{i}] {w}x{h} = {h * w} pixels at the "
                f"working size, over this daemon's limit of {max_pixels} (--max-pixels); "
                f"lower style_scale or size",
            )
