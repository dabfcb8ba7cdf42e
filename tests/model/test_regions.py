"""A style per region with the real VGG-19: each region ends nearer its own style, a region
no mask covers stays the photo, grey means less, and masks go with every other feature
(coarse to fine, tiles, colour preservation, the style cache)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nst_app.demo import strokes
from nst_client.params import DEFAULT_STYLE_LAYER_WEIGHTS
from nst_core import costs, pixels
from nst_core.engine import StyleImage, stylize
from nst_core.regions import resize_mask
from nst_core.targets import StyleTargetCache
from nst_core.vgg import VGGFeatures

SIDE = 96
JOB = {"size": SIDE, "iterations": 40, "min_scale": SIDE, "precision": "fp32"}
LAYERS = [name for name, _ in DEFAULT_STYLE_LAYER_WEIGHTS]


@pytest.fixture(scope="module")
def photo96() -> np.ndarray:
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image)


@pytest.fixture(scope="module")
def strokes96() -> np.ndarray:
    return np.asarray(Image.fromarray(strokes(256)).resize((SIDE, SIDE), Image.Resampling.LANCZOS))


def halves(side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    left = np.zeros((side, side), np.uint8)
    left[:, : side // 2] = 255
    return left, 255 - left


def style_distance(
    model: VGGFeatures, image: np.ndarray, style: np.ndarray, mask: np.ndarray
) -> float:
    """The quality figure's idea with the engine's VGG-19: per layer the guided Gram distance
    of `image` over the mask to the style's Gram, summed over the style layers with each
    layer divided by the same distance of a grey image (so each layer counts alike)."""

    def feats(a: np.ndarray) -> dict[str, torch.Tensor]:
        t = torch.from_numpy(pixels.to_unit_float(a[..., :3]).transpose(2, 0, 1).copy())[None]
        with torch.no_grad():
            return model(t, LAYERS)

    grey = np.full_like(image, 128)
    fs, fi, fg = feats(style), feats(image), feats(grey)
    m = torch.from_numpy(mask.astype(np.float32) / 255.0)[None, None]
    total = 0.0
    for name in LAYERS:
        target = costs.style_target(fs[name])
        layer_mask = resize_mask(m, (int(fi[name].shape[-2]), int(fi[name].shape[-1])))
        d = costs.layer_style_cost_from_target(target, fi[name], layer_mask).item()
        base = costs.layer_style_cost_from_target(target, fg[name], layer_mask).item()
        total += d / base
    return total / len(LAYERS)


def test_two_regions_each_end_nearer_their_own_style(
    model: VGGFeatures, photo96: np.ndarray, style_image: np.ndarray, strokes96: np.ndarray
) -> None:
    left, right = halves()
    out = stylize(
        photo96,
        [StyleImage(style_image, 1.0, left), StyleImage(strokes96, 1.0, right)],
        JOB,
        model=model,
    )
    for mask, own, other in ((left, style_image, strokes96), (right, strokes96, style_image)):
        to_own = style_distance(model, out, own, mask)
        assert to_own < style_distance(model, out, other, mask)
        assert to_own < style_distance(model, photo96, own, mask)


def test_a_region_no_mask_covers_stays_the_photo(
    model: VGGFeatures, photo96: np.ndarray, style_image: np.ndarray
) -> None:
    left, _ = halves()
    out = stylize(photo96, [StyleImage(style_image, 1.0, left)], JOB, model=model)
    assert np.array_equal(out[:, SIDE // 2 :], photo96[:, SIDE // 2 :])
    assert np.abs(out[:, : SIDE // 2].astype(int) - photo96[:, : SIDE // 2]).mean() > 5


def test_grey_is_less_style_than_white(
    model: VGGFeatures, photo96: np.ndarray, style_image: np.ndarray
) -> None:
    mask = np.full((SIDE, SIDE), 255, np.uint8)
    mask[:, SIDE // 2 :] = 90
    out = stylize(photo96, [StyleImage(style_image, 1.0, mask)], JOB, model=model)
    left, right = halves()
    white = style_distance(model, out, style_image, left)
    grey = style_distance(model, out, style_image, right)
    untouched = style_distance(model, photo96, style_image, right)
    assert white < grey < untouched


def test_a_regions_own_strength_sets_how_much_style_it_takes(
    model: VGGFeatures, photo96: np.ndarray, style_image: np.ndarray
) -> None:
    left, right = halves()
    out = stylize(
        photo96,
        [StyleImage(style_image, 1.0, left, 80.0), StyleImage(style_image, 1.0, right, 10.0)],
        JOB,
        model=model,
    )
    assert style_distance(model, out, style_image, left) < style_distance(
        model, out, style_image, right
    )


def test_masks_go_with_tiles_coarse_to_fine_and_colour_preservation(
    model: VGGFeatures, style_image: np.ndarray, strokes96: np.ndarray
) -> None:
    from skimage import data

    side = 320
    photo = np.asarray(Image.fromarray(data.coffee()).resize((side, side)))
    mask = np.zeros((side, side), np.float32)
    mask[:100] = 1.0
    mask[100:200] = np.linspace(1.0, 0.0, 101)[1:, None]
    params = {"size": side, "iterations": 2, "min_scale": 128, "tile_size": 256}
    for extra in ({}, {"preserve_colors": True}):
        seen: list = []
        out = stylize(
            photo,
            [StyleImage(style_image, 1.0, mask), StyleImage(strokes96, 0.5, mask[::-1].copy())],
            {**params, **extra},
            progress=seen.append,
            model=model,
        )
        assert seen[-1].scales >= 2 and out.shape == photo.shape
        covered = mask + mask[::-1] > 0
        assert np.array_equal(out[~covered], photo[~covered])
        assert not np.array_equal(out[covered], photo[covered])


def test_the_style_cache_holds_the_styles_not_the_masks(
    model: VGGFeatures, photo96: np.ndarray, style_image: np.ndarray
) -> None:
    cache = StyleTargetCache()
    left, right = halves()
    fast = {**JOB, "iterations": 2}
    stylize(photo96, [StyleImage(style_image, 1.0, left)], fast, model=model, style_cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)
    stylize(photo96, [StyleImage(style_image, 1.0, right)], fast, model=model, style_cache=cache)
    stylize(photo96, [style_image], fast, model=model, style_cache=cache)
    assert (cache.hits, cache.misses) == (2, 1)


def test_a_mask_covering_everything_costs_what_the_whole_image_job_does(
    model: VGGFeatures, photo96: np.ndarray, style_image: np.ndarray
) -> None:
    ones = np.full((SIDE, SIDE), 255, np.uint8)
    first = {**JOB, "iterations": 1}
    plain: list = []
    masked: list = []
    stylize(photo96, [style_image], first, progress=plain.append, model=model)
    stylize(
        photo96, [StyleImage(style_image, 1.0, ones)], first, progress=masked.append, model=model
    )
    assert plain[1].iteration == masked[1].iteration == 1
    assert masked[1].loss_style == pytest.approx(plain[1].loss_style, rel=1e-4)
    assert masked[1].loss_total == pytest.approx(plain[1].loss_total, rel=1e-4)
