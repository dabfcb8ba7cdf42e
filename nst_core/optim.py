"""Guarded minimisation of a pixel cost: L-BFGS inside the pixel box, or Adam.

Why this shape: the pixels live in [0, 1], so the optimiser works inside that box; no step can
leave the colour range, so the activations, and with them the cost, stay bounded. The cost is
divided by its value at the start, so the problem has the same scale at every working size and
style strength, and a line search, not a fixed learning rate, picks each step. Around that sits
a guard: the budget counts cost evaluations exactly (one VGG-19 forward and backward each: the
unit of time), the best image seen is what comes back, a non-finite cost rejects the step,
drops the curvature memory and shrinks the box around the best image (a trust region), and a
run whose cost did not fall raises `OptimisationFailed` instead of returning an unchanged image.
`should_stop` may end a run early: returning True stops it like a spent budget (a deadline),
raising propagates (a cancel).

Two L-BFGS backends sit inside that guard. "scipy": SciPy's L-BFGS-B (Cauchy point, subspace
minimisation, More-Thuente line search) in float64 numpy on the CPU; every evaluation copies
the image to the host and back, and its own work costs ~0.1-0.4 s per evaluation at 512x512.
"torch": a projected L-BFGS in float32 torch ops on x's device; nothing leaves it but a few
scalars per step. Each step applies the L-BFGS inverse-Hessian estimate (_Memory) to the
gradient of the free variables (those not on a bound with the gradient pushing outward): a
principal submatrix of a positive definite matrix, so the direction always descends. The step
then backtracks (safeguarded cubic interpolation) along the projected path clamp(x + t d)
until Armijo's condition holds; a pair without positive curvature is not kept.
torch.optim.LBFGS was not used: its strong Wolfe search assumes a smooth line, and a box done
by clamping its steps or by a change of variables would spoil its curvature pairs or change
the problem. Same budget, same restarts and guard, equal quality on the engine's costs.
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
#: Called before every evaluation: True ends the run like a spent budget; raising propagates.
StopFn = Callable[[], "bool | None"]

#: The L-BFGS backends, and "auto": "torch" off the CPU, CPU_BACKEND on it.
BACKENDS = ("scipy", "torch", "auto")
#: The backend "auto" picks on the CPU. Measured on the 2-core CPU: its own work per
#: evaluation at 3x512x512 100 ms (torch) against 390 ms (scipy); the engine's astronaut x
#: swirls at 256 px, 100 iterations, bf16: the same style and content figures within 0.5 %
#: and the same final cost J (0.6977 against 0.6975).
CPU_BACKEND = "torch"

#: A run must cut the cost by at least this fraction of its starting value, or it failed.
MIN_PROGRESS = 1e-4
#: A run stopped by should_stop without a single improving step fails only after this many.
STOPPED_JUDGED_AFTER = 10
#: L-BFGS curvature pairs kept (memory: 2 x this x the pixel count; float64 for scipy,
#: float32 for torch).
LBFGS_MEMORY = 10
#: Restarts (fresh memory) that may follow each other without the cost falling.
MAX_IDLE_RESTARTS = 2
#: Threads for the torch backend's own vector work on the CPU (its evaluations get them all):
#: its memory-bound element-wise passes gain little from more, and on a CPU shared with other
#: work every parallel pass waits for its slowest thread (measured at 3x512x512 with the 2
#: cores shared: 122 ms of overhead per evaluation with 1 thread, 372 ms with 2).
CPU_OPTIMISER_THREADS = 1
#: Trial points one line search may evaluate before it gives up.
MAX_LINE_SEARCH = 20
#: How far the first step of a run (no curvature memory) moves the pixel it moves most, on
#: the 0..1 scale (the torch backend). A unit step along the normalised cost's gradient moved
#: it 0.001-0.005 at the engine's scales (measured: astronaut x swirls), so each scale's first
#: evaluation was nearly wasted; L-BFGS-B scales its first step by the gradient the same way.
FIRST_STEP = 0.05
#: Armijo's sufficient-decrease constant (the torch backend).
ARMIJO = 1e-4
#: Adam: a step whose cost exceeds this many times the best so far is rejected like a
#: non-finite one (a fixed step size can overshoot by far when the optimum is near).
ADAM_EXPLODED = 2.0


class _Stop(Exception):
    """Raised inside the cost function to leave the optimiser's loop (budget spent, or a
    graceful stop)."""


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
    """Counts evaluations, keeps the best image, and reports; shared by every method."""

    def __init__(
        self,
        objective: Objective,
        steps: int,
        on_evaluation: EvaluationFn | None,
        should_stop: StopFn | None,
        keep_gradient: bool = False,
    ) -> None:
        self.objective, self.budget = objective, steps + 1  # + the evaluation at the start
        self.on_evaluation, self.should_stop = on_evaluation, should_stop
        self.keep_gradient = keep_gradient
        self.count = 0
        self.scale = 1.0  # the starting cost; every cost the optimiser sees is divided by it
        self.best_cost = math.inf
        self.best: torch.Tensor | None = None
        #: The (divided) gradient at `best`, when keep_gradient.
        self.best_gradient: torch.Tensor | None = None
        self.start_cost = math.inf
        self.stopped = False  # should_stop returned True

    def evaluate(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Cost (divided by the starting cost) and its gradient at x; counts and reports.

        Raises _Stop once the budget is spent or should_stop returned True, _NonFinite for a
        non-finite cost or gradient.
        """
        if self.count >= self.budget:
            raise _Stop
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
            raise _Stop
        with torch.enable_grad():  # the torch backend's vector work runs without a graph
            x = x.detach().requires_grad_(True)
            cost = self.objective(x)
            (grad,) = torch.autograd.grad(cost, x)
        # One transfer to the host for both (a device sync each otherwise).
        value, finite_grad = torch.stack(
            [cost.detach().float().reshape(()), torch.isfinite(grad).all().float()]
        ).tolist()
        self.count += 1
        finite = math.isfinite(value) and finite_grad == 1.0
        if self.count == 1:
            self.start_cost = value
            if not finite:
                raise OptimisationFailed(
                    f"the cost is not finite at the starting image ({value}); lower the weights"
                )
            self.scale = value if value > 0 else 1.0
        grad = grad / self.scale
        if finite and value < self.best_cost:
            self.best_cost, self.best = value, x.detach().clone()
            if self.keep_gradient:
                self.best_gradient = grad
        if self.on_evaluation is not None and self.count > 1:
            assert self.best is not None
            self.on_evaluation(Evaluation(self.count - 1, value, self.best, self.best_cost))
        if not finite:
            raise _NonFinite
        return value / self.scale, grad

    def result(self, start: torch.Tensor) -> torch.Tensor:
        """The best image seen (`start` when should_stop ended the run before the first
        evaluation); fails if the cost did not fall enough.

        A run that should_stop ended is judged only by whether any step improved, and only
        once it had STOPPED_JUDGED_AFTER steps: a deadline is not a failure.
        """
        if self.best is None:
            assert self.stopped
            return start
        steps = self.count - 1
        if self.stopped:
            improved = self.best_cost < self.start_cost or self.start_cost <= 0
            if improved or steps < STOPPED_JUDGED_AFTER:
                return self.best
            raise OptimisationFailed(
                f"the cost did not fall (from {self.start_cost:.6g} in {steps} steps before "
                "the stop)"
            )
        if self.start_cost > 0 and self.budget > 1:  # steps were asked for
            drop = (self.start_cost - self.best_cost) / self.start_cost
            if drop < MIN_PROGRESS:
                raise OptimisationFailed(
                    f"the cost did not fall (from {self.start_cost:.6g} to {self.best_cost:.6g} "
                    f"in {self.count} evaluations)"
                )
        return self.best


