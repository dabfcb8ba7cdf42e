"""What a job will do and how long it will take, known before anything runs.

The planner turns what the artist asks for (a quality preset or a time budget) into scales and
iterations for this layer on this device (its measured speed); the sizes of every image, tile
and style piece follow from the plan. Pure Python (no torch), so the daemon can check a
request against its limits on the socket thread, before a byte is allocated for it; the
engine runs exactly this plan, so the check, the estimate and the run cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from nst_client.params import TILE_OVERLAP, ParamError, StyleParams

Size = tuple[int, int]  # (height, width)


class LimitError(ParamError):
    """A job that would exceed the daemon's limits; the message names the parameter."""


def fit(height: int, width: int, long_side: int) -> Size:
    """(h, w) scaled so the long side is long_side, aspect kept."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def scale_sizes(height: int, width: int, size: int | str, min_scale: int) -> list[Size]:
    """(h, w) of each scale, coarse to fine: halving from the final size down to min_scale."""
    long_side = max(height, width)
    final = long_side if size == "full" else min(int(size), long_side)
    sides = [final]
    while sides[-1] / 2 >= min_scale:
        sides.append(round(sides[-1] / 2))
    return [fit(height, width, s) for s in reversed(sides)]


def tile_spans(length: int, tile: int, overlap: int = TILE_OVERLAP) -> list[tuple[int, int]]:
    """Start/stop of overlapping tiles covering 0..length."""
    if length <= tile:
        return [(0, length)]
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [(round(i * step), round(i * step) + tile) for i in range(count)]


#: VGG-19's largest stride (pool5 sees the image at 1/32): style pieces start on it.
VGG_STRIDE = 32


Piece = tuple[int, int, int, int]


def style_pieces(length: int, tile: int, margin: int = TILE_OVERLAP) -> list[Piece]:
    """(window start, kept start, kept stop, window stop) of the pieces a style is read in.

    A Gram matrix is a sum over pixels, so pieces add up; each is read with `margin` pixels
    of context on either side (window at most `tile`), and only its kept part counts, so the
    features there are nearly those of one whole pass. Kept starts and windows fall on
    multiples of VGG_STRIDE, where every layer's pixels map back exactly.
    """
    if length <= tile:
        return [(0, 0, length, length)]
    step = (tile - 2 * margin) // VGG_STRIDE * VGG_STRIDE
    pieces: list[Piece] = []
    for start in range(0, length, step):
        stop = min(start + step, length)
        pieces.append((max(0, start - margin), start, stop, min(length, stop + margin)))
    return pieces


def style_size(style: Size, working: Size, style_scale: float) -> Size:
    """A style image's size when matched against a working image of size `working`."""
    side = max(1, round(max(working) * style_scale))
    return fit(style[0], style[1], side)


# --- the planner ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Speed:
    """What one evaluation (a VGG-19 forward + backward and an optimiser step) takes on a
    device: a fixed part plus a part per megapixel (nst_core.calibrate measures both)."""

    s_per_mpix: float
    s_fixed: float = 0.0

    def evaluation_s(self, pixels: int) -> float:
        return self.s_fixed + self.s_per_mpix * pixels / 1e6

    def scaled(self, factor: float) -> Speed:
        """This speed with every evaluation taking `factor` times as long."""
        return Speed(self.s_per_mpix * factor, self.s_fixed * factor)


#: What the planner assumes before a device is measured (this project's 2-core CPU, bf16).
ASSUMED_SPEED = Speed(s_per_mpix=4.0, s_fixed=0.03)


@dataclass(frozen=True)
class Preset:
    """An artist's quality choice as the planner reads it."""

    schedule: tuple[int, ...]
    """Iterations at the last scale, the one before it, ...; the last number repeats for the
    coarser ones. Most work where it is cheap: every scale starts from the one before, so
    the last one only adds the finest texture (style-transfer-pytorch's shape)."""
    side: int
    """The last scale's long side at least (the layer's own when smaller)."""
    allowance_s: float
    """Time the preset may spend above `side`, toward the layer's own size, on this device."""


