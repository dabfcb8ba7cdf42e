"""Guarded minimisation of a pixel cost: L-BFGS-B inside the pixel box, or Adam.

Why this shape: the pixels live in [0, 1], so the optimiser works inside that box (SciPy's
L-BFGS-B with its More-Thuente line search); no step can leave the colour range, so the
activations, and with them the cost, stay bounded. The cost is divided by its value at the
start, so the problem has the same scale at every working size and style strength, and the
line search, not a fixed learning rate, picks each step. Around that sits a guard: the budget
counts cost evaluations exactly (one VGG-19 forward and backward each: the unit of time), the
best image seen is what comes back, a non-finite cost rejects the step, drops the curvature
memory and shrinks the box around the best image (a trust region), and a run whose cost did
not fall raises `OptimisationFailed` instead of returning an unchanged image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch
from threadpoolctl import threadpool_limits

from .errors import OptimisationFailed as OptimisationFailed  # raised here

#: A cost of x (1, 3, h, w) in [0, 1] as a scalar tensor with a graph back to x.
Objective = Callable[[torch.Tensor], torch.Tensor]
#: Called after every counted evaluation.
EvaluationFn = Callable[["Evaluation"], None]

#: A run must cut the cost by at least this fraction of its starting value, or it failed.
MIN_PROGRESS = 1e-4
#: L-BFGS curvature pairs kept (memory: 2 x this x the pixel count, in float64).
LBFGS_MEMORY = 10
#: Restarts (fresh memory) that may follow each other without the cost falling.
MAX_IDLE_RESTARTS = 2
#: Adam: a step whose cost exceeds this many times the best so far is rejected like a
#: non-finite one (a fixed step size can overshoot by far when the optimum is near).
ADAM_EXPLODED = 2.0


class _Stop(Exception):
    """Raised inside the cost function to leave SciPy's loop (budget spent)."""


class _NonFinite(Exception):
    """Raised inside the cost function when a trial point's cost or gradient is not finite."""


class _Exploded(Exception):
    """Raised by the Adam loop for a step that multiplied the best cost."""


@dataclass
class Evaluation:
    """One step's evaluation: its 1-based index (the evaluation at the start is not counted),
    its cost, and the best image and cost so far (what a stop now would return)."""

    index: int
    cost: float
    best: torch.Tensor
    best_cost: float


