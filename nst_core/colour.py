"""Colour preservation's one split: RGB to YIQ and back (ITU-R BT.601 luma, as
nst_core.detail uses), and a luminance-only image for the luminance-only transfer."""

from __future__ import annotations

import torch

_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YIQ.to(x), x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_YIQ).to(x), x)


def luminance_only(x: torch.Tensor, match: torch.Tensor | None = None) -> torch.Tensor:
    """Grey (Y replicated to RGB); with `match`, Y is shifted/scaled to match's mean and std."""
    y = rgb_to_yiq(x)[:, :1]
    if match is not None:
        ref = rgb_to_yiq(match)[:, :1]
        y = (y - y.mean()) / (y.std() + 1e-8) * ref.std() + ref.mean()
    return y.expand(-1, 3, -1, -1)