def resolve_backend(backend: str, device: torch.device) -> str:
    """The L-BFGS backend that runs: `backend`, or for "auto" "torch" on any device but the
    CPU (SciPy would copy every evaluation to the host) and CPU_BACKEND on the CPU."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend != "auto":
        return backend
    return CPU_BACKEND if device.type == "cpu" else "torch"


def minimise_lbfgs(
    objective: Objective,
    x0: torch.Tensor,
    steps: int,
    on_evaluation: EvaluationFn | None = None,
    should_stop: StopFn | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Minimise objective over x in [0, 1] in `steps` evaluations after the start; best x back.

    `backend`: "scipy", "torch" or "auto" (resolve_backend). A run stops early when its line
    search can go no further even with fresh memory, or no descent is left; it then restarts
    from the best image with fresh memory while it keeps making progress. After a non-finite
    trial the box around the best image shrinks tenfold (and grows back after a successful
    restart). should_stop returning True ends it like a spent budget (Tracker.result).
    """
    chosen = resolve_backend(backend, x0.device)
    track = _Tracker(objective, steps, on_evaluation, should_stop, chosen == "torch")
    run = _run_torch if chosen == "torch" else _run_scipy
    radius = 1.0  # half-width of the box around the best image; 1 = the whole pixel range
    idle = 0
    first = x0.detach().float().clamp(0.0, 1.0)
    start = first
    while track.count < track.budget:
        before = track.best_cost
        lower = (start - radius).clamp_(0.0, 1.0)
        upper = (start + radius).clamp_(0.0, 1.0)
        try:
            run(track, start, lower, upper)
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
    return track.result(first)


