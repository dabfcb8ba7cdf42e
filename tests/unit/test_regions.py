"""A style per region without a model: the guided Gram and its gradient, masks brought to
each scale, layer and tile, the blend back onto the photo, and every check of a mask (the
engine's, the daemon's and the command line's)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from nst_app.cli import main as nst_main
from nst_client import layouts
from nst_client import protocol as P
from nst_client.params import make_params
from nst_core import costs, styles, tiles
from nst_core.imageio import read_mask
from nst_core.regions import Region, coverage, onto_photo, resize_mask
from nst_core.vgg import VGG19_LAYERS, layer_size
from nst_daemon import requests

# --- the guided Gram and its cost --------------------------------------------------------------


def _activation(c: int = 6, h: int = 5, w: int = 7, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((1, c, h, w), generator=g, dtype=torch.float64)


def test_the_guided_gram_of_an_all_ones_mask_is_the_plain_one() -> None:
    a = _activation()
    ones = torch.ones((1, 1, 5, 7), dtype=torch.float64)
    assert torch.allclose(costs.guided_gram(a, ones), costs.style_target(a), rtol=1e-12)
    target = costs.style_target(_activation(seed=1))
    assert torch.allclose(
        costs.layer_style_cost_from_target(target, a, ones),
        costs.layer_style_cost_from_target(target, a),
        rtol=1e-12,
    )


def test_a_hard_mask_gives_the_gram_of_its_region_alone() -> None:
    a = _activation()
    mask = torch.zeros((1, 1, 5, 7), dtype=torch.float64)
    mask[..., 1:4, 2:6] = 1.0
    assert torch.allclose(costs.guided_gram(a, mask), costs.style_target(a[..., 1:4, 2:6]))
    assert costs.mask_box(mask) == (1, 4, 2, 6)


def test_a_grey_mask_weighs_each_position_by_its_value() -> None:
    a = _activation()
    mask = torch.rand((1, 1, 5, 7), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    positions = a[0].reshape(6, -1)
    m = mask.reshape(-1)
    expected = (
        sum(m[p] * torch.outer(positions[:, p], positions[:, p]) for p in range(35)) / m.sum()
    )
    assert torch.allclose(costs.guided_gram(a, mask), expected)


def test_the_regions_costs_and_gradients_are_the_formulas() -> None:
    """Several regions in one pass: each cost is sum((G_r - T_r)^2) / (4 nC^2) with G_r the
    guided Gram written out here, and the gradient is autograd's of that."""
    a = _activation(h=6, w=8).requires_grad_(True)
    g = torch.Generator().manual_seed(3)
    masks = [torch.zeros((1, 1, 6, 8), dtype=torch.float64) for _ in range(3)]
    masks[0][..., :, :4] = 1.0
    masks[1][..., 2:, 3:] = torch.rand((4, 5), generator=g, dtype=torch.float64)
    masks[2][...] = 0.25
    targets = [costs.style_target(_activation(h=6, w=8, seed=s)) for s in (4, 5, 6)]
    weights = torch.tensor([1.0, 2.5, 0.5], dtype=torch.float64)

    def by_hand() -> torch.Tensor:
        out = []
        for target, mask in zip(targets, masks, strict=True):
            positions = a[0].reshape(6, -1)
            m = mask.reshape(1, -1)
            gram = (positions * m) @ positions.T / m.sum()
            out.append((gram - target).pow(2).sum() / (4 * 6**2))
        return torch.stack(out)

    fast = costs.guided_style_costs(a, targets, masks)
    assert torch.allclose(fast, by_hand(), rtol=1e-10)
    (grad_fast,) = torch.autograd.grad((weights * fast).sum(), a)
    (grad_hand,) = torch.autograd.grad((weights * by_hand()).sum(), a)
    assert torch.allclose(grad_fast, grad_hand, rtol=1e-9, atol=1e-12)
    # Outside every mask's box no gradient comes from the style.
    only_left = costs.guided_style_costs(a, targets[:1], masks[:1])
    (grad_left,) = torch.autograd.grad(only_left.sum(), a)
    assert not grad_left[..., 4:].any() and grad_left[..., :4].abs().sum() > 0


def test_the_gradient_works_on_a_channels_last_activation() -> None:
    a = _activation().to(memory_format=torch.channels_last).requires_grad_(True)
    mask = torch.zeros((1, 1, 5, 7), dtype=torch.float64)
    mask[..., 2:] = 1.0
    target = costs.style_target(_activation(seed=1))
    (grad,) = torch.autograd.grad(costs.layer_style_cost_from_target(target, a, mask), a)
    b = a.detach().contiguous().requires_grad_(True)
    positions = b[0].reshape(6, -1)
    m = mask.reshape(1, -1)
    cost = ((positions * m) @ positions.T / m.sum() - target).pow(2).sum() / (4 * 36)
    (expected,) = torch.autograd.grad(cost, b)
    assert torch.allclose(grad, expected)


