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

from nst_client import strength as strength_scale
from nst_client.layouts import wire_dtype
from nst_client.params import StyleParams, make_params
from nst_client.progress import Progress

from . import calibrate, costs, detail, heap, optim, pixels, plan, start, tiles
from .breakdown import Breakdown
from .colour import luminance_only, rgb_to_yiq, yiq_to_rgb
from .errors import OptimisationFailed as OptimisationFailed  # re-exported for callers
from .errors import StylizeCancelled as StylizeCancelled
from .plan import Piece, Plan, make_plan, refit, style_pieces, style_size
from .regions import Region, coverage, onto_photo
from .styles import StyleImage as StyleImage  # re-exported for callers
from .styles import as_styles, check_image
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
    heap.keep_freed_memory()
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


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionTerms:
    """A region's style terms for one image size: each layer's factor and mask."""

    region: Region
    factors: dict[str, float]
    masks: dict[str, torch.Tensor]
    boxes: dict[str, costs.Box]


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
        breakdown: Breakdown,
    ):
        self.model, self.p = model, params
        self.progress, self.cancel = progress, cancel
        self.preview_every, self.cache = preview_every, cache
        self.plan = plan
        self.finish = finish
        self.breakdown = breakdown
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
        """VGG-19 features of x in the run's precision and layout, as the pass made them (the
        costs compute in fp32 from them). Targets and the image being optimised go through
        this same path, so an image at its targets costs exactly 0 whatever the precision."""
        inp = x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
        with torch.autocast(
            self.model.device.type,
            dtype=self.autocast or torch.float32,
            enabled=self.autocast is not None,
        ):
            return self.model(inp, layers, self.p.pooling)

    def regions(
        self,
        styles: list[StyleImage],
        masks: list[torch.Tensor | None],
        hw: tuple[int, int],
        content: torch.Tensor,
    ) -> list[Region]:
        """The cost's regions at this scale: the styles without a region blended into one
        (sum_s w_s * G_s / (nH*nW) per layer, over the whole image), then one per style with
        a mask or a strength of its own (masks: the styles' full-size masks)."""
        regions = []
        blended: dict[str, torch.Tensor] = {}
        for style in styles:
            if style.is_region or style.weight == 0:
                continue
            for name, target in self.style_targets(style, hw, content).items():
                blended[name] = blended.get(name, 0) + style.weight * target
        if blended:
            regions.append(Region(blended, self.p.beta))
        for style, mask in zip(styles, masks, strict=True):
            if style.is_region and style.weight > 0:
                beta = (
                    self.p.beta
                    if style.strength is None
                    else strength_scale.style_weight(style.strength)
                )
                region = Region(self.style_targets(style, hw, content), beta, style.weight, mask)
                regions.append(region.at(hw))
        return regions

    def style_targets(
        self, style: StyleImage, hw: tuple[int, int], content: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """G_s / (nH*nW) of one style for each style layer, from the cache when it has them
        (they depend on the style and the scale, never on a mask)."""
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
            with self.breakdown.phase("style targets"):
                x = resize(_to_tensor(pixels.to_unit_float(rgb), self.model.device), size)
                if self.p.preserve_colors:
                    x = luminance_only(x, match=content)
                targets = self._gram_targets(x, pieces)
            if self.cache is not None:
                self.cache.put(key, targets)
        return targets

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
        self, content_target: torch.Tensor, regions: list[Region], size: tuple[int, int]
    ) -> tuple[float, list[RegionTerms]]:
        """The factors on Jc and, per region, on each layer's style cost (with the layer's
        mask), for an image of `size`.

        With p.normalize_costs, Jc is divided by the content target's own energy (so it is the
        relative change of the content features) and each style layer's cost by its target's
        energy (the seed's raw layer costs differ by 10^5 between relu1_1 and relu4_1, so one
        layer would decide the style alone). The weights then mean shares, and one strength
        gives the same balance on every image. Without it: the seed's costs as they are.

        A masked region's factors are also multiplied by its weight and by the share of the
        image its mask covers at that layer, so each region weighs its style against the
        content of its own pixels as a whole-image job does; a layer its mask does not reach
        is left out.
        """
        content_factor = 1.0
        if self.p.normalize_costs:
            zero = torch.zeros_like(content_target)
            energy = float(costs.content_cost(zero, content_target))
            content_factor = 1.0 / energy if energy > 0 else 1.0
        terms = []
        for region in regions:
            masks = region.layer_masks(self.style_layers, size)
            factors = {}
            for name, weight in self.layer_weights:
                if self.p.normalize_costs:
                    target = region.targets[name]
                    target_energy = float(target.pow(2).sum() / (4 * target.shape[0] ** 2))
                    weight = weight / target_energy if target_energy > 0 else weight
                if name in masks:
                    share = float(masks[name].mean())
                    if share == 0.0:
                        continue
                    weight = weight * region.weight * share
                factors[name] = weight
            boxes = {name: costs.mask_box(masks[name]) for name in factors if name in masks}
            terms.append(RegionTerms(region, factors, masks, boxes))
        return content_factor, terms

    def costs(
        self,
        x: torch.Tensor,
        content_target: torch.Tensor,
        weights: tuple[float, list[RegionTerms]],
    ) -> tuple[torch.Tensor, ...]:
        """J, Jc and Js of x (Jc and Js with the factors of `cost_weights`; Js summed over
        the regions, J with each region's own beta)."""
        content_factor, terms = weights
        feats = self.features(x, [self.p.content_layer, *self.style_layers])
        j_content = content_factor * costs.content_cost(content_target, feats[self.p.content_layer])
        masked: dict[tuple[int, str], torch.Tensor] = {}  # (term, layer) -> its masked cost
        for n in self.style_layers:
            at = [i for i, t in enumerate(terms) if n in t.factors and n in t.masks]
            if at:
                values = costs.guided_style_costs(
                    feats[n],
                    [terms[i].region.targets[n] for i in at],
                    [terms[i].masks[n] for i in at],
                    [terms[i].boxes[n] for i in at],
                )
                masked.update({(i, n): v for i, v in zip(at, values, strict=True)})
        j: torch.Tensor | None = None
        j_style = torch.zeros((), device=x.device)
        for i, term in enumerate(terms):
            if not term.factors:
                continue  # its mask does not reach this tile
            region_style = torch.stack(
                [
                    w
                    * (
                        masked[i, n]
                        if (i, n) in masked
                        else costs.layer_style_cost_from_target(term.region.targets[n], feats[n])
                    )
                    for n, w in term.factors.items()
                ]
            ).sum()
            if j is None:
                j = costs.total_cost(
                    j_content, region_style, self.p.content_weight, term.region.beta
                )
                j_style = region_style
            else:
                j = j + term.region.beta * region_style
                j_style = j_style + region_style
        if j is None:  # no style reaches this tile: the content alone
            j = self.p.content_weight * j_content
        if self.p.tv_weight:
            # Per pixel value of the 0..1 image, so its weight means the same at every size.
            j = j + self.p.tv_weight * costs.tv_cost(x) / x[0].numel()
        return j, j_content, j_style

    def optimise(
        self,
        x: torch.Tensor,
        content: torch.Tensor,
        regions: list[Region],
        scale: int,
        snapshot: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """The plan's guarded optimiser steps for this scale on x (1, 3, h, w), reporting each."""
        step = self.plan.steps[scale - 1]
        iterations = step.iterations
        eval_s = self.plan.speed.evaluation_s(step.tile_pixels)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        with self.breakdown.phase("content targets"), torch.no_grad():
            feats = self.features(content, [self.p.content_layer])
            content_target = feats[self.p.content_layer].float()  # once, not per evaluation
            weights = self.cost_weights(content_target, regions, size)
        self.work_done += plan.SCALE_OVERHEAD_EVALUATIONS * eval_s
        best_parts = [math.inf, 0.0, 0.0]  # J, Jc and Js of the best image so far
        best = [x.detach()]

        def objective(image: torch.Tensor) -> torch.Tensor:
            j, jc, js = self.costs(image, content_target, weights)
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
        height, width = step.size
        phase = f"scale {scale}/{self.scales} ({width}x{height})"
        started, counted = time.perf_counter(), self.done
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
        finally:
            self.breakdown.add(phase, time.perf_counter() - started, self.done - counted)
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
    breakdown: Breakdown | None = None,
) -> np.ndarray:
    """Stylize `content` (H x W x C, u8/u16/f32) with `styles`; same shape and dtype back.

    styles: arrays, (array, weight) pairs or StyleImage. The styles without a mask blend
    (weights normalised to sum 1); each style with a mask (or its own strength) styles its
    own region, and where no mask reaches the photo stays (nst_core.regions).
    params: StyleParams are taken as validated (the daemon and the CLI made them with
    make_params); a mapping is this entry's request and is validated here, once.
    Raises StylizeCancelled (with the partial image) when cancel() turns true.
    breakdown: filled with where the job's seconds went (nst_core.breakdown).
    """
    p = params if isinstance(params, StyleParams) else make_params(params)
    content = check_image(content, "content")
    style_list = as_styles(styles, (int(content.shape[0]), int(content.shape[1])))
    if p.iterations == 0:
        return content.copy()  # nothing to optimise: the content as sent, bit for bit
    model = model or load_model("caffe", p.device)
    device = model.device
    height, width, channels = content.shape
    dtype = wire_dtype(content)
    colour, alpha = pixels.split_alpha(content)
    rgb = _to_tensor(pixels.to_unit_float(colour), device)
    masks = [
        None if s.mask is None else torch.from_numpy(s.mask)[None, None].to(device)
        for s in style_list
    ]
    cover = coverage([m for s, m in zip(style_list, masks, strict=True) if s.weight > 0])
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
            if cover is not None:
                x = onto_photo(x, rgb, cover)
            out = x[0].permute(1, 2, 0).cpu().numpy()
        out = pixels.from_unit_float(out, dtype)
        return pixels.join_alpha(out, alpha, channels)

    breakdown = breakdown if breakdown is not None else Breakdown()
    run = _Run(model, p, progress, cancel, preview_every, style_cache, plan, finish, breakdown)
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
        regions = run.regions(style_list, masks, hw, content_s)
        if x is None:
            x = start.start_image(p.init, content_s, style_list, masks, gen, p.preserve_colors)
        else:
            # The photo's fine structure that the scale before could not hold, put back: the
            # scale then starts sharp and spends its passes on the brush work.
            before = (int(x.shape[-2]), int(x.shape[-1]))
            x = detail.restore_detail(resize(x, hw).clamp(0.0, 1.0), content_s, before)
        x = tiles.optimise_scale(run, x, content_s, regions, index)
    assert x is not None
    if run.work_done > 0:
        calibrate.observe(model, plan.speed.scaled(run.elapsed() / run.work_done))
    with breakdown.phase("finish at the layer's size"):
        return finish(x)
