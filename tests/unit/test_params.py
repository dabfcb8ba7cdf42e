"""Parameter ranges and the strength scale (pure Python, no torch)."""

from __future__ import annotations

import math

import pytest

from nst_client.params import MIN_TILE_SIZE, TILE_OVERLAP, ParamError, StyleParams, make_params
from nst_client.strength import STYLE_WEIGHT_AT_DEFAULT, default_strength
from nst_client.strength import style_weight as strength_to_style_weight


def test_strength_is_one_monotone_scale_around_the_default() -> None:
    assert StyleParams().strength == 50
    assert make_params({}).beta == strength_to_style_weight(50) == STYLE_WEIGHT_AT_DEFAULT
    assert strength_to_style_weight(25) == pytest.approx(STYLE_WEIGHT_AT_DEFAULT / 10)
    assert strength_to_style_weight(100) == pytest.approx(STYLE_WEIGHT_AT_DEFAULT * 100)
    betas = [strength_to_style_weight(s) for s in range(0, 101)]
    assert all(b < c for b, c in zip(betas, betas[1:], strict=False))


def test_sliders_start_at_the_daemons_default() -> None:
    assert default_strength(None) == 50
    assert default_strength({"defaults": {"strength": 70}}) == 70
    assert default_strength({"defaults": {"strength": 700}}) == 100  # clamped to the scale
    assert default_strength({"defaults": {"strength": "x"}}) == 50
    assert default_strength({"defaults": StyleParams().to_dict()}) == StyleParams().strength


def test_style_weight_overrides_strength_for_experts() -> None:
    assert make_params({"strength": 80}).beta == strength_to_style_weight(80)
    assert make_params({"strength": 80, "style_weight": 0.25}).beta == 0.25
    assert make_params({"style_weight": None}).beta == STYLE_WEIGHT_AT_DEFAULT


@pytest.mark.parametrize(
    "name",
    ["content_weight", "style_weight", "tv_weight", "strength", "learning_rate", "style_scale"],
)
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_refused(name: str, bad: float) -> None:
    with pytest.raises(ParamError, match=name):
        make_params({name: bad})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tv_weight": 1e308}, "tv_weight: must be <= 1000000.0"),
        ({"content_weight": -1}, "content_weight: must be >= 0.0"),
        ({"strength": 100.5}, "strength: must be <= 100.0"),
        ({"strength": -1}, "strength: must be >= 0.0"),
        ({"tile_size": 64}, f"tile_size: must be >= {MIN_TILE_SIZE}"),
        ({"tile_size": 32}, f"tile_size: must be >= {MIN_TILE_SIZE}"),
        ({"style_scale": 20}, "style_scale: must be <= 4.0"),
        ({"style_scale": 0.01}, "style_scale: must be >= 0.1"),
        ({"learning_rate": 2}, "learning_rate: must be <= 1.0"),
        ({"learning_rate": 0}, "learning_rate: must be > 0.0"),
        ({"min_scale": 8}, "min_scale: must be >= 16"),
        ({"style_layers": [["relu1_1", math.inf]]}, "style_layers: must be a finite number"),
        (
            {"style_layers": [["relu1_1", 0], ["relu2_1", 0]]},
            "style_layers: every layer weight is 0",
        ),
        ({"content_weight": 0, "style_weight": 0}, "nothing to optimise"),
        ({"normalize_costs": "yes"}, "normalize_costs: expected true or false"),
    ],
)
def test_values_outside_the_documented_ranges_are_named(values: dict, message: str) -> None:
    with pytest.raises(ParamError) as info:
        make_params(values)
    assert message in str(info.value)


def test_the_edges_of_the_ranges_are_accepted() -> None:
    p = make_params(
        {
            "tile_size": MIN_TILE_SIZE,
            "min_scale": 16,
            "size": 16,
            "strength": 0,
            "style_scale": 4.0,
            "learning_rate": 1.0,
            "content_weight": 1e6,
            "normalize_costs": False,
        }
    )
    assert p.tile_size - 2 * TILE_OVERLAP >= TILE_OVERLAP  # tiles always advance
    assert make_params({"content_weight": 0}).beta > 0  # style only: fine
    assert make_params({"style_weight": 0}).content_weight > 0  # content only: fine
