"""The planner: presets and time budgets turned into scales and iterations for a device."""

from __future__ import annotations

import pytest

from nst_client.params import QUALITY_PRESETS, make_params
from nst_core.plan import PRESETS, Speed, check_limits, finish_s, make_plan, refit

#: Roughly this project's 2-core CPU in bf16, and a large GPU.
CPU = Speed(s_per_mpix=5.5, s_fixed=0.02)
GPU = Speed(s_per_mpix=0.012, s_fixed=0.002)


def plan_for(layer: tuple[int, int], speed: Speed = CPU, **params: object):  # type: ignore[no-untyped-def]
    return make_plan(layer, make_params(params), speed)


def test_the_coarse_scales_set_the_picture_cheaply_and_the_last_one_takes_the_time() -> None:
    plan = plan_for((768, 1024))
    iterations = [s.iterations for s in plan.steps]
    assert iterations[0] >= iterations[1]  # the composition and palette, where steps are cheap
    times = [s.predicted_s(CPU) for s in plan.steps]
    assert times[-1] > sum(times) / 2  # the brush work at the working size
    sides = [max(s.size) for s in plan.steps]
    assert sides == sorted(sides) and sides[-1] == 512


def test_on_a_slow_device_normal_works_at_512_and_the_layer_is_upscaled() -> None:
    plan = plan_for((2000, 3000))
    assert max(plan.final) == 512 and not plan.full_size
    steps_s = sum(s.predicted_s(CPU) for s in plan.steps)
    assert plan.predicted_s == pytest.approx(steps_s + plan.finish_s)
    assert plan.finish_s == pytest.approx(finish_s((2000, 3000))) and plan.finish_s > 0


def test_on_a_fast_device_the_presets_reach_the_layers_own_size_in_tiles() -> None:
    plan = plan_for((2000, 3000), GPU)
    assert plan.full_size and plan.final == (2000, 3000)
    assert plan.steps[-1].tiles > 1  # past the tile size: tiled, memory bounded
    assert plan.predicted_s <= PRESETS["normal"].allowance_s


def test_presets_order_by_time_and_final_is_never_smaller_than_normal() -> None:
    for layer in [(384, 512), (768, 1024), (2000, 3000), (4096, 4096)]:
        for speed in (CPU, GPU):
            plans = [plan_for(layer, speed, quality=q) for q in QUALITY_PRESETS]
            times = [p.predicted_s for p in plans]
            assert times == sorted(times), (layer, speed, times)
            assert max(plans[2].final) >= max(plans[1].final) >= max(plans[0].final)


def test_a_small_layer_is_worked_at_its_own_size() -> None:
    plan = plan_for((48, 64))
    assert len(plan.steps) == 1 and plan.full_size


def test_an_explicit_size_is_kept_whatever_the_preset_or_budget() -> None:
    assert max(plan_for((2000, 3000), GPU, size=700).final) == 700
    assert max(plan_for((2000, 3000), CPU, size=700, time_budget=30).final) == 700
    assert plan_for((200, 300), CPU, size="full", quality="draft").full_size


def test_fixed_iterations_run_that_many_at_every_scale() -> None:
    plan = plan_for((768, 1024), iterations=40)
    assert [s.iterations for s in plan.steps] == [40, 40, 40]
    assert max(plan.final) == 512


@pytest.mark.parametrize("budget", [10, 30, 60, 120, 600])
@pytest.mark.parametrize("layer", [(768, 1024), (2000, 3000)])
@pytest.mark.parametrize("speed", [CPU, GPU])
def test_a_time_budget_is_planned_within_20_percent(
    budget: float, layer: tuple[int, int], speed: Speed
) -> None:
    plan = plan_for(layer, speed, time_budget=budget)
    assert plan.budget_s == budget
    if plan.capped:  # more time than the layer at its own size can use: it ends early
        assert plan.full_size and plan.predicted_s < budget
    else:
        assert 0.8 * budget <= plan.predicted_s <= 1.2 * budget, plan.describe()
    assert not plan.capped or speed == GPU  # a CPU has use for every second of these


def test_a_larger_budget_never_gets_a_smaller_image() -> None:
    sides = [max(plan_for((2000, 3000), time_budget=b).final) for b in (10, 30, 60, 300, 3000)]
    assert sides == sorted(sides) and sides[-1] > sides[0]


def test_a_budget_past_what_a_small_layer_can_use_ends_early_instead_of_looping() -> None:
    plan = plan_for((48, 64), time_budget=3600)
    assert plan.capped and plan.predicted_s < 3600 and plan.full_size


def test_refit_fits_the_rest_of_a_budget_to_the_speed_seen() -> None:
    plan = plan_for((768, 1024), time_budget=60)
    slower = Speed(CPU.s_per_mpix * 2, CPU.s_fixed * 2)
    spent = plan.steps[0].predicted_s(CPU) * 2  # the first scale ran twice as slow
    fitted = refit(plan, 1, spent, slower)
    assert fitted.steps[0] == plan.steps[0]
    assert all(
        a.iterations < b.iterations for a, b in zip(fitted.steps[1:], plan.steps[1:], strict=True)
    )
    rest = sum(s.predicted_s(slower) for s in fitted.steps[1:])
    assert rest == pytest.approx(60 - spent, rel=0.1)
    assert refit(plan_for((768, 1024)), 1, 99.0, slower) == plan_for((768, 1024))


def test_describe_says_sizes_iterations_and_time() -> None:
    text = plan_for((768, 1024)).describe()
    assert text.startswith("normal: 128x96:") and "512x384" in text and "about" in text


def test_an_unsized_job_is_checked_against_the_daemons_limits_at_full_size() -> None:
    from nst_core.plan import LimitError

    params = make_params({"style_scale": 4.0})
    with pytest.raises(LimitError, match="style_scale"):
        check_limits((2000, 3000), [(1000, 1000)], params, max_pixels=50_000_000, max_tile=1024)