# --- masks at each size ------------------------------------------------------------------------


def test_a_mask_at_a_layer_is_the_mean_of_the_pixels_it_stands_for() -> None:
    mask = torch.zeros((1, 1, 64, 48))
    mask[..., :, :22] = 1.0  # 5.5 columns of 4 pixels: a hard edge becomes one grey step
    small = resize_mask(mask, (16, 12))
    assert small.shape == (1, 1, 16, 12)
    assert torch.allclose(small.mean(), mask.mean())
    assert small[0, 0, 3].tolist() == [1.0] * 5 + [0.5] + [0.0] * 6


@pytest.mark.parametrize("size", [(64, 48), (37, 51), (5, 3)])
def test_a_regions_layer_masks_have_the_layers_sizes(size: tuple[int, int]) -> None:
    mask = torch.rand((1, 1, *size))
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    region = Region({}, 1.0, 1.0, mask)
    masks = region.layer_masks(layers, size)
    for name in layers:
        assert masks[name].shape[-2:] == layer_size(name, size)
    assert Region({}, 1.0).layer_masks(layers, size) == {}


def test_layer_size_follows_the_pools_rounding_up() -> None:
    assert layer_size("relu1_1", (37, 51)) == (37, 51)
    assert layer_size("relu3_1", (37, 51)) == (10, 13)
    assert layer_size("pool5", (37, 51)) == (2, 2)
    assert "relu5_1" in VGG19_LAYERS


def test_each_tile_gets_its_own_crop_of_the_mask() -> None:
    """tiles.optimise_scale hands each tile the regions cropped to that tile."""
    h, w = 300, 520
    mask = torch.rand((1, 1, h, w))
    seen: list[tuple[torch.Tensor | None, tuple[int, int]]] = []

    class Recorder:
        p = make_params({"tile_size": 256})

        def optimise(
            self,
            x: torch.Tensor,
            content: torch.Tensor,
            regions: list[Region],
            scale: int,
            snapshot: Callable[[torch.Tensor], torch.Tensor],
        ) -> torch.Tensor:
            assert regions[0].mask is not None and regions[1].mask is None
            seen.append((regions[0].mask, (int(x.shape[-2]), int(x.shape[-1]))))
            return x

    x = torch.zeros((1, 3, h, w))
    tiles.optimise_scale(Recorder(), x, x, [Region({}, 1.0, 1.0, mask), Region({}, 1.0)], 1)
    assert len(seen) > 1
    for crop, shape in seen:
        assert crop is not None and crop.shape[-2:] == shape
        matches = [
            (r, c)
            for r in range(h - shape[0] + 1)
            for c in range(0, w - shape[1] + 1, 4)
            if torch.equal(mask[..., r : r + shape[0], c : c + shape[1]], crop)
        ]
        assert matches, "a tile's mask is not a crop of the mask"


def test_the_masks_coverage_and_the_blend_onto_the_photo() -> None:
    a = torch.zeros((1, 1, 4, 4))
    a[..., :2] = 1.0
    b = torch.full((1, 1, 4, 4), 0.75)
    cover = coverage([a, b])
    assert cover is not None and cover[..., :2].eq(1).all() and cover[..., 2:].eq(0.75).all()
    assert coverage([a, None]) is None
    photo, image = torch.rand((1, 3, 4, 4)), torch.rand((1, 3, 4, 4))
    kept = onto_photo(image, photo, coverage([a]))  # type: ignore[arg-type]
    assert torch.equal(kept[..., 2:], photo[..., 2:]) and torch.equal(kept[..., :2], image[..., :2])


# --- the engine's checks -----------------------------------------------------------------------

STYLE = np.zeros((8, 8, 3), np.uint8)


@pytest.mark.parametrize(
    "mask,words",
    [
        (np.zeros((6, 5), np.uint8), "all black"),
        (np.ones((5, 6), np.uint8), "the mask is 6x5, the content 5x6"),
        (np.ones((6, 5, 3), np.uint8), "one channel"),
        (np.full((6, 5), 1.5, np.float32), "within 0..1"),
        (np.full((6, 5), np.nan, np.float32), "not finite"),
        (np.ones((6, 5), np.int64), "dtype"),
    ],
)
def test_a_bad_mask_is_named(mask: np.ndarray, words: str) -> None:
    with pytest.raises(ValueError, match=r"styles\[1\]\.mask") as err:
        styles.as_styles([STYLE, styles.StyleImage(STYLE, 1.0, mask)], (6, 5))
    assert words in str(err.value)


