"""The engine on real images with the real VGG-19: it optimises, keeps layouts, stops on cancel."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from nst_client.params import DEFAULT_STYLE_LAYER_WEIGHTS, ParamError, make_params
from nst_client.progress import Progress
from nst_core import costs, pixels
from nst_core.engine import StylizeCancelled, stylize
from nst_core.targets import StyleTargetCache
from nst_core.vgg import VGGFeatures

FAST = {"size": 64, "iterations": 8, "min_scale": 64}


def counted(seen: list) -> Callable[[Progress], None]:
    """A progress callback keeping the counted steps (the engine's first report, iteration
    0, carries only the plan's time estimate)."""
    return lambda p: seen.append(p) if p.iteration else None


def style_cost_of(model: VGGFeatures, image: np.ndarray, style: np.ndarray) -> float:
    """Js of `image` against `style`, computed from the public cost functions."""

    def feats(a: np.ndarray) -> dict[str, torch.Tensor]:
        rgb = pixels.split_alpha(a)[0]
        t = torch.from_numpy(pixels.to_unit_float(rgb).transpose(2, 0, 1).copy())[None]
        with torch.no_grad():
            return model(t, [n for n, _ in DEFAULT_STYLE_LAYER_WEIGHTS])

    fs, fg = feats(style), feats(image)
    total = 0.0
    for name, weight in DEFAULT_STYLE_LAYER_WEIGHTS:
        target = costs.style_target(fs[name])
        total += weight * costs.layer_style_cost_from_target(target, fg[name]).item()
    return total


def test_optimisation_cuts_cost_and_matches_style(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    seen: list = []
    out = stylize(
        photo,
        [style_image],
        {"size": 64, "iterations": 40, "min_scale": 64},
        progress=counted(seen),
        model=model,
    )
    assert len(seen) == 40
    first, last = seen[0], seen[-1]
    assert last.loss_total < first.loss_total / 5, (first.loss_total, last.loss_total)
    before = style_cost_of(model, photo, style_image)
    after = style_cost_of(model, out, style_image)
    assert after < before / 5, (before, after)
    # ... while the content is still there: closer to the photo than the style is.
    mse_photo = np.mean((out.astype(float) - photo) ** 2)
    assert mse_photo < np.mean((style_image[:64, :64].astype(float) - photo) ** 2)


def test_content_only_from_noise_recovers_the_content(
    model: VGGFeatures, photo: np.ndarray
) -> None:
    params = {
        "size": 64,
        "iterations": 60,
        "min_scale": 64,
        "init": "noise",
        "content_layer": "relu1_2",
        "style_weight": 0.0,
        "content_weight": 1.0,
        "tv_weight": 0.0,
    }
    out = stylize(photo, [photo], params, model=model)
    noise = np.random.default_rng(0).integers(0, 256, photo.shape)

    def psnr(a: np.ndarray) -> float:
        return 10 * np.log10(255.0**2 / np.mean((a.astype(float) - photo) ** 2))

    assert psnr(noise) < 10
    assert psnr(out) > 14, psnr(out)  # 16.2 dB measured; the noise start is ~8 dB


def test_progress_reports_costs_time_and_previews(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    seen: list = []
    stylize(
        photo,
        [style_image],
        {"size": 64, "iterations": 4, "min_scale": 32},
        progress=counted(seen),
        preview_every=2,
        model=model,
    )
    assert [p.iteration for p in seen] == list(range(1, 9))
    assert {p.iterations for p in seen} == {8} and [p.scale for p in seen] == [1] * 4 + [2] * 4
    assert all(p.scales == 2 and p.eta_s >= 0 and p.elapsed_s > 0 for p in seen)
    assert all(p.loss_total > 0 and p.loss_content >= 0 and p.loss_style > 0 for p in seen)
    previews = [p.preview for p in seen if p.preview is not None]
    assert len(previews) == 4
    assert all(pv.shape == photo.shape and pv.dtype == photo.dtype for pv in previews)


def test_rgba_alpha_comes_back_bit_for_bit(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    alpha = np.random.default_rng(1).integers(0, 256, (64, 64, 1), dtype=np.uint8)
    rgba = np.concatenate([photo, alpha], axis=2)
    out = stylize(rgba, [style_image], FAST, model=model)
    assert out.shape == (64, 64, 4) and out.dtype == np.uint8
    assert np.array_equal(out[:, :, 3], rgba[:, :, 3])
    assert not np.array_equal(out[:, :, :3], photo)


def test_uint16_float32_grey_layouts(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    u16 = photo.astype(np.uint16) * 257
    u16 = np.concatenate([u16, np.full((64, 64, 1), 40000, np.uint16)], axis=2)
    out16 = stylize(u16, [style_image], FAST, model=model)
    assert out16.dtype == np.uint16 and out16.shape == u16.shape
    assert np.array_equal(out16[:, :, 3], u16[:, :, 3])
    assert len(np.unique(out16[:, :, :3] % 257)) > 1  # real 16-bit values, not 8-bit x 257

    f32 = photo.astype(np.float32) / 255.0
    out32 = stylize(f32, [style_image], FAST, model=model)
    assert out32.dtype == np.float32 and out32.shape == f32.shape
    assert 0.0 <= out32.min() and out32.max() <= 1.0

    grey_alpha = np.stack([photo.mean(axis=2).astype(np.uint8), photo[:, :, 0]], axis=2)
    out_ga = stylize(grey_alpha, [style_image], FAST, model=model)
    assert out_ga.shape == (64, 64, 2) and np.array_equal(out_ga[:, :, 1], photo[:, :, 0])

    out_rgb = stylize(photo, [style_image], FAST, model=model)
    assert out_rgb.shape == (64, 64, 3) and out_rgb.dtype == np.uint8


def test_same_seed_same_output_and_other_seed_differs(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    params = {**FAST, "init": "noise", "seed": 3}
    a = stylize(photo, [style_image], params, model=model)
    b = stylize(photo, [style_image], params, model=model)
    c = stylize(photo, [style_image], {**params, "seed": 4}, model=model)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cancel_stops_within_one_iteration(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    seen: list = []

    def cancel() -> bool:
        return len(seen) >= 3

    with pytest.raises(StylizeCancelled) as info:
        stylize(
            photo,
            [style_image],
            {**FAST, "iterations": 50},
            progress=counted(seen),
            cancel=cancel,
            model=model,
        )
    assert len(seen) == 3
    assert info.value.partial is not None and info.value.partial.shape == photo.shape


def test_a_job_flushes_subnormals_on_its_thread_and_leaves_the_flag_as_it_was(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    """The flag is per thread and inherited from the creator: a job thread made by one without
    it (a Ray actor's, say) must have it set for the job, or subnormal passes run 2-4x slower;
    afterwards the caller's thread is as it was."""
    subnormal = torch.tensor([1e-39])
    seen: dict[str, Any] = {"during": set()}

    def job() -> None:
        seen["before"] = float(subnormal * 1.0)
        stylize(
            photo,
            [style_image],
            {**FAST, "iterations": 2},
            progress=lambda p: seen["during"].add(float(subnormal * 1.0)),
            model=model,
        )
        seen["after"] = float(subnormal * 1.0)

    def creator() -> None:
        torch.set_flush_denormal(False)
        thread = threading.Thread(target=job)
        thread.start()
        thread.join()

    outer = threading.Thread(target=creator)
    outer.start()
    outer.join()
    assert seen == {
        "before": pytest.approx(1e-39),
        "during": {0.0},
        "after": pytest.approx(1e-39),
    }


def test_result_has_the_content_size_when_working_smaller(
    model: VGGFeatures, style_image: np.ndarray
) -> None:
    big = np.random.default_rng(2).integers(0, 256, (90, 150, 3), dtype=np.uint8)
    out = stylize(big, [style_image], {"size": 48, "iterations": 2, "min_scale": 48}, model=model)
    assert out.shape == big.shape


def test_tiled_scale_runs_and_keeps_memory_per_tile(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    wide = np.concatenate([photo, photo[:, ::-1]] * 3, axis=1)[:, :320]  # 64 x 320
    seen: list = []
    out = stylize(
        wide,
        [style_image],
        {"size": 320, "iterations": 3, "min_scale": 320, "tile_size": 256},
        progress=counted(seen),
        model=model,
    )
    assert out.shape == wide.shape
    assert seen[-1].iterations == 6  # two tiles x 3 iterations
    assert not np.array_equal(out, wide)


def test_a_large_style_is_read_in_pieces_of_at_most_a_tile(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray, monkeypatch: Any
) -> None:
    """A style scaled past the tile size costs one tile's memory per VGG pass, and its Gram
    targets are those of one whole pass (pieces read with context, added up over pixels)."""
    content = photo.repeat(2, axis=0).repeat(2, axis=1)  # long side >= 96
    big_style = np.concatenate([np.concatenate([style_image] * 6, axis=0)] * 6, axis=1)
    params = {"size": 96, "iterations": 1, "min_scale": 96, "style_scale": 4.0}
    sides: list[int] = []
    forward = type(model).forward

    def spy(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        sides.append(max(x.shape[-2:]))
        return forward(model, x, *args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    targets = {}
    for tile in (256, 1024):
        sides.clear()
        cache = StyleTargetCache()
        stylize(content, [big_style], {**params, "tile_size": tile}, model=model, style_cache=cache)
        assert max(sides) <= tile
        (targets[tile],) = cache._items.values()
    assert max(sides) == 384  # one whole pass of the 384-px style when the tile allows it
    for name, whole in targets[1024].items():
        pieces = targets[256][name]
        assert (pieces - whole).norm() / whole.norm() < 1e-2, name


def test_preserve_colors_keeps_the_content_chroma(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    from nst_core.colour import rgb_to_yiq

    out = stylize(photo, [style_image], {**FAST, "preserve_colors": True}, model=model)
    plain = stylize(photo, [style_image], FAST, model=model)

    def chroma(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a.astype(np.float32).transpose(2, 0, 1) / 255)[None]
        return rgb_to_yiq(t)[:, 1:]

    kept = (chroma(out) - chroma(photo)).abs().mean().item()
    moved = (chroma(plain) - chroma(photo)).abs().mean().item()
    assert kept < moved / 2, (kept, moved)


def test_style_cache_reuses_targets(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    cache = StyleTargetCache()
    a = stylize(photo, [style_image], FAST, model=model, style_cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)
    b = stylize(photo, [style_image], FAST, model=model, style_cache=cache)
    assert cache.hits == 1 and np.array_equal(a, b)


def test_two_styles_blend(model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray) -> None:
    out = stylize(photo, [(style_image, 3.0), (photo, 1.0)], FAST, model=model)
    assert out.shape == photo.shape


def test_bad_inputs_are_named(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    with pytest.raises(ParamError, match="iterations"):
        make_params({"iterations": -1})
    with pytest.raises(ParamError, match="colour"):
        make_params({"colour": 1})
    with pytest.raises(ParamError, match="optimizer"):
        make_params({"optimizer": "sgd"})
    with pytest.raises(ParamError, match="content_layer: unknown VGG-19 layer 'relu9_9'"):
        make_params({"content_layer": "relu9_9"})
    with pytest.raises(ParamError, match="style_layers: unknown VGG-19 layer 'conv6_1'"):
        make_params({"style_layers": [["relu1_1", 0.5], ["conv6_1", 0.5]]})
    with pytest.raises(ValueError, match="content"):
        stylize(np.zeros((4, 4, 5), np.uint8), [style_image], FAST, model=model)
    with pytest.raises(ValueError, match="int64"):
        stylize(photo.astype(np.int64), [style_image], FAST, model=model)
    with pytest.raises(ValueError, match="styles"):
        stylize(photo, [], FAST, model=model)
    nan = photo.astype(np.float32) / 255
    nan[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="content: 1 pixel values are not finite"):
        stylize(nan, [style_image], FAST, model=model)


def test_zero_iterations_returns_the_content(model: VGGFeatures, photo: np.ndarray) -> None:
    out = stylize(photo, [photo], {"iterations": 0}, model=model)
    assert np.array_equal(out, photo)


def test_bf16_autocast_matches_fp32(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    """bf16 VGG passes (costs in fp32) land where fp32 does: same costs, nearly same pixels."""
    from nst_core.engine import resolve_precision

    assert resolve_precision("fp32", model) is None
    assert resolve_precision("bf16", model) == torch.bfloat16
    runs = {}
    for precision in ("fp32", "bf16"):
        seen: list = []
        out = stylize(
            photo,
            [style_image],
            {**FAST, "iterations": 20, "precision": precision},
            progress=counted(seen),
            model=model,
        )
        runs[precision] = (out, seen[-1].loss_total, seen[0].loss_total)
    (a, ja, j0), (b, jb, _) = runs["fp32"], runs["bf16"]
    assert jb < j0 / 3  # bf16 optimises as well ...
    assert abs(ja - jb) / ja < 0.1, (ja, jb)  # ... to the same cost
    # The same picture: the two differ far less than either differs from the photo.
    apart = np.mean(np.abs(a.astype(float) - b))
    assert apart < 0.5 * np.mean(np.abs(a.astype(float) - photo)), apart


def test_auto_precision_is_the_measured_one_and_the_first_report_carries_the_eta(
    model: VGGFeatures, photo: np.ndarray, style_image: np.ndarray
) -> None:
    from nst_core import calibrate
    from nst_core.engine import resolve_precision

    profile = calibrate.profile(model)
    assert profile.precision in profile.measured and set(profile.measured) <= {"fp32", "bf16"}
    assert profile.measured[profile.precision] == min(profile.measured.values())
    assert resolve_precision("auto", model) == profile.autocast
    assert profile.speed.s_per_mpix > 0 and profile.speed.s_fixed >= 0
    seen: list = []
    stylize(photo, [style_image], FAST, progress=seen.append, model=model)
    first = seen[0]
    assert first.iteration == 0 and first.iterations == 8 and first.eta_s > 0
    assert [p.iteration for p in seen[1:]] == list(range(1, 9))