PRESETS = {
    "draft": Preset(schedule=(12, 20, 40), side=384, allowance_s=15.0),
    # The palette start and the detail put back between scales save the passes that used to
    # rebuild them (1024x768 astronaut x swirls, style / content: 80, 80, 150 gave 0.048 /
    # 0.549; 60, 30, 60 gives 0.048 / 0.547). The last scale's steps are what pull the content
    # back (45 of them: 0.575), fewer coarse steps what keeps it from drifting (40, 50, 100
    # without the detail: 0.605). docs/benchmarks.md has the figures on three pairs.
    "normal": Preset(schedule=(60, 30, 60), side=512, allowance_s=60.0),
    "final": Preset(schedule=(150, 150, 250), side=512, allowance_s=900.0),
}
#: A time budget spends its time with normal's shape, stretched or shrunk by at most these.
BUDGET_STRETCH = (0.6, 8.0)
#: Evaluations' worth of time each scale (and tile) costs besides its iterations: the first
#: evaluation, the painting's and the photo's targets at the scale's size (forward passes)
#: and the scale's start image. Measured on the 2-core CPU: a draft's two scales spent 0.6 s
#: on targets outside their 34 evaluations, about one more evaluation each.
SCALE_OVERHEAD_EVALUATIONS = 3.0
#: Seconds per megapixel of the layer that the finish at its size and handing the result over
#: take (the upscale, the detail put back, the conversion to the layer's format, the file or
#: the reply): CPU work whatever the device. Measured on the 2-core CPU: the finish 0.03 s at
#: 1024x768 and 0.1 s at 2048x1536, the command's PNG written in 0.38 s per megapixel.
FINISH_S_PER_MPIX = 0.4


@dataclass(frozen=True)
class ScaleStep:
    """One scale of a plan: its size, iterations per tile, and tiles."""

    size: Size
    iterations: int
    tiles: int
    tile_pixels: int

    def predicted_s(self, speed: Speed) -> float:
        evaluations = self.iterations + SCALE_OVERHEAD_EVALUATIONS
        return self.tiles * evaluations * speed.evaluation_s(self.tile_pixels)


@dataclass(frozen=True)
class Plan:
    """The scales a job runs, coarse to fine, and what they are expected to take."""

    steps: tuple[ScaleStep, ...]
    layer: Size
    speed: Speed
    why: str
    """How the plan was chosen, in words (the preset, the budget or the fixed iterations)."""
    budget_s: float | None = None
    #: A budget longer than the layer can use (its own size, BUDGET_STRETCH's most
    #: iterations): the job ends early rather than idle.
    capped: bool = False

    @property
    def finish_s(self) -> float:
        """The finish at the layer's size, after the last scale."""
        return finish_s(self.layer)

    @property
    def predicted_s(self) -> float:
        return sum(step.predicted_s(self.speed) for step in self.steps) + self.finish_s

    @property
    def iterations(self) -> int:
        """Evaluations counted in progress: iterations x tiles over all scales."""
        return sum(step.iterations * step.tiles for step in self.steps)

    @property
    def final(self) -> Size:
        return self.steps[-1].size

    @property
    def full_size(self) -> bool:
        """Whether the last scale is the layer's own size (no upscale at the end)."""
        return self.final == self.layer

    def describe(self) -> str:
        """One line for logs and the CLI: the scales, iterations and the expected time."""
        steps = ", ".join(
            f"{w}x{h}:{s.iterations}" + (f"x{s.tiles} tiles" if s.tiles > 1 else "")
            for s in self.steps
            for h, w in [s.size]
        )
        end = "the layer's size" if self.full_size else "then upscaled to the layer"
        return f"{self.why}: {steps} ({end}), about {self.predicted_s:.0f} s"


def _step(size: Size, iterations: int, tile_size: int) -> ScaleStep:
    rows, cols = tile_spans(size[0], tile_size), tile_spans(size[1], tile_size)
    pixels = min(size[0], tile_size) * min(size[1], tile_size)
    return ScaleStep(size, iterations, len(rows) * len(cols), pixels)


def _steps(
    layer: Size, side: int, schedule: Sequence[int], stretch: float, p: StyleParams
) -> tuple[ScaleStep, ...]:
    sizes = scale_sizes(*layer, side, p.min_scale)
    steps = []
    for k, size in enumerate(reversed(sizes)):  # k = 0: the last scale
        base = schedule[min(k, len(schedule) - 1)]
        steps.append(_step(size, max(1, round(base * stretch)), p.tile_size))
    return tuple(reversed(steps))


def _sides(layer: Size, smallest: int) -> list[int]:
    """Candidate long sides of the last scale, largest first: the layer's own, then steps of
    sqrt(2) (half the pixels each) down to `smallest`."""
    long_side = max(layer)
    sides = [long_side]
    side = float(smallest)
    below = []
    while side < long_side:
        below.append(round(side))
        side *= math.sqrt(2)
    return sides + sorted(set(below), reverse=True)


