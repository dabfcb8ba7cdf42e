"""The guarded optimisers on small synthetic costs (no VGG): budget, guard, failure, cancel."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from nst_core import optim

SHAPE = (1, 3, 6, 5)


def bowl(target: float = 0.7, scale: float = 1.0) -> optim.Objective:
    """A quadratic with its minimum at `target` everywhere, times `scale`."""

    def cost(x: torch.Tensor) -> torch.Tensor:
        return scale * ((x - target) ** 2).sum()

    return cost


def run(
    method: str, objective: optim.Objective, x0: torch.Tensor, steps: int, **kwargs: Any
) -> torch.Tensor:
    if method == "lbfgs":
        return optim.minimise_lbfgs(objective, x0, steps, **kwargs)
    return optim.minimise_adam(objective, x0, steps, 0.05, **kwargs)


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
@pytest.mark.parametrize("scale", [1e-12, 1.0, 1e12])
def test_converges_whatever_the_scale_of_the_cost(method: str, scale: float) -> None:
    x0 = torch.zeros(SHAPE)
    out = run(method, bowl(0.7, scale), x0, 60)
    assert torch.allclose(out, torch.full(SHAPE, 0.7), atol=0.02), out


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_the_pixels_stay_inside_the_box(method: str) -> None:
    out = run(method, bowl(1.8), torch.full(SHAPE, 0.5), 30)
    assert out.max() <= 1.0 and out.min() >= 0.0
    assert torch.allclose(out, torch.ones(SHAPE), atol=1e-3)


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_the_budget_counts_evaluations_and_reports_each_step(method: str) -> None:
    calls = 0
    seen: list[optim.Evaluation] = []

    def cost(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return (torch.sin(7 * x) + x**2).sum()  # never converges exactly in 9 steps

    run(
        method,
        cost,
        torch.rand(SHAPE, generator=torch.Generator().manual_seed(0)),
        9,
        on_evaluation=seen.append,
    )
    assert calls == 10  # the start, then one per step
    assert [e.index for e in seen] == list(range(1, 10))
    assert all(b.best_cost <= a.best_cost for a, b in zip(seen, seen[1:], strict=False))
    assert all(e.best_cost == e.best_cost for e in seen)


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_a_non_finite_cost_is_rejected_and_the_run_recovers(method: str) -> None:
    """The cost is inf past 0.8 while its minimum sits at 1: every overshoot is non-finite."""
    evaluated: list[float] = []

    def cost(x: torch.Tensor) -> torch.Tensor:
        value = ((x - 1.0) ** 2).sum() * 1e6
        bad = (x > 0.8).any()
        value = torch.where(bad, torch.full_like(value, math.inf), value)
        evaluated.append(float(value.detach()))
        return value

    out = run(method, cost, torch.zeros(SHAPE), 40)
    assert any(math.isinf(v) for v in evaluated), "the test must provoke a non-finite step"
    assert torch.isfinite(out).all() and out.max() <= 0.8
    assert float(cost(out)) < 0.5 * evaluated[0]  # progress made despite the bad steps


def test_a_non_finite_start_is_an_optimisation_failure() -> None:
    def cost(x: torch.Tensor) -> torch.Tensor:
        return (x * math.inf).sum()

    with pytest.raises(optim.OptimisationFailed, match="not finite at the starting image"):
        optim.minimise_lbfgs(cost, torch.ones(SHAPE), 5)


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_a_run_whose_cost_does_not_fall_fails(method: str) -> None:
    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.sum() * 0.0 + 3.0

    with pytest.raises(optim.OptimisationFailed, match="did not fall"):
        run(method, flat, torch.rand(SHAPE), 10)


def test_a_cost_already_at_zero_is_done_not_failed() -> None:
    out = optim.minimise_lbfgs(bowl(0.5), torch.full(SHAPE, 0.5), 5)
    assert torch.equal(out, torch.full(SHAPE, 0.5))


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_should_stop_interrupts_before_the_next_evaluation(method: str) -> None:
    calls = 0

    class Stop(Exception):
        pass

    def cost(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return bowl()(x)

    def should_stop() -> None:
        if calls >= 3:
            raise Stop

    with pytest.raises(Stop):
        run(method, cost, torch.zeros(SHAPE), 50, should_stop=should_stop)
    assert calls == 3
