"""The stylize loop: coarse to fine, L-BFGS or Adam on the pixels, tiles past a size bound.

`stylize` takes and returns editor layers (H x W x C arrays, u8/u16/f32, grey or RGB, with or
without alpha); alpha is set aside and handed back bit for bit. The costs are those of
`nst_core.costs`; style Gram targets are computed once per (style, scale, settings) and may be
shared across calls through a `StyleTargetCache` (the daemon keeps one).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nst_client.layouts import wire_dtype
from nst_client.params import TILE_OVERLAP, StyleParams, make_params
from nst_client.progress import Progress

from . import calibrate, costs, detail, optim, pixels, plan
from .colour import luminance_only, rgb_to_yiq, yiq_to_rgb
from .errors import OptimisationFailed as OptimisationFailed  # re-exported for callers
from .errors import StylizeCancelled as StylizeCancelled
from .plan import Piece, Plan, make_plan, refit, style_pieces, style_size, tile_spans
from .targets import StyleTargetCache
from .vgg import VGGFeatures, build, layer_stride

log = logging.getLogger("nst_core")
ProgressFn = Callable[[Progress], None]
#: Seconds of predicted work the ETA trusts the plan for before the measurement takes over.
ETA_PRIOR_S = 5.0
#: A time-budgeted job ends its last scale at this share of the budget (the finish to full
#: size and the hand-back take the rest).
BUDGET_STOP = 0.97
CancelFn = Callable[[], bool]


@dataclass
class StyleImage:
    """A style image with its blend weight."""

    pixels: np.ndarray
    weight: float = 1.0


# --- devices and models --------------------------------------------------------------------


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an unavailable choice is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for but no CUDA GPU is available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device: mps was asked for but is not available")
    return device


def resolve_precision(precision: str, model: VGGFeatures) -> torch.dtype | None:
    """The autocast dtype for the VGG passes, or None for plain fp32.

    'auto' is what calibration measured fastest within tolerance on this model's device
    (nst_core.calibrate); a named precision is used as asked (fp32 only on mps).
    """
    if precision == "auto":
        return calibrate.profile(model).autocast
    if precision == "fp32" or model.device.type == "mps":
        return None
    return calibrate.DTYPES[precision]


_MODELS: dict[tuple[str, str], VGGFeatures] = {}
_MODELS_LOCK = threading.Lock()


def load_model(
    weights: str = "caffe", device: str = "auto", allow_download: bool = False
) -> VGGFeatures:
    """A warm VGG-19 for (weights, device), loaded once per process (any pooling)."""
    dev = resolve_device(device)
    key = (weights, str(dev))
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            if dev.type == "cuda":
                torch.backends.cudnn.benchmark = False
                torch.backends.cudnn.deterministic = True  # same seed, same output
            model = build(weights, dev, allow_download)
            _MODELS[key] = model
        return model


# --- geometry ------------------------------------------------------------------------------


def resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == hw:
        return x
    down = hw[0] < x.shape[-2] or hw[1] < x.shape[-1]
    return F.interpolate(
        x, size=hw, mode="bilinear" if down else "bicubic", align_corners=False, antialias=down
    )


def _ramp(n: int, start: int, stop: int, length: int, overlap: int) -> torch.Tensor:
    """1-D blend weights of a tile: linear ramps into the overlaps, 1 inside."""
    w = torch.ones(n)
    ramp = torch.linspace(0.0, 1.0, overlap + 2)[1:-1]
    if start > 0:
        w[:overlap] = ramp[: min(overlap, n)]
    if stop < length:
        w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0)[: min(overlap, n)])
    return w


# --- the run -------------------------------------------------------------------------------


def _as_styles(styles: Sequence[Any]) -> list[StyleImage]:
    out = []
    for s in styles:
        if isinstance(s, StyleImage):
            out.append(s)
        elif isinstance(s, tuple):
            out.append(StyleImage(s[0], float(s[1])))
        else:
            out.append(StyleImage(s, 1.0))
    if not out:
        raise ValueError("styles: at least one style image is needed")
    total = sum(s.weight for s in out)
    if total <= 0 or any(s.weight < 0 for s in out):
        raise ValueError("styles: blend weights must be >= 0 and not all 0")
    return [StyleImage(s.pixels, s.weight / total) for s in out]


def _check_image(arr: Any, what: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{what}: expected a numpy array, got {type(arr).__name__}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{what}: expected H x W x C with C in 1..4, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{what}: empty image {arr.shape}")
    wire_dtype(arr)  # raises for other dtypes
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(arr.size - np.isfinite(arr).sum())
        raise ValueError(f"{what}: {bad} pixel values are not finite (NaN or infinity)")
    return arr


def _to_tensor(rgb01: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb01.transpose(2, 0, 1)))[None].to(device)


class _Run:
    """State of one stylize call (targets, timing, progress bookkeeping)."""

    def __init__(
        self,
        model: VGGFeatures,
        params: StyleParams,
        progress: ProgressFn | None,
        cancel: CancelFn | None,
        preview_every: int,
        cache: StyleTargetCache | None,
        plan: Plan,
        finish: Callable[[torch.Tensor], Any],
    ):
        self.model, self.p = model, params
        self.progress, self.cancel = progress, cancel
        self.preview_every, self.cache = preview_every, cache
        self.plan = plan
        self.finish = finish
        self.done = 0
        self.start = time.monotonic()
        #: Predicted seconds of the work done so far (the plan's units), for the estimate.
        self.work_done = 0.0
        self.style_layers = [name for name, _ in params.style_layers]
        self.layer_weights = list(params.style_layers)
        self.autocast = resolve_precision(params.precision, model)
        self.channels_last = calibrate.profile(model).channels_last

    @property
    def total(self) -> int:
        return self.plan.iterations

    @property
    def scales(self) -> int:
        return len(self.plan.steps)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def slowness(self) -> float:
        """Observed time over predicted time so far, starting from the prediction's 1: the
        plan's estimate stands at first and gives way to the measurement as work is done."""
        prior = ETA_PRIOR_S
        return (self.elapsed() + prior) / (self.work_done + prior)

    def eta(self) -> float:
        """Seconds left: the plan's remaining prediction at the speed seen so far."""
        if self.done >= self.total:
            return 0.0
        return max(0.0, (self.plan.predicted_s - self.work_done) * self.slowness())

    def over_budget(self, scale: int) -> bool:
        """True once a time-budgeted job has spent this scale's share of its budget: the
        scales up to it take their predicted share (so an overrun at a coarse scale cannot
        eat the last one's time), the last scale ends at BUDGET_STOP of the budget."""
        budget = self.plan.budget_s
        if budget is None:
            return False
        steps = self.plan.steps
        if scale < len(steps):
            times = [s.predicted_s(self.plan.speed) for s in steps]
            share = sum(times[:scale]) / sum(times)
            return self.elapsed() >= budget * BUDGET_STOP * share
        return self.elapsed() >= budget * BUDGET_STOP

    def features(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """VGG-19 features of x in the run's precision and layout, as fp32 (the costs stay in
        fp32). Targets and the image being optimised go through this same path, so an image
        at its targets costs exactly 0 whatever the precision."""
        inp = x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
        with torch.autocast(
            self.model.device.type,
            dtype=self.autocast or torch.float32,
            enabled=self.autocast is not None,
        ):
            feats = self.model(inp, layers, self.p.pooling)
        return {name: a.float() for name, a in feats.items()}

    def style_targets(
        self, styles: list[StyleImage], hw: tuple[int, int], content: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Blended Gram targets: sum_s w_s * G_s / (nH*nW) for each style layer."""
        blended: dict[str, torch.Tensor] = {}
        for style in styles:
            rgb = pixels.split_alpha(style.pixels)[0]
            size = style_size(rgb.shape[:2], hw, self.p.style_scale)
            pieces = [
                (r, c)
                for r in style_pieces(size[0], self.p.tile_size)
                for c in style_pieces(size[1], self.p.tile_size)
            ]
            key_src = hashlib.sha1(np.ascontiguousarray(rgb).tobytes())
            key_src.update(
                repr(
                    (
                        rgb.shape,
                        str(rgb.dtype),
                        size,
                        len(pieces),
                        self.style_layers,
                        self.model.weights_name,
                        self.p.pooling,
                        str(self.model.device),
                        self.p.preserve_colors,
                        str(self.autocast),
                        self.channels_last,
                    )
                ).encode()
            )
            if self.p.preserve_colors:
                # Luminance-only transfer matches the style's luminance to the content's.
                key_src.update(hashlib.sha1(content.cpu().numpy().tobytes()).digest())
            key = key_src.hexdigest()
            targets = self.cache.get(key) if self.cache is not None else None
            if targets is None:
                x = resize(_to_tensor(pixels.to_unit_float(rgb), self.model.device), size)
                if self.p.preserve_colors:
                    x = luminance_only(x, match=content)
                targets = self._gram_targets(x, pieces)
                if self.cache is not None:
                    self.cache.put(key, targets)
            for name, target in targets.items():
                blended[name] = blended.get(name, 0) + style.weight * target
        return blended

    def _gram_targets(
        self, x: torch.Tensor, pieces: list[tuple[Piece, Piece]]
    ) -> dict[str, torch.Tensor]:
        """G / (nH*nW) per style layer, one piece of at most a tile per VGG pass, so a large
        style costs the memory of a tile (plan.style_pieces says how the pieces add up)."""
        with torch.no_grad():
            if len(pieces) == 1:
                feats = self.features(x, self.style_layers)
                return {n: costs.style_target(a) for n, a in feats.items()}
            sums: dict[str, torch.Tensor] = {}
            counts: dict[str, int] = {}
            for (r0, r1, r2, r3), (c0, c1, c2, c3) in pieces:
                window = x[..., r0:r3, c0:c3]
                for n, a in self.features(window, self.style_layers).items():
                    stride = layer_stride(n)
                    kept = a[
                        ...,
                        (r1 - r0) // stride : (r2 - r0) // stride if r2 < r3 else None,
                        (c1 - c0) // stride : (c2 - c0) // stride if c2 < c3 else None,
                    ]
                    count = kept.shape[-2] * kept.shape[-1]
                    sums[n] = sums.get(n, 0) + costs.style_target(kept) * count
                    counts[n] = counts.get(n, 0) + count
            return {n: sums[n] / counts[n] for n in sums}

    def cost_weights(
        self, content_target: torch.Tensor, style_targets: dict[str, torch.Tensor]
    ) -> tuple[float, dict[str, float]]:
        """The factors on Jc and on each layer's style cost.

        With p.normalize_costs, Jc is divided by the content target's own energy (so it is the
        relative change of the content features) and each style layer's cost by its target's
        energy (the seed's raw layer costs differ by 10^5 between relu1_1 and relu4_1, so one
        layer would decide the style alone). The weights then mean shares, and one strength
        gives the same balance on every image. Without it: the seed's costs as they are.
        """
        if not self.p.normalize_costs:
            return 1.0, dict(self.layer_weights)
        zero = torch.zeros_like(content_target)
        energy = float(costs.content_cost(zero, content_target))
        style = {}
        for name, weight in self.layer_weights:
            target = style_targets[name]
            target_energy = float(target.pow(2).sum() / (4 * target.shape[0] ** 2))
            style[name] = weight / target_energy if target_energy > 0 else weight
        return (1.0 / energy if energy > 0 else 1.0), style

    def costs(
        self,
        x: torch.Tensor,
        content_target: torch.Tensor,
        style_targets: dict[str, torch.Tensor],
        weights: tuple[float, dict[str, float]],
    ) -> tuple[torch.Tensor, ...]:
        """J, Jc and Js of x (Jc and Js with the factors of `cost_weights`)."""
        content_factor, layer_factors = weights
        feats = self.features(x, [self.p.content_layer, *self.style_layers])
        j_content = content_factor * costs.content_cost(content_target, feats[self.p.content_layer])
        j_style = torch.stack(
            [
                w * costs.layer_style_cost_from_target(style_targets[n], feats[n])
                for n, w in layer_factors.items()
            ]
        ).sum()
        j = costs.total_cost(j_content, j_style, self.p.content_weight, self.p.beta)
        if self.p.tv_weight:
            # Per pixel value of the 0..1 image, so its weight means the same at every size.
            j = j + self.p.tv_weight * costs.tv_cost(x) / x[0].numel()
        return j, j_content, j_style

    def optimise(
        self,
        x: torch.Tensor,
        content: torch.Tensor,
        style_targets: dict[str, torch.Tensor],
        scale: int,
        snapshot: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """The plan's guarded optimiser steps for this scale on x (1, 3, h, w), reporting each."""
        step = self.plan.steps[scale - 1]
        iterations = step.iterations
        eval_s = self.plan.speed.evaluation_s(step.tile_pixels)
        with torch.no_grad():
            content_target = self.features(content, [self.p.content_layer])[self.p.content_layer]
        weights = self.cost_weights(content_target, style_targets)
        self.work_done += plan.SCALE_OVERHEAD_EVALUATIONS * eval_s
        best_parts = [math.inf, 0.0, 0.0]  # J, Jc and Js of the best image so far
        best = [x.detach()]

        def objective(image: torch.Tensor) -> torch.Tensor:
            j, jc, js = self.costs(image, content_target, style_targets, weights)
            if float(j.detach()) < best_parts[0]:
                best_parts[:] = [float(j.detach()), float(jc.detach()), float(js.detach())]
            return j

        def on_evaluation(ev: optim.Evaluation) -> None:
            best[0] = ev.best
            self.done += 1
            self.work_done += eval_s
            # The best so far, not the line search's trial: what a stop now would return.
            self.report(
                scale, (ev.best_cost, best_parts[1], best_parts[2]), lambda: snapshot(ev.best)
            )

        def should_stop() -> bool:
            if self.cancel is not None and self.cancel():
                raise StylizeCancelled(self.finish(snapshot(best[0])))
            return self.over_budget(scale)

        done_at_end = self.done + iterations
        try:
            if self.p.optimizer == "lbfgs":
                result = optim.minimise_lbfgs(objective, x, iterations, on_evaluation, should_stop)
            else:
                result = optim.minimise_adam(
                    objective,
                    x,
                    iterations,
                    self.p.learning_rate,
                    on_evaluation,
                    should_stop,
                )
        except optim.OptimisationFailed as exc:
            where = f"scale {scale} of {self.scales} ({x.shape[-1]}x{x.shape[-2]} px)"
            hint = (
                "raise learning_rate or iterations, or use the lbfgs optimizer"
                if self.p.optimizer == "adam"
                else "check the weights and the images"
            )
            raise optim.OptimisationFailed(f"{where}: {exc}; {hint}") from None
        if self.done < done_at_end:
            # A converged run stops early: its unused steps count as done (one report for
            # them), so the progress and the time estimate stay true.
            self.work_done += (done_at_end - self.done) * eval_s
            self.done = done_at_end
            self.report(
                scale, (best_parts[0], best_parts[1], best_parts[2]), lambda: snapshot(result)
            )
        return result

    def report(
        self, scale: int, last: tuple[float, float, float], snapshot: Callable[[], torch.Tensor]
    ) -> None:
        if self.progress is None:
            return
        preview = None
        if (
            self.preview_every
            and self.done
            and (self.done % self.preview_every == 0 or self.done == self.total)
        ):
            preview = self.finish(snapshot())
        j, jc, js = last
        self.progress(
            Progress(
                self.done,
                self.total,
                scale,
                self.scales,
                j,
                jc,
                js,
                self.elapsed(),
                self.eta(),
                preview,
            )
        )


@calibrate.flushing_subnormals
def stylize(
    content: np.ndarray,
    styles: Sequence[Any],
    params: StyleParams | dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    *,
    preview_every: int = 0,
    model: VGGFeatures | None = None,
    style_cache: StyleTargetCache | None = None,
) -> np.ndarray:
    """Stylize `content` (H x W x C, u8/u16/f32) with `styles`; same shape and dtype back.

    styles: arrays, (array, weight) pairs or StyleImage; blend weights are normalised to sum 1.
    params: StyleParams are taken as validated (the daemon and the CLI made them with
    make_params); a mapping is this entry's request and is validated here, once.
    Raises StylizeCancelled (with the partial image) when cancel() turns true.
    """
    p = params if isinstance(params, StyleParams) else make_params(params)
    content = _check_image(content, "content")
    style_list = [
        StyleImage(_check_image(s.pixels, f"styles[{i}]"), s.weight)
        for i, s in enumerate(_as_styles(styles))
    ]
    if p.iterations == 0:
        return content.copy()  # nothing to optimise: the content as sent, bit for bit
    model = model or load_model("caffe", p.device)
    device = model.device
    height, width, channels = content.shape
    dtype = wire_dtype(content)
    colour, alpha = pixels.split_alpha(content)
    rgb = _to_tensor(pixels.to_unit_float(colour), device)
    plan = make_plan((height, width), p, calibrate.speed_for(model, p.precision))
    log.info("plan for %dx%d: %s", width, height, plan.describe())

    def finish(x: torch.Tensor) -> np.ndarray:
        """Working image -> the caller's layout at full size (fine structure and colours
        restored if asked)."""
        with torch.no_grad():
            working = (int(x.shape[-2]), int(x.shape[-1]))
            x = resize(x, (height, width)).clamp(0.0, 1.0)
            if p.restore_detail and working != (height, width):
                x = detail.restore_detail(x, rgb, working)
            if p.preserve_colors:
                yiq = rgb_to_yiq(rgb)
                yiq[:, :1] = rgb_to_yiq(x)[:, :1]
                x = yiq_to_rgb(yiq).clamp(0.0, 1.0)
            out = x[0].permute(1, 2, 0).cpu().numpy()
        out = pixels.from_unit_float(out, dtype)
        return pixels.join_alpha(out, alpha, channels)

    run = _Run(model, p, progress, cancel, preview_every, style_cache, plan, finish)
    run.report(1, (0.0, 0.0, 0.0), lambda: rgb)  # the plan's ETA, at once
    gen = torch.Generator().manual_seed(p.seed)
    x: torch.Tensor | None = None
    for index in range(1, len(plan.steps) + 1):
        if index > 1:  # a budget is fitted again to the time left, at the speed seen
            observed = plan.speed.scaled(run.slowness())
            run.plan = refit(run.plan, index - 1, run.elapsed(), observed)
        hw = run.plan.steps[index - 1].size
        content_s = resize(rgb, hw)
        if p.preserve_colors:
            content_s = luminance_only(content_s)
        targets = run.style_targets(style_list, hw, content_s)
        if x is None:
            if p.init == "noise":
                x = torch.rand((1, 3, *hw), generator=gen).to(device)
            else:
                x = content_s.clone()
        else:
            x = resize(x, hw).clamp(0.0, 1.0)
        x = _optimise_scale(run, x, content_s, targets, index)
    assert x is not None
    if run.work_done > 0:
        calibrate.observe(model, plan.speed.scaled(run.elapsed() / run.work_done))
    return finish(x)


def _optimise_scale(
    run: _Run, x: torch.Tensor, content: torch.Tensor, targets: dict[str, torch.Tensor], scale: int
) -> torch.Tensor:
    """One scale: whole image, or overlapping tiles blended together when it is too large."""
    h, w = x.shape[-2:]
    tile = run.p.tile_size
    rows, cols = tile_spans(h, tile), tile_spans(w, tile)
    if len(rows) == 1 and len(cols) == 1:
        return run.optimise(x, content, targets, scale, lambda cur: cur)
    canvas = x.clone()
    # Tiles are optimised one after another; each sees the tiles already finished, so the
    # overlaps agree, and the blend weights hide the seams.
    for r0, r1 in rows:
        for c0, c1 in cols:

            def snapshot(
                cur: torch.Tensor, r0: int = r0, r1: int = r1, c0: int = c0, c1: int = c1
            ) -> torch.Tensor:
                view = canvas.clone()
                view[..., r0:r1, c0:c1] = cur
                return view

            piece = run.optimise(
                canvas[..., r0:r1, c0:c1], content[..., r0:r1, c0:c1], targets, scale, snapshot
            )
            wy = _ramp(r1 - r0, r0, r1, h, TILE_OVERLAP).to(x)
            wx = _ramp(c1 - c0, c0, c1, w, TILE_OVERLAP).to(x)
            weight = (wy[:, None] * wx[None, :])[None, None]
            region = canvas[..., r0:r1, c0:c1]
            canvas[..., r0:r1, c0:c1] = region * (1 - weight) + piece * weight
    return canvas