class _Tracker:
    """Counts evaluations, keeps the best image, and reports; shared by both methods."""

    def __init__(
        self,
        objective: Objective,
        steps: int,
        on_evaluation: EvaluationFn | None,
        should_stop: Callable[[], None] | None,
    ) -> None:
        self.objective, self.budget = objective, steps + 1  # + the evaluation at the start
        self.on_evaluation, self.should_stop = on_evaluation, should_stop
        self.count = 0
        self.scale = 1.0  # the starting cost; every cost the optimiser sees is divided by it
        self.best_cost = math.inf
        self.best: torch.Tensor | None = None
        self.start_cost = math.inf

    def evaluate(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Cost (divided by the starting cost) and its gradient at x; counts and reports.

        Raises _Stop once the budget is spent, _NonFinite for a non-finite cost or gradient.
        """
        if self.count >= self.budget:
            raise _Stop
        if self.should_stop is not None:
            self.should_stop()
        x = x.detach().requires_grad_(True)
        cost = self.objective(x)
        (grad,) = torch.autograd.grad(cost, x)
        value = float(cost.detach())
        self.count += 1
        finite = math.isfinite(value) and bool(torch.isfinite(grad).all())
        if finite and value < self.best_cost:
            self.best_cost, self.best = value, x.detach().clone()
        if self.count == 1:
            self.start_cost = value
            if not finite:
                raise OptimisationFailed(
                    f"the cost is not finite at the starting image ({value}); lower the weights"
                )
            self.scale = value if value > 0 else 1.0
        if self.on_evaluation is not None and self.count > 1:
            assert self.best is not None
            self.on_evaluation(Evaluation(self.count - 1, value, self.best, self.best_cost))
        if not finite:
            raise _NonFinite
        return value / self.scale, grad / self.scale

    def result(self) -> torch.Tensor:
        """The best image seen; fails if the cost did not fall enough."""
        assert self.best is not None
        if self.start_cost > 0 and self.count > 1:
            drop = (self.start_cost - self.best_cost) / self.start_cost
            if drop < MIN_PROGRESS:
                raise OptimisationFailed(
                    f"the cost did not fall (from {self.start_cost:.6g} to {self.best_cost:.6g} "
                    f"in {self.count} evaluations)"
                )
        return self.best


def minimise_lbfgs(
    objective: Objective,
    x0: torch.Tensor,
    steps: int,
    on_evaluation: EvaluationFn | None = None,
    should_stop: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Minimise objective over x in [0, 1] in `steps` evaluations after the start; best x back.

    SciPy stops early when it converges or its line search can go no further; the run then
    restarts from the best image with fresh memory while it keeps making progress. After a
    non-finite trial the box around the best image shrinks tenfold (and grows back after a
    successful restart).
    """
    track = _Tracker(objective, steps, on_evaluation, should_stop)
    shape, device = x0.shape, x0.device
    radius = 1.0  # half-width of the box around the best image; 1 = the whole pixel range
    idle = 0
    start = x0.detach().clamp(0.0, 1.0)
    while track.count < track.budget:
        before = track.best_cost
        origin = start.double().cpu().numpy().ravel()
        lower = np.clip(origin - radius, 0.0, 1.0)
        upper = np.clip(origin + radius, 0.0, 1.0)

        def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
            x = torch.from_numpy(flat).to(device=device, dtype=torch.float32).view(shape)
            value, grad = track.evaluate(x)
            return value, grad.double().cpu().numpy().ravel()

        try:
            # SciPy's BLAS threads would spin between calls and starve torch's (2x slower
            # VGG passes measured on 2 cores); its vector work is tiny next to a VGG pass.
            with threadpool_limits(1, user_api="blas"):
                scipy.optimize.minimize(
                    fun,
                    origin,
                    jac=True,
                    method="L-BFGS-B",
                    bounds=scipy.optimize.Bounds(lower, upper),
                    options={
                        "maxcor": LBFGS_MEMORY,
                        "maxfun": track.budget + 1,
                        "maxiter": track.budget + 1,
                        "ftol": 0.0,
                        "gtol": 0.0,
                        "maxls": 20,
                    },
                )
            nonfinite = False
        except _Stop:
            break
        except _NonFinite:
            nonfinite = True
        if track.best is None:  # only non-finite costs so far (the first one raised already)
            break
        progressed = track.best_cost < before * (1 - 1e-9)
        if nonfinite:
            radius *= 0.1
        elif progressed:
            radius = min(1.0, radius * 10)
        idle = 0 if progressed else idle + 1
        if idle > MAX_IDLE_RESTARTS or radius < 1e-6:
            break
        start = track.best
    return track.result()


def minimise_adam(
    objective: Objective,
    x0: torch.Tensor,
    steps: int,
    learning_rate: float,
    on_evaluation: EvaluationFn | None = None,
    should_stop: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Adam on x, clamped to [0, 1] after each step; the best x back.

    A non-finite or exploding cost (ADAM_EXPLODED times the best) puts x back to the best
    image, drops Adam's moments and halves the step.
    """
    track = _Tracker(objective, steps, on_evaluation, should_stop)
    x = x0.detach().clamp(0.0, 1.0).clone()
    lr = learning_rate
    opt = torch.optim.Adam([x], lr=lr)
    while True:
        try:
            value, grad = track.evaluate(x)
            if value * track.scale > ADAM_EXPLODED * track.best_cost:
                raise _Exploded
        except _Stop:
            break
        except (_NonFinite, _Exploded):
            assert track.best is not None
            lr *= 0.5
            x = track.best.clone()
            opt = torch.optim.Adam([x], lr=lr)
            continue
        x.grad = grad
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
    return track.result()
