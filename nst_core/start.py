"""The image the optimiser starts from at the first scale.

"palette" (the default) is the photo recoloured to the painting's colour statistics, so the
palette is right before the first pass and the passes go to the brush work; a style with a
mask recolours its own region, and where no mask reaches the photo keeps its colours.
"content" is the photo as it is, "noise" uniform noise (the seed's).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import pixels
from .colour import colour_statistics, match_palette
from .styles import StyleImage

#: A style's colour statistics are read from it at most this large (long side): enough for a
#: mean and a 3 x 3 covariance, and quick on a large painting.
STATISTICS_SIDE = 256

Statistics = tuple[torch.Tensor, torch.Tensor]


def style_statistics(style: np.ndarray) -> Statistics:
    """Mean and covariance of a style image's RGB (alpha and grey handled as the engine
    reads it)."""
    rgb = pixels.to_unit_float(pixels.split_alpha(style)[0])
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    side = max(x.shape[-2:])
    if side > STATISTICS_SIDE:
        scale = STATISTICS_SIDE / side
        x = F.interpolate(x, scale_factor=scale, mode="area")
    return colour_statistics(x)


def blended(stats: Sequence[Statistics], weights: Sequence[float]) -> Statistics:
    """The statistics of a mixture of the styles' pixels in proportion to `weights`."""
    total = sum(weights)
    mean = sum(w / total * m for (m, _), w in zip(stats, weights, strict=True))
    second = sum(w / total * (c + m @ m.T) for (m, c), w in zip(stats, weights, strict=True))
    assert isinstance(mean, torch.Tensor) and isinstance(second, torch.Tensor)
    return mean, second - mean @ mean.T


def start_image(
    init: str,
    content: torch.Tensor,
    styles: Sequence[StyleImage],
    masks: Sequence[torch.Tensor | None],
    generator: torch.Generator,
    preserve_colors: bool = False,
) -> torch.Tensor:
    """The first scale's starting image for `init`; content (1, 3, h, w) in 0..1 at that
    scale, masks at the layer's size (or None for a style over the whole image). A job that
    keeps the photo's colours works on luminance: "palette" then starts from the photo."""
    if init == "noise":
        return torch.rand(content.shape, generator=generator).to(content.device)
    if init == "content" or preserve_colors:
        return content.clone()
    used = [(s, m) for s, m in zip(styles, masks, strict=True) if s.weight > 0]
    whole = [s for s, m in used if not s.is_region]
    x = content.clone()
    if whole:
        mean, cov = blended([style_statistics(s.pixels) for s in whole], [s.weight for s in whole])
        x = match_palette(content, mean, cov)
    for style, mask in used:
        if not style.is_region:
            continue
        recoloured = match_palette(content, *style_statistics(style.pixels))
        if mask is None:  # a whole-image style with its own strength
            x = recoloured
            continue
        here = F.interpolate(mask.to(content), size=content.shape[-2:], mode="area")
        x = x + here * (recoloured - x)
    return x