def _run_scipy(
    track: _Tracker, start: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
) -> None:
    """One L-BFGS-B run from start inside [lower, upper] (SciPy, float64 on the CPU)."""
    shape, device = start.shape, start.device

    def numpy(t: torch.Tensor) -> np.ndarray:
        return t.double().cpu().numpy().ravel()

    def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
        x = torch.from_numpy(flat).to(device=device, dtype=torch.float32).view(shape)
        value, grad = track.evaluate(x)
        return value, numpy(grad)

    # SciPy's BLAS threads would spin between calls and starve torch's (2x slower VGG
    # passes measured on 2 cores); its vector work is tiny next to a VGG pass.
    with threadpool_limits(1, user_api="blas"):
        scipy.optimize.minimize(
            fun,
            numpy(start),
            jac=True,
            method="L-BFGS-B",
            bounds=scipy.optimize.Bounds(numpy(lower), numpy(upper)),
            options={
                "maxcor": LBFGS_MEMORY,
                "maxfun": track.budget + 1,
                "maxiter": track.budget + 1,
                "ftol": 0.0,
                "gtol": 0.0,
                "maxls": MAX_LINE_SEARCH,
            },
        )


class _Memory:
    """The last LBFGS_MEMORY curvature pairs (s, y) in one (2m, n) buffer, s rows then y rows,
    used as a ring; the inverse-Hessian estimate applied in its compact form (Byrd, Nocedal and
    Schnabel 1994, with H0 = gamma I, gamma = s.y / y.y of the newest pair). The same product
    as the two-loop recursion, in two matrix-vector products over the buffer instead of 4m
    vector operations, and no host sync: it suits a GPU's kernel launches and a CPU's memory
    bandwidth. The m x m matrices S'Y and Y'Y are kept up to date in float64, slot by slot."""

    def __init__(self, n: int, device: torch.device, size: int = LBFGS_MEMORY) -> None:
        self.size, self.count, self.next = size, 0, 0
        self.buffer = torch.zeros((2 * size, n), device=device)
        self.sy = torch.zeros((size, size), dtype=torch.float64, device=device)  # s_i . y_j
        self.yy = torch.zeros((size, size), dtype=torch.float64, device=device)  # y_i . y_j

    def __len__(self) -> int:
        return self.count

    def clear(self) -> None:
        self.count, self.next = 0, 0

    def add(self, s: torch.Tensor, y: torch.Tensor) -> None:
        """Store a pair (the oldest goes when full); its curvature s.y must be positive."""
        m, j = self.size, self.next
        self.buffer[j].copy_(s)
        self.buffer[m + j].copy_(y)
        # Matrix-vector products (a matrix product could run in TF32 on a GPU): S'y and Y'y
        # in one pass, Y's in half of one.
        with_y = (self.buffer @ y).double()
        self.sy[:, j] = with_y[:m]
        self.sy[j, :] = (self.buffer[m:] @ s).double()
        self.yy[:, j] = with_y[m:]
        self.yy[j, :] = with_y[m:]
        self.next = (j + 1) % m
        self.count = min(self.count + 1, m)

    def apply(self, q: torch.Tensor) -> torch.Tensor:
        """The inverse-Hessian estimate times q (q itself with no pairs)."""
        if not self.count:
            return q.clone()
        m, k = self.size, self.count
        oldest, newest = (self.next - k) % m, (self.next - 1) % m

        def ordered(v: torch.Tensor) -> torch.Tensor:  # slot order -> oldest first, k long
            return torch.roll(v, -oldest, dims=0)[:k]

        v = (self.buffer @ q).double()
        a, b = ordered(v[:m]), ordered(v[m:])
        sy = ordered(ordered(self.sy).T).T  # rows and columns oldest first
        yy = ordered(ordered(self.yy).T).T
        gamma = self.sy[newest, newest] / self.yy[newest, newest]
        r = torch.triu(sy)  # R: s_i . y_j for i <= j
        w = torch.linalg.solve_triangular(r, a[:, None], upper=True)  # R^-1 S'q
        inner = torch.diagonal(sy)[:, None] * w + gamma * (yy @ w) - gamma * b[:, None]
        top = torch.linalg.solve_triangular(r.T, inner, upper=False)[:, 0]
        coef = torch.zeros(2 * m, dtype=torch.float64, device=q.device)
        coef[:k], coef[m : m + k] = top, -gamma * w[:, 0]
        coef = torch.cat([torch.roll(coef[:m], oldest), torch.roll(coef[m:], oldest)])
        return torch.addmv(q * gamma.float(), self.buffer.T, coef.float())


