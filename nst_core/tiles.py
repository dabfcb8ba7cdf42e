"""One scale of the stylize loop: the whole image, or overlapping tiles blended together
when it is larger than a tile (each tile's VGG-19 pass then costs the memory of a tile)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from nst_client.params import TILE_OVERLAP, StyleParams

from .plan import tile_spans
from .regions import Region


class Optimiser(Protocol):
    """The run that optimises one image (or tile) of a scale (engine._Run)."""

    p: StyleParams

    def optimise(
        self,
        x: torch.Tensor,
        content: torch.Tensor,
        regions: list[Region],
        scale: int,
        snapshot: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor: ...


def ramp(n: int, start: int, stop: int, length: int, overlap: int) -> torch.Tensor:
    """1-D blend weights of a tile: linear ramps into the overlaps, 1 inside."""
    w = torch.ones(n)
    rising = torch.linspace(0.0, 1.0, overlap + 2)[1:-1]
    if start > 0:
        w[:overlap] = rising[: min(overlap, n)]
    if stop < length:
        w[-overlap:] = torch.minimum(w[-overlap:], rising.flip(0)[: min(overlap, n)])
    return w


def optimise_scale(
    run: Optimiser, x: torch.Tensor, content: torch.Tensor, regions: list[Region], scale: int
) -> torch.Tensor:
    """One scale: whole image, or overlapping tiles blended together when it is too large."""
    h, w = x.shape[-2:]
    tile = run.p.tile_size
    rows, cols = tile_spans(h, tile), tile_spans(w, tile)
    if len(rows) == 1 and len(cols) == 1:
        return run.optimise(x, content, regions, scale, lambda cur: cur)
    canvas = x.clone()
    # Tiles are optimised one after another; each sees the tiles already finished, so the
    # overlaps agree, and the blend weights hide the seams.
    for r0, r1 in rows:
        for c0, c1 in cols:

            def snapshot(
                cur: torch.Tensor, r0: int = r0, r1: int = r1, c0: int = c0, c1: int = c1
            ) -> torch.Tensor:
                view = canvas.clone()
                view[..., r0:r1, c0:c1] = cur
                return view

            piece = run.optimise(
                canvas[..., r0:r1, c0:c1],
                content[..., r0:r1, c0:c1],
                [r.crop((r0, r1), (c0, c1)) for r in regions],
                scale,
                snapshot,
            )
            wy = ramp(r1 - r0, r0, r1, h, TILE_OVERLAP).to(x)
            wx = ramp(c1 - c0, c0, c1, w, TILE_OVERLAP).to(x)
            weight = (wy[:, None] * wx[None, :])[None, None]
            done = canvas[..., r0:r1, c0:c1]
            canvas[..., r0:r1, c0:c1] = done * (1 - weight) + piece * weight
    return canvas
