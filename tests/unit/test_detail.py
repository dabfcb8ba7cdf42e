"""The native-resolution finish (nst_core.detail) on small synthetic images, CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from nst_core import detail
from nst_core.detail import high_frequency_energy, restore_detail

SIZE = 192
WORKING = 24  # an 8x upscale, as a 4096 px layer painted at 512 px


def fine_content(size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """A sharp colour content: 2 px checks in patches, 1 px 'text' strokes, hard-edged blocks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.full((size, size), 0.5, np.float32)
    checks = ((yy // 2 + xx // 2) % 2).astype(np.float32) - 0.5
    patches = (yy // 48 + xx // 48) % 2 == 0
    base += np.where(patches, 0.3 * checks, 0.0)
    for _ in range(60):  # text-like: short thin dark strokes
        y, x = rng.integers(0, size - 12, 2)
        if rng.random() < 0.5:
            base[y, x : x + 10] -= 0.3
        else:
            base[y : y + 10, x] -= 0.3
    tint = np.array([1.0, 0.9, 0.8], np.float32)
    rgb = np.clip(base[None] * tint[:, None, None], 0.0, 1.0)
    return torch.from_numpy(rgb)[None]


def smooth_painting(size: int = SIZE, working: int = WORKING, seed: int = 1) -> torch.Tensor:
    """A 'stylized' result: a random colour field at the working size, bicubic to full size."""
    g = torch.Generator().manual_seed(seed)
    small = 0.25 + 0.5 * torch.rand(1, 3, working, working, generator=g)
    return F.interpolate(small, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def as_hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).float().numpy()


def blurred(x: torch.Tensor, sigma: float) -> np.ndarray:
    return np.asarray(ndimage.gaussian_filter(as_hwc(x), (sigma, sigma, 0)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_shape_dtype_device_and_range_are_kept(dtype: torch.dtype) -> None:
    content, stylized = fine_content(64).to(dtype), smooth_painting(64, 8).to(dtype)
    out = restore_detail(stylized, content, (8, 8))
    assert out.shape == stylized.shape
    assert out.dtype == dtype and out.device == stylized.device
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, stylized)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_gpu_tensor_stays_on_the_gpu() -> None:
    content, stylized = fine_content(64).cuda(), smooth_painting(64, 8).cuda()
    out = restore_detail(stylized, content, (8, 8))
    assert out.device == stylized.device
    cpu = restore_detail(stylized.cpu(), content.cpu(), (8, 8))
    assert torch.allclose(out.cpu(), cpu, atol=1e-5)


def test_the_working_size_at_full_size_gives_the_result_back_unchanged() -> None:
    content, stylized = fine_content(), smooth_painting()
    out = restore_detail(stylized, content, (SIZE, SIZE))
    assert torch.equal(out, stylized)


def test_the_contents_fine_structure_comes_back_where_bicubic_has_none() -> None:
    content, stylized = fine_content(), smooth_painting()
    hf_content = high_frequency_energy(as_hwc(content))
    hf_bicubic = high_frequency_energy(as_hwc(stylized))
    hf_out = high_frequency_energy(as_hwc(restore_detail(stylized, content, (WORKING, WORKING))))
    assert hf_bicubic < 0.05 * hf_content
    assert hf_out >= 0.8 * hf_content


def test_the_paintings_colours_stay_its_own() -> None:
    content, stylized = fine_content(), smooth_painting()
    out = restore_detail(stylized, content, (WORKING, WORKING))
    # The low frequencies are the painting's: blurred at the working size's scale, the output
    # is the blurred painting, not the content.
    sigma = SIZE / WORKING
    err_out = np.abs(blurred(out, sigma) - blurred(stylized, sigma)).mean()
    err_content = np.abs(blurred(content, sigma) - blurred(stylized, sigma)).mean()
    assert err_out < 0.01 < err_content
    # What was added is grey (the same on R, G, B) wherever no channel was clamped: luminance
    # only, so the chroma (YIQ's I and Q) of those pixels is the painting's.
    added = (out - stylized)[0]
    inside = ((out > 0) & (out < 1)).all(dim=1)[0]
    assert float(inside.float().mean()) > 0.9
    assert float(added.abs().max()) > 0.1
    assert torch.allclose(added[0][inside], added[1][inside], atol=1e-6)
    assert torch.allclose(added[1][inside], added[2][inside], atol=1e-6)


def test_near_black_and_white_the_colour_pales_or_deepens_but_keeps_its_hue() -> None:
    content = fine_content(64)
    stylized = torch.empty(1, 3, 64, 64)
    yellow, blue = torch.tensor([0.98, 0.9, 0.3]), torch.tensor([0.05, 0.1, 0.4])
    stylized[:, :, :32] = yellow.view(1, 3, 1, 1)
    stylized[:, :, 32:] = blue.view(1, 3, 1, 1)
    out = restore_detail(stylized, content, (8, 8))[0]
    assert float((out - stylized[0]).abs().max()) > 0.1
    # The channels keep their order (yellow stays R >= G >= B, the blue B >= G >= R) and the
    # mean colour of each half stays near the painting's: the clamp only trims the channel at
    # the edge (here R of the yellow, 0.98, loses the upper half of the band's swings).
    top, bottom = out[:, :32], out[:, 32:]
    assert bool((top[0] >= top[1]).all() and (top[1] >= top[2]).all())
    assert bool((bottom[2] >= bottom[1]).all() and (bottom[1] >= bottom[0]).all())
    assert torch.allclose(top.mean(dim=(1, 2)), yellow, atol=0.06)
    assert torch.allclose(bottom.mean(dim=(1, 2)), blue, atol=0.06)


def test_bands_of_rows_give_the_same_image_as_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    content, stylized = fine_content(), smooth_painting()
    whole = restore_detail(stylized, content, (WORKING, WORKING))
    monkeypatch.setattr(detail, "BAND_PIXELS", SIZE * 7)  # 7-row bands, halo above and below
    banded = restore_detail(stylized, content, (WORKING, WORKING))
    assert torch.allclose(whole, banded, atol=1e-6)


@pytest.mark.parametrize(("height", "radius"), [(50, 9), (6, 9)])
def test_the_gpus_blur_is_the_cpus(height: int, radius: int) -> None:
    y = fine_content(64)[0, 0, :height]
    cpu = detail._blur(y, radius / 3.0, radius)
    assert torch.allclose(detail._blur_torch(y, radius / 3.0, radius), cpu, atol=1e-5)


def test_a_non_square_layer_and_a_tiny_one() -> None:
    content = fine_content(SIZE)[:, :, :, :120]
    stylized = smooth_painting(SIZE)[:, :, :, :120]
    out = restore_detail(stylized, content, (24, 15))
    assert out.shape == stylized.shape
    tiny = restore_detail(smooth_painting(4, 2), fine_content(16)[:, :, :4, :4], (1, 1))
    assert tiny.shape == (1, 3, 4, 4)


def test_the_shapes_are_checked() -> None:
    with pytest.raises(ValueError):
        restore_detail(smooth_painting(64, 8), fine_content(32), (8, 8))
    with pytest.raises(ValueError):
        restore_detail(torch.zeros(3, 64, 64), torch.zeros(3, 64, 64), (8, 8))


def test_high_frequency_energy_is_zero_when_flat_and_grows_with_sharpness() -> None:
    assert high_frequency_energy(np.full((32, 48, 3), 0.4, np.float32)) == 0.0
    sharp = as_hwc(fine_content(96))
    soft = blurred(fine_content(96), 1.0)
    softer = blurred(fine_content(96), 3.0)
    e_sharp, e_soft, e_softer = map(high_frequency_energy, (sharp, soft, softer))
    assert e_sharp > 2 * e_soft > 0.0
    assert e_soft > e_softer


def test_high_frequency_energy_reads_uint8_uint16_float_and_rgba_alike() -> None:
    unit = as_hwc(fine_content(64))
    u8 = np.rint(unit * 255).astype(np.uint8)
    u16 = u8.astype(np.uint16) * 257
    rgba = np.concatenate([u8, np.full((64, 64, 1), 7, np.uint8)], axis=2)
    ref = high_frequency_energy(u8.astype(np.float32) / 255)
    for img in (u8, u16, rgba):
        assert high_frequency_energy(img) == pytest.approx(ref, rel=1e-5)
    assert high_frequency_energy(unit) == pytest.approx(ref, rel=1e-2)
    with pytest.raises(ValueError):
        high_frequency_energy(np.zeros((8, 8), np.uint8))