def make_plan(layer: Size, params: StyleParams, speed: Speed | None = None) -> Plan:
    """The plan for a layer of `layer` (h, w) on a device of `speed` (ASSUMED_SPEED if None).

    - fixed iterations (scripts): that many at every scale, at `size` (512 if not given);
    - a time budget: the largest last scale whose normal-shaped schedule fits, stretched or
      shrunk (BUDGET_STRETCH) to fill the budget;
    - a preset: its schedule at its side, grown toward the layer's own size while the
      prediction stays within the preset's allowance on this device.
    An explicit `size` is kept in every case.
    """
    speed = speed or ASSUMED_SPEED
    p = params
    long_side = max(layer)
    forced = None if p.size is None else long_side if p.size == "full" else int(p.size)
    if forced is not None:
        forced = min(forced, long_side)
    if p.iterations is not None:
        side = forced if forced is not None else min(512, long_side)
        steps = _steps(layer, side, (p.iterations,), 1.0, p)
        return Plan(steps, layer, speed, f"{p.iterations} iterations per scale")
    if p.time_budget is not None:
        return _fit_budget(layer, p, speed, p.time_budget, forced)
    preset = PRESETS[p.quality]
    if forced is not None:
        steps = _steps(layer, forced, preset.schedule, 1.0, p)
        return Plan(steps, layer, speed, f"{p.quality} at {forced} px")
    base = min(preset.side, long_side)
    best = _steps(layer, base, preset.schedule, 1.0, p)
    for side in _sides(layer, base):
        if side <= base:
            break
        steps = _steps(layer, side, preset.schedule, 1.0, p)
        if Plan(steps, layer, speed, "").predicted_s <= preset.allowance_s:
            best = steps
            break
    return Plan(best, layer, speed, p.quality)


def _fit_budget(
    layer: Size, p: StyleParams, speed: Speed, budget: float, forced: int | None
) -> Plan:
    schedule = PRESETS["normal"].schedule
    sides = [forced] if forced is not None else _sides(layer, min(p.min_scale, max(layer)))
    low, high = BUDGET_STRETCH
    why = f"time budget {budget:g} s"
    for i, side in enumerate(sides):
        unit = _steps(layer, side, schedule, 1.0, p)
        stretch = _stretch_for(unit, speed, budget - finish_s(layer))
        if stretch >= low or i == len(sides) - 1:
            steps = _steps(layer, side, schedule, min(max(stretch, 0.0), high), p)
            return Plan(steps, layer, speed, why, budget_s=budget, capped=stretch > high)
    raise AssertionError("unreachable: the last side always returns")


def finish_s(layer: Size) -> float:
    """Plan.finish_s for a layer of this size."""
    return FINISH_S_PER_MPIX * layer[0] * layer[1] / 1e6


def _stretch_for(unit: Sequence[ScaleStep], speed: Speed, budget: float) -> float:
    """The factor on a unit schedule's iterations that makes it take `budget` seconds."""
    overhead = sum(
        s.tiles * SCALE_OVERHEAD_EVALUATIONS * speed.evaluation_s(s.tile_pixels) for s in unit
    )
    work = sum(s.tiles * s.iterations * speed.evaluation_s(s.tile_pixels) for s in unit)
    return (budget - overhead) / work if work > 0 else BUDGET_STRETCH[1]


def refit(plan: Plan, done_steps: int, elapsed_s: float, observed: Speed) -> Plan:
    """The plan with the iterations of the steps not yet run fitted to the budget left, at
    the speed observed so far (a budget is kept even when the device runs slower or faster
    than measured). Plans without a budget come back unchanged."""
    if plan.budget_s is None or done_steps >= len(plan.steps):
        return plan
    rest = plan.steps[done_steps:]
    stretch = _stretch_for(rest, observed, plan.budget_s - elapsed_s - plan.finish_s)
    stretch = min(max(stretch, 0.0), BUDGET_STRETCH[1])
    fitted = tuple(replace(s, iterations=max(1, round(s.iterations * stretch))) for s in rest)
    return replace(plan, steps=plan.steps[:done_steps] + fitted, speed=observed)


def check_limits(
    content: Size, styles: Sequence[Size], params: StyleParams, max_pixels: int, max_tile: int
) -> None:
    """LimitError unless every image the job makes stays within max_pixels and every VGG pass
    within a max_tile x max_tile tile (the memory of a pass grows with its pixels)."""
    if params.tile_size > max_tile:
        raise LimitError(
            "tile_size",
            f"{params.tile_size} is over this daemon's limit of {max_tile} (--max-tile-size)",
        )
    # The planner may grow an unsized job up to the layer's own size on a fast device.
    final = scale_sizes(*content, params.size or "full", params.min_scale)[-1]
    for i, style in enumerate(styles):
        h, w = style_size(style, final, params.style_scale)
        if h * w > max_pixels:
            raise LimitError(
                "style_scale",
                f"{params.style_scale:g} makes styles[{i}] {w}x{h} = {h * w} pixels at the "
                f"working size, over this daemon's limit of {max_pixels} (--max-pixels); "
                f"lower style_scale or size",
            )
