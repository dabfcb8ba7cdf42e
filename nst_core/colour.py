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


def colour_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (3, 1) and covariance (3, 3) of an RGB image's pixels, in float64."""
    flat = x.reshape(3, -1).double()
    mean = flat.mean(dim=1, keepdim=True)
    centred = flat - mean
    return mean, centred @ centred.T / flat.shape[1]


def _matrix_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov + 1e-5 * torch.eye(3, dtype=cov.dtype))
    return vectors @ torch.diag(values.clamp_min(1e-8) ** power) @ vectors.T


def match_palette(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """x (1, 3, h, w) in [0, 1] with its pixels' mean and covariance moved to (mean, cov): the
    linear colour transfer of Gatys et al.'s "Preserving color" note, run the other way (the
    photo takes the painting's palette). The symmetric square root keeps hues in place where
    a Cholesky factor would rotate them."""
    own_mean, own_cov = colour_statistics(x)
    transfer = _matrix_power(cov.to(own_cov), 0.5) @ _matrix_power(own_cov, -0.5)
    flat = transfer @ (x.reshape(3, -1).double() - own_mean) + mean.to(own_mean)
    return flat.to(x.dtype).reshape(x.shape).clamp(0.0, 1.0)