def _backtrack(t: float, f0: float, slope0: float, f_t: float, slope_t: float) -> float:
    """The next, shorter trial step: the minimum of the cubic through the costs and slopes at
    0 and t (the quadratic through f0, slope0 and f_t where the cubic has none), kept within
    [0.1 t, 0.5 t]."""
    d1 = slope0 + slope_t - 3 * (f_t - f0) / t
    disc = d1 * d1 - slope0 * slope_t
    if math.isfinite(disc) and disc >= 0:
        d2 = math.sqrt(disc)
        denom = slope_t - slope0 + 2 * d2
        new = t - t * (slope_t + d2 - d1) / denom if denom != 0 else math.nan
    else:
        curve = f_t - f0 - slope0 * t
        new = -slope0 * t * t / (2 * curve) if curve > 0 else math.nan
    if not math.isfinite(new):
        return t / 2
    return min(max(new, 0.1 * t), 0.5 * t)


def _run_torch(
    track: _Tracker, start: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
) -> None:
    """One projected L-BFGS run from start inside [lower, upper], on start's device (on the
    CPU its own vector work in CPU_OPTIMISER_THREADS threads, the evaluations in all)."""
    threads = torch.get_num_threads()
    if start.device.type != "cpu" or threads <= CPU_OPTIMISER_THREADS:
        _projected_lbfgs(track, start, lower, upper, track.evaluate)
        return

    def evaluate(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        torch.set_num_threads(threads)
        try:
            return track.evaluate(x)
        finally:
            torch.set_num_threads(CPU_OPTIMISER_THREADS)

    torch.set_num_threads(CPU_OPTIMISER_THREADS)
    try:
        _projected_lbfgs(track, start, lower, upper, evaluate)
    finally:
        torch.set_num_threads(threads)


def _projected_lbfgs(
    track: _Tracker,
    start: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    evaluate: Callable[[torch.Tensor], tuple[float, torch.Tensor]],
) -> None:
    """_run_torch's loop; returns when no projected descent is left, or a line search fails
    with empty memory."""
    shape = start.shape
    lo, hi = lower.reshape(-1), upper.reshape(-1)
    x = start.reshape(-1).clone()
    if track.best_gradient is not None and track.best is not None and start is track.best:
        f, g = track.best_cost / track.scale, track.best_gradient.reshape(-1)
    else:
        f, grad = evaluate(x.view(shape))
        g = grad.reshape(-1)
    memory = _Memory(x.numel(), x.device)
    eps = torch.finfo(x.dtype).eps
    with torch.no_grad():
        while True:
            at_lo, at_hi = x <= lo, x >= hi
            # Free: not on a bound with the gradient pushing outward.
            held = (at_lo & (g > 0)) | (at_hi & (g < 0))
            d = memory.apply(torch.where(held, 0.0, g)).neg_()
            # Also hold what the direction would push straight out of the box.
            d = torch.where(held | (at_lo & (d < 0)) | (at_hi & (d > 0)), 0.0, d)
            slope = float(torch.dot(g, d))  # the derivative along the path at 0
            if not slope < 0:
                if memory:  # rounding: start afresh from steepest descent
                    memory.clear()
                    continue
                return  # no projected descent left: a stationary point of the box
            # Without curvature pairs the direction is the gradient, whose size means nothing
            # (the cost is normalised): its first step moves the most-moved pixel FIRST_STEP.
            t = 1.0 if memory else FIRST_STEP / max(float(d.abs().max()), 1e-12)
            for _ in range(MAX_LINE_SEARCH):
                trial = torch.add(x, d, alpha=t).clamp_(lo, hi)
                step = trial - x
                linear = torch.dot(g, step)
                f_t, grad = evaluate(trial.view(shape))
                if f_t < f and f_t <= f + ARMIJO * float(linear):
                    break
                # The slope at t along the path: the coordinates not clipped move with t.
                moving = torch.where((trial > lo) & (trial < hi), d, 0.0)
                t = _backtrack(t, f, slope, f_t, float(torch.dot(grad.reshape(-1), moving)))
            else:
                if memory:  # like L-BFGS-B: one more try with fresh memory, then give up
                    memory.clear()
                    continue
                return
            g_t = grad.reshape(-1)
            y = g_t - g
            sy, yy = torch.stack([torch.dot(step, y), torch.dot(y, y)]).tolist()
            if sy > eps * yy:  # keep the pair only while its curvature is positive
                memory.add(step, y)
            x, f, g = trial, f_t, g_t


def minimise_adam(
    objective: Objective,
    x0: torch.Tensor,
    steps: int,
    learning_rate: float,
    on_evaluation: EvaluationFn | None = None,
    should_stop: StopFn | None = None,
) -> torch.Tensor:
    """Adam on x, clamped to [0, 1] after each step; the best x back.

    A non-finite or exploding cost (ADAM_EXPLODED times the best) puts x back to the best
    image, drops Adam's moments and halves the step.
    """
    track = _Tracker(objective, steps, on_evaluation, should_stop)
    first = x0.detach().clamp(0.0, 1.0)
    x = first.clone()
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
    return track.result(first)
