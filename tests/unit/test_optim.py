"""The guarded optimisers on small synthetic costs (no VGG): budget, guard, failure, cancel,
a graceful stop, and both L-BFGS backends (SciPy's and the device-resident torch one)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from nst_core import optim

SHAPE = (1, 3, 6, 5)
#: Every method the guard wraps: L-BFGS with each backend, and Adam.
METHODS = ["scipy", "torch", "adam"]
LBFGS = ["scipy", "torch"]


def bowl(target: float | torch.Tensor = 0.7, scale: float = 1.0) -> optim.Objective:
    """A quadratic with its minimum at `target` everywhere, times `scale`."""

    def cost(x: torch.Tensor) -> torch.Tensor:
        return scale * ((x - target) ** 2).sum()

    return cost


def run(
    method: str, objective: optim.Objective, x0: torch.Tensor, steps: int, **kwargs: Any
) -> torch.Tensor:
    if method == "adam":
        return optim.minimise_adam(objective, x0, steps, 0.05, **kwargs)
    return optim.minimise_lbfgs(objective, x0, steps, backend=method, **kwargs)


class Counted:
    """An objective that counts its calls and keeps every (x, cost) it saw."""

    def __init__(self, objective: optim.Objective) -> None:
        self.objective = objective
        self.seen: list[tuple[torch.Tensor, float]] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        value = self.objective(x)
        self.seen.append((x.detach().clone(), float(value.detach())))
        return value

    @property
    def calls(self) -> int:
        return len(self.seen)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scale", [1e-12, 1.0, 1e12])
def test_converges_whatever_the_scale_of_the_cost(method: str, scale: float) -> None:
    x0 = torch.zeros(SHAPE)
    out = run(method, bowl(0.7, scale), x0, 60)
    assert torch.allclose(out, torch.full(SHAPE, 0.7), atol=0.02), out


@pytest.mark.parametrize("method", METHODS)
def test_the_pixels_stay_inside_the_box(method: str) -> None:
    out = run(method, bowl(1.8), torch.full(SHAPE, 0.5), 30)
    assert out.max() <= 1.0 and out.min() >= 0.0
    assert torch.allclose(out, torch.ones(SHAPE), atol=1e-3)


@pytest.mark.parametrize("backend", LBFGS)
def test_the_minimum_on_the_bounds_is_reached_exactly(backend: str) -> None:
    """An ill-conditioned quadratic whose minimum lies below, inside and above the box: the
    answer is its minimum clamped, with the bound pixels exactly on 0 and 1."""
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(SHAPE, generator=gen) * 2.0 - 0.5
    weights = torch.logspace(0, 2, math.prod(SHAPE)).reshape(SHAPE)

    def cost(x: torch.Tensor) -> torch.Tensor:
        return (weights * (x - target) ** 2).sum()

    out = run(backend, cost, torch.full(SHAPE, 0.5), 100)
    expected = target.clamp(0.0, 1.0)
    assert torch.allclose(out, expected, atol=3e-3), (out - expected).abs().max()
    assert torch.equal(out[target <= 0], torch.zeros_like(out[target <= 0]))
    assert torch.equal(out[target >= 1], torch.ones_like(out[target >= 1]))


@pytest.mark.parametrize("backend", LBFGS)
def test_a_rosenbrock_valley_is_followed_into_the_corner(backend: str) -> None:
    """Rosenbrock's function per pair of pixels, its minimum (1, 1) on the box's corner."""

    def rosenbrock(x: torch.Tensor) -> torch.Tensor:
        a, b = x.reshape(-1, 2).unbind(1)
        return (100 * (b - a**2) ** 2 + (1 - a) ** 2).sum()

    x0 = torch.rand(SHAPE, generator=torch.Generator().manual_seed(2))
    out = run(backend, rosenbrock, x0, 150)
    assert torch.allclose(out, torch.ones(SHAPE), atol=1e-3), out
    assert float(rosenbrock(out)) < 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_the_budget_counts_evaluations_and_reports_each_step(method: str) -> None:
    seen: list[optim.Evaluation] = []
    cost = Counted(lambda x: (torch.sin(7 * x) + x**2).sum())  # not converged in 9 steps

    run(
        method,
        cost,
        torch.rand(SHAPE, generator=torch.Generator().manual_seed(0)),
        9,
        on_evaluation=seen.append,
    )
    assert cost.calls == 10  # the start, then one per step
    assert [e.index for e in seen] == list(range(1, 10))
    assert all(b.best_cost <= a.best_cost for a, b in zip(seen, seen[1:], strict=False))
    assert all(e.best_cost == e.best_cost for e in seen)


@pytest.mark.parametrize("method", METHODS)
def test_the_best_image_seen_comes_back(method: str) -> None:
    """Whatever the last trial was, the image of the lowest cost evaluated is the result."""
    cost = Counted(lambda x: (torch.sin(9 * x) * torch.cos(5 * x) + 0.3 * x).sum())
    out = run(method, cost, torch.rand(SHAPE, generator=torch.Generator().manual_seed(3)), 25)
    best_x, best_cost = min(cost.seen, key=lambda seen: seen[1])
    assert torch.equal(out, best_x)
    assert best_cost < cost.seen[0][1]


@pytest.mark.parametrize("method", METHODS)
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


@pytest.mark.parametrize("backend", LBFGS)
def test_a_non_finite_gradient_is_rejected_too(backend: str) -> None:
    """A finite cost whose gradient is NaN past 0.6 (sqrt of a negative, masked out)."""

    def cost(x: torch.Tensor) -> torch.Tensor:
        root = torch.sqrt(0.6 - x)  # NaN past 0.6, and so is its gradient
        return ((x - 0.9) ** 2).sum() + torch.where(x > 0.6, 0.0, 0.0 * root).sum()

    out = run(backend, cost, torch.zeros(SHAPE), 40)
    assert torch.isfinite(out).all() and out.max() <= 0.6
    assert float(cost(out)) < 0.5 * float(cost(torch.zeros(SHAPE)))


@pytest.mark.parametrize("backend", LBFGS)
def test_a_non_finite_start_is_an_optimisation_failure(backend: str) -> None:
    def cost(x: torch.Tensor) -> torch.Tensor:
        return (x * math.inf).sum()

    with pytest.raises(optim.OptimisationFailed, match="not finite at the starting image"):
        run(backend, cost, torch.ones(SHAPE), 5)


@pytest.mark.parametrize("method", METHODS)
def test_a_run_whose_cost_does_not_fall_fails(method: str) -> None:
    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.sum() * 0.0 + 3.0

    with pytest.raises(optim.OptimisationFailed, match="did not fall"):
        run(method, flat, torch.rand(SHAPE), 10)


@pytest.mark.parametrize("backend", LBFGS)
def test_a_cost_already_at_zero_is_done_not_failed(backend: str) -> None:
    out = run(backend, bowl(0.5), torch.full(SHAPE, 0.5), 5)
    assert torch.equal(out, torch.full(SHAPE, 0.5))


@pytest.mark.parametrize("method", METHODS)
def test_should_stop_interrupts_before_the_next_evaluation(method: str) -> None:
    """Raising from should_stop (a cancel) propagates at once."""

    class Stop(Exception):
        pass

    cost = Counted(bowl())

    def should_stop() -> None:
        if cost.calls >= 3:
            raise Stop

    with pytest.raises(Stop):
        run(method, cost, torch.zeros(SHAPE), 50, should_stop=should_stop)
    assert cost.calls == 3


@pytest.mark.parametrize("method", METHODS)
def test_should_stop_returning_true_ends_the_run_with_the_best_image(method: str) -> None:
    """A deadline: no error though far fewer steps ran than asked and the cost fell little."""
    cost = Counted(bowl(0.7, 1.0))
    out = run(method, cost, torch.zeros(SHAPE), 500, should_stop=lambda: cost.calls >= 4)
    assert cost.calls == 4
    best_x, best_cost = min(cost.seen, key=lambda seen: seen[1])
    assert torch.equal(out, best_x) and best_cost < cost.seen[0][1]


@pytest.mark.parametrize("method", METHODS)
def test_a_stop_before_any_improvement_gives_the_start_back(method: str) -> None:
    x0 = torch.full(SHAPE, 0.25)
    cost = Counted(bowl())
    out = run(method, cost, x0, 50, should_stop=lambda: cost.calls >= 1)
    assert cost.calls == 1 and torch.equal(out, x0)
    out = run(method, cost, x0, 50, should_stop=lambda: True)  # not even the start evaluated
    assert torch.equal(out, x0)


def test_a_stopped_run_that_never_improved_in_many_steps_still_fails() -> None:
    cost = Counted(lambda x: x.sum() * 0.0 + 3.0)
    stop_at = optim.STOPPED_JUDGED_AFTER + 1
    with pytest.raises(optim.OptimisationFailed, match="did not fall"):
        run("adam", cost, torch.rand(SHAPE), 100, should_stop=lambda: cost.calls >= stop_at)
    zero = Counted(lambda x: x.sum() * 0.0)  # nothing to improve on: done, not failed
    x0 = torch.rand(SHAPE)
    out = run("adam", zero, x0, 100, should_stop=lambda: zero.calls >= stop_at)
    assert torch.equal(out, x0)


def test_auto_picks_torch_off_the_cpu_and_the_measured_default_on_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for device in ("cuda", "cuda:1", "mps", "xpu", "meta"):
        assert optim.resolve_backend("auto", torch.device(device)) == "torch"
    assert optim.resolve_backend("auto", torch.device("cpu")) == optim.CPU_BACKEND
    assert optim.resolve_backend("scipy", torch.device("cuda")) == "scipy"
    with pytest.raises(ValueError, match="backend"):
        optim.resolve_backend("lbfgsb", torch.device("cpu"))
    ran: list[str] = []

    def spy(name: str) -> Any:
        real = getattr(optim, f"_run_{name}")

        def run_and_record(*args: Any) -> None:
            ran.append(name)
            real(*args)

        return run_and_record

    for name in LBFGS:
        monkeypatch.setattr(optim, f"_run_{name}", spy(name))
    for default in LBFGS:  # the choice is what runs
        monkeypatch.setattr(optim, "CPU_BACKEND", default)
        ran.clear()
        optim.minimise_lbfgs(bowl(), torch.zeros(SHAPE), 5)
        assert set(ran) == {default}


def test_the_torch_backend_works_in_float32_on_the_images_device() -> None:
    devices: set[torch.device] = set()
    dtypes: set[torch.dtype] = set()

    def cost(x: torch.Tensor) -> torch.Tensor:
        devices.add(x.device)
        dtypes.add(x.dtype)
        return bowl()(x)

    out = optim.minimise_lbfgs(cost, torch.zeros(SHAPE, dtype=torch.float64), 10, backend="torch")
    assert devices == {torch.device("cpu")} and dtypes == {torch.float32}
    assert out.dtype == torch.float32 and out.shape == SHAPE


def test_the_torch_memory_is_the_two_loop_recursion_in_compact_form() -> None:
    """_Memory.apply against Nocedal's two-loop recursion (float64), filling, wrapping round
    its ring and after clear()."""

    def two_loop(q: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        alphas = []
        for s, y in reversed(pairs):
            alphas.append((s @ q) / (s @ y))
            q = q - alphas[-1] * y
        s, y = pairs[-1]
        q = q * (s @ y) / (y @ y)
        for (s, y), alpha in zip(pairs, reversed(alphas), strict=True):
            q = q + (alpha - (y @ q) / (s @ y)) * s
        return q

    gen = torch.Generator().manual_seed(4)
    n = 40
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    hessian = a @ a.T + n * torch.eye(n, dtype=torch.float64)
    memory = optim._Memory(n, torch.device("cpu"), size=4)
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    q = torch.randn(n, generator=gen)
    assert torch.equal(memory.apply(q), q)
    for i in range(11):
        if i == 7:
            memory.clear()
            pairs.clear()
        s = torch.randn(n, generator=gen)
        y = (hessian @ s.double()).float()
        memory.add(s, y)
        pairs = [*pairs, (s.double(), y.double())][-4:]
        expected = two_loop(q.double(), pairs)
        got = memory.apply(q).double()
        assert len(memory) == len(pairs)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))


def test_the_torch_backend_gives_the_evaluations_every_thread_back() -> None:
    """On the CPU its own vector work runs in CPU_OPTIMISER_THREADS threads, the cost in all,
    and the setting is back as it was afterwards, also when should_stop raises."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: set[int] = set()

        def cost(x: torch.Tensor) -> torch.Tensor:
            seen.add(torch.get_num_threads())
            return bowl()(x)

        optim.minimise_lbfgs(cost, torch.zeros(SHAPE), 8, backend="torch")
        assert seen == {2} and torch.get_num_threads() == 2

        class Cancelled(Exception):
            pass

        def cancel() -> None:
            if len(seen) > 0 and torch.get_num_threads() == 2:
                raise Cancelled

        with pytest.raises(Cancelled):
            optim.minimise_lbfgs(cost, torch.zeros(SHAPE), 8, should_stop=cancel, backend="torch")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
