"""The first scale's starting image: the photo in the painting's colours, per region."""

from __future__ import annotations

import numpy as np
import torch

from nst_core.colour import colour_statistics, match_palette
from nst_core.start import blended, start_image, style_statistics
from nst_core.styles import StyleImage


def _photo(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand((1, 3, 1, 1), generator=gen) * 0.4 + 0.3
    return (base + 0.1 * torch.randn((1, 3, 24, 32), generator=gen)).clamp(0, 1)


def _painting(rgb: tuple[float, float, float], spread: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(1)
    pixels = np.asarray(rgb) + rng.normal(0, spread, (40, 40, 3))
    return (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)


def test_the_palette_match_gives_the_target_mean_and_covariance() -> None:
    photo = _photo()
    target = style_statistics(_painting((0.6, 0.3, 0.2)))
    out = match_palette(photo, *target)
    mean, cov = colour_statistics(out)
    assert torch.allclose(mean, target[0], atol=2e-3)
    assert torch.allclose(cov, target[1], atol=2e-4)
    # The photo's structure stays: the recoloured image follows it pixel for pixel.
    corr = torch.corrcoef(torch.stack([photo[0, 1].flatten(), out[0, 1].flatten()]))[0, 1]
    assert corr > 0.9


def test_blending_a_style_with_itself_keeps_its_statistics() -> None:
    stats = style_statistics(_painting((0.2, 0.5, 0.7)))
    mean, cov = blended([stats, stats], [1.0, 3.0])
    assert torch.allclose(mean, stats[0]) and torch.allclose(cov, stats[1], atol=1e-12)


def test_a_masked_style_recolours_only_its_region() -> None:
    photo = _photo()
    mask = torch.zeros((1, 1, 24, 32))
    mask[..., :, :16] = 1.0
    red = StyleImage(_painting((0.9, 0.1, 0.1)), 1.0, np.zeros((24, 32), np.float32))
    x = start_image("palette", photo, [red], [mask], torch.Generator())
    assert torch.equal(x[..., 16:], photo[..., 16:])  # no mask: the photo's own colours
    assert float(x[0, 0, :, :16].mean()) > 0.8 and float(x[0, 1, :, :16].mean()) < 0.2


def test_content_noise_and_kept_colours_start_as_before() -> None:
    photo = _photo()
    style = [StyleImage(_painting((0.9, 0.1, 0.1)))]
    assert torch.equal(start_image("content", photo, style, [None], torch.Generator()), photo)
    kept = start_image("palette", photo, style, [None], torch.Generator(), preserve_colors=True)
    assert torch.equal(kept, photo)
    noise = start_image("noise", photo, style, [None], torch.Generator().manual_seed(3))
    assert noise.shape == photo.shape and not torch.equal(noise, photo)
    whole = start_image("palette", photo, style, [None], torch.Generator())
    assert float(whole[0, 0].mean()) > 0.8