def test_blend_weights_are_normalised_and_a_regions_weight_is_kept() -> None:
    mask = np.full((6, 5), 65535, np.uint16)
    out = styles.as_styles(
        [(STYLE, 1.0), (STYLE, 3.0), styles.StyleImage(STYLE, 2.0, mask, 80)], (6, 5)
    )
    assert [s.weight for s in out] == [0.25, 0.75, 2.0]
    assert out[2].mask is not None and out[2].mask.dtype == np.float32
    assert out[2].mask.shape == (6, 5) and (out[2].mask == 1.0).all()
    assert out[2].strength == 80.0 and out[2].is_region and not out[0].is_region
    with pytest.raises(ValueError, match=r"styles\[0\]\.strength: expected a number 0..100"):
        styles.as_styles([styles.StyleImage(STYLE, 1.0, None, 101)], (6, 5))


# --- the protocol ------------------------------------------------------------------------------


def _request(mask: Any, frames: int = 3, **style: Any) -> tuple[Any, list[bytes]]:
    content = layouts.describe(4, 3, 3, "u8", 1)
    entry = P.style_entry(layouts.describe(2, 2, 3, "u8", 2), 1.0)
    if mask is not None:
        entry["mask"] = mask
    entry.update(style)  # type: ignore[typeddict-item]
    header = {"type": "stylize", "id": "j", "content": content, "styles": [entry], "params": {}}
    buffers = [bytes(36), bytes(12), bytes(12)][:frames]
    return header, buffers


def _parse(header: Any, buffers: list[bytes]) -> Any:
    limits = requests.Limits(1000, P.DEFAULT_MAX_TILE_SIZE)
    return requests.parse_stylize(header, buffers, b"client", limits, "cpu")


def test_a_styles_mask_and_strength_are_read() -> None:
    job = _parse(*_request(layouts.describe(4, 3, 1, "u8", 3), strength=65))
    assert job.styles[0]["mask"]["frame"] == 3 and job.styles[0]["strength"] == 65.0
    assert _parse(*_request(None, frames=2)).styles[0].get("mask") is None


@pytest.mark.parametrize(
    "mask,frames,style,words",
    [
        (layouts.describe(4, 3, 3, "u8", 3), 3, {}, "styles[0].mask.channels: a mask has one"),
        (layouts.describe(3, 4, 1, "u8", 3), 3, {}, "the mask is 3x4, the content 4x3"),
        (layouts.describe(4, 3, 1, "u8", 4), 3, {}, "styles[0].mask.frame: 4 is out of range"),
        (layouts.describe(4, 3, 1, "u8", 3), 2, {}, "styles[0].mask.frame"),
        ({"width": 4}, 3, {}, "styles[0].mask.height"),
        (None, 3, {}, "refers to 2"),
        (layouts.describe(4, 3, 1, "u8", 3), 3, {"strength": 250}, "styles[0].strength"),
        (layouts.describe(4, 3, 1, "u8", 3), 3, {"strength": "x"}, "styles[0].strength"),
    ],
)
def test_a_bad_mask_in_a_request_is_named(
    mask: Any, frames: int, style: dict[str, Any], words: str
) -> None:
    with pytest.raises(P.ProtocolError) as err:
        _parse(*_request(mask, frames, **style))
    assert err.value.code == P.BAD_REQUEST and words in err.value.message


def test_the_welcome_says_the_daemon_takes_masks() -> None:
    welcome = P.welcome(
        "w",
        version="1",
        device="cpu",
        weights="caffe",
        max_pixels=1,
        max_tile_size=1,
        client_timeout_s=1.0,
        defaults={},
    )
    assert P.MASKS in welcome["features"]


# --- the command line --------------------------------------------------------------------------


def test_a_mask_file_is_read_as_grey_with_transparency_as_black(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:2, :, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "layer.png")
    mask = read_mask(tmp_path / "layer.png")
    assert mask.shape == (4, 4, 1) and np.allclose(mask[:2], 1.0) and not mask[2:].any()
    Image.fromarray(np.full((4, 4), 128, np.uint8)).save(tmp_path / "grey.png")
    grey = read_mask(tmp_path / "grey.png")
    assert grey.dtype == np.uint8 and (grey == 128).all()


def test_the_command_line_names_a_bad_mask_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / "photo.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "style.png")
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(tmp_path / "black.png")
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "small.png")
    base = ["stylize", str(tmp_path / "photo.png"), str(tmp_path / "style.png")]
    base += ["-o", str(tmp_path / "out.png")]
    cases = [
        (["--style-masks", str(tmp_path / "black.png")], "black.png: the mask is all black"),
        (["--style-masks", str(tmp_path / "small.png")], "the mask is 3x3, the content 5x6"),
        (["--style-masks", "-", "-"], "--style-masks: 2 masks for 1 style images"),
        (["--style-strengths", "strong"], "--style-strengths: expected a number 0..100"),
    ]
    for extra, words in cases:
        assert nst_main([*base, *extra]) == 2
        assert words in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()
