"""A style per region: each style's share of the cost, where its mask puts it.

A region is one style's Gram targets with its style weight and, for a style with a mask, the
mask over the image being optimised. Masks follow the image: brought to each scale's size and
each VGG layer's size by area averaging (a layer position's mask is the mean of the pixels it
stands for), cropped with each tile. The styles without a mask blend into one region over the
whole image, so a job without masks costs exactly what it did before masks.

Where no region's mask reaches, the result is the photo: the optimiser has only the content
and smoothing terms there, and the finished image is blended back onto the photo by the masks'
coverage (docs/quality.md, "A style per region").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .vgg import layer_size


@dataclass(frozen=True)
class Region:
    """One style's share of J: beta * weight * sum_l (its layer costs over the mask)."""

    #: G / (nH*nW) per style layer, of the whole style image (the style cache's).
    targets: dict[str, torch.Tensor]
    #: The style weight (beta) of this region: the job's, or its style's own strength's.
    beta: float
    #: The style's weight: 1 for the blend of unmasked styles, else the style's own.
    weight: float = 1.0
    #: (1, 1, h, w) in 0..1 over the image being optimised; None: everywhere.
    mask: torch.Tensor | None = None

    def at(self, size: tuple[int, int]) -> Region:
        """The region over an image of `size` (one scale of coarse to fine)."""
        return self if self.mask is None else replace(self, mask=resize_mask(self.mask, size))

    def crop(self, rows: tuple[int, int], cols: tuple[int, int]) -> Region:
        """The region over one tile."""
        if self.mask is None:
            return self
        return replace(self, mask=self.mask[..., rows[0] : rows[1], cols[0] : cols[1]])

    def layer_masks(self, layers: Sequence[str], size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The mask at each layer's resolution for an image of `size` ({} without a mask)."""
        if self.mask is None:
            return {}
        return {name: resize_mask(self.mask, layer_size(name, size)) for name in layers}


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (1, 1, h, w) mask at another size by area averaging: a pixel's value is the share of
    the region it covers (no ringing, nothing outside 0..1, a hard edge becomes one grey
    step at the coarser size)."""
    if tuple(mask.shape[-2:]) == size:
        return mask
    if size[0] <= mask.shape[-2] and size[1] <= mask.shape[-1]:
        return F.interpolate(mask, size=size, mode="area")
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=False).clamp(0.0, 1.0)


def coverage(masks: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    """How much style each pixel may take, 0..1: the sum of the styles' masks, capped at 1;
    None when a style covers the whole image (then every pixel may)."""
    if any(m is None for m in masks):
        return None
    return torch.stack([m for m in masks if m is not None]).sum(0).clamp(max=1.0)


def onto_photo(image: torch.Tensor, photo: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """The stylized image where the masks cover it, the photo where they do not, blended by
    the coverage between (a soft edge fades; a black mask keeps the photo's pixels)."""
    return photo + cover * (image - photo)
