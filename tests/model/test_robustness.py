"""The optimiser on the real VGG-19 over a grid of sizes, strengths, optimisers and image pairs:
the cost always falls, never turns non-finite, the image keeps changing; and a run that cannot
make progress fails instead of returning the content as a result."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from nst_app import demo
from nst_client.progress import Progress
from nst_core.engine import OptimisationFailed, stylize
from nst_core.vgg import VGGFeatures

#: Steps per run: L-BFGS is fast to converge; Adam, a first-order method, needs more.
STEPS = {"lbfgs": 20, "adam": 50}
#: Strength 25, 50 and 100 (0.1x, 1x and 100x the default style weight), each with the cost
#: the run must get below, as a fraction of its first value. At the default and above that
#: is half. At 0.1x the optimum itself lies near half (measured: 300 L-BFGS steps on
#: coffee-mosaic at 40 px reach 0.450 of the first cost, a weak style pulls only a little
#: away from the content), so there the bar is 0.7.
STRENGTHS = {25.0: 0.7, 50.0: 0.5, 100.0: 0.5}


def counted(seen: list) -> Callable[[Progress], None]:
    """A progress callback keeping the counted steps (the engine's first report, iteration
    0, carries only the plan's time estimate)."""
    return lambda p: seen.append(p) if p.iteration else None


def _small(a: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((side, side * 3 // 4), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two photo/painting pairs (the tests resize the photos to each working size)."""
    return {
        "astronaut-swirls": (demo.photo("astronaut"), demo.swirls(96)),
        "coffee-mosaic": (demo.photo("coffee"), demo.mosaic(96)),
    }


@pytest.mark.parametrize("pair", ["astronaut-swirls", "coffee-mosaic"])
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("strength", list(STRENGTHS))
@pytest.mark.parametrize("size", [16, 40, 80])
def test_the_cost_falls_and_stays_finite_everywhere(
    model: VGGFeatures,
    pairs: Any,
    pair: str,
    optimizer: str,
    strength: float,
    size: int,
) -> None:
    photo, painting = pairs[pair]
    content = _small(photo, size)
    seen: list = []
    steps = STEPS[optimizer]
    params = {
        "size": size,
        "min_scale": size,
        "iterations": steps,
        "strength": strength,
        "optimizer": optimizer,
    }
    out = stylize(
        content, [painting], params, progress=counted(seen), preview_every=steps // 2, model=model
    )
    costs = [p.loss_total for p in seen]
    assert len(costs) == steps and all(math.isfinite(c) for c in costs), costs
    assert min(costs) < STRENGTHS[strength] * costs[0], costs
    mid, end = (p.preview for p in seen if p.preview is not None)
    assert not np.array_equal(mid, end), "the image stopped changing half way"
    assert not np.array_equal(out, content)


def test_every_scale_of_a_coarse_to_fine_run_makes_progress(model: VGGFeatures, pairs: Any) -> None:
    photo, painting = pairs["astronaut-swirls"]
    seen: list = []
    stylize(
        _small(photo, 96),
        [painting],
        {"size": 96, "min_scale": 24, "iterations": 10},
        progress=counted(seen),
        model=model,
    )
    for scale in (1, 2, 3):
        costs = [p.loss_total for p in seen if p.scale == scale]
        assert len(costs) == 10 and costs[-1] < 0.8 * costs[0], (scale, costs)


def test_a_run_that_cannot_make_progress_fails(model: VGGFeatures, pairs: Any) -> None:
    """Adam with a step of 1e-9 cannot move the pixels: an error, not an unchanged 'result'."""
    photo, painting = pairs["coffee-mosaic"]
    params = {
        "size": 32,
        "min_scale": 32,
        "iterations": 3,
        "optimizer": "adam",
        "learning_rate": 1e-9,
    }
    with pytest.raises(OptimisationFailed, match=r"scale 1 of 1 .*the cost did not fall"):
        stylize(_small(photo, 32), [painting], params, model=model)


def test_an_image_already_at_the_optimum_is_done_with_progress_complete(model: VGGFeatures) -> None:
    """Content = style and no TV: the cost starts at 0. Nothing to do is not a failure; the
    run stops early and its last report still reaches the end of the bar."""
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    seen: list = []
    out = stylize(
        img,
        [img],
        {"size": 16, "min_scale": 16, "iterations": 50, "tv_weight": 0},
        progress=counted(seen),
        model=model,
    )
    assert np.array_equal(out, img)
    assert len(seen) < 50 and seen[-1].iteration == seen[-1].iterations == 50
    assert seen[-1].loss_total == 0.0
