"""Stylize parameters: names, defaults and validation, shared by the engine, CLI and daemon.

Pure Python (no torch), so the daemon's protocol layer and the clients can validate a request
without importing the engine.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from nst_client import strength as strength_scale
from nst_client.protocol import quote

#: Convolutions per block in VGG-19.
VGG19_BLOCKS = (2, 2, 4, 4, 4)


def _vgg19_layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for b, n in enumerate(VGG19_BLOCKS, start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


#: Every layer a run may name, in forward order (conv1_1, relu1_1, ..., pool5).
VGG19_LAYERS = _vgg19_layer_names()


def layer_stride(layer: str) -> int:
    """How many image pixels one pixel of a VGG-19 layer spans along a side (relu3_1: 4)."""
    block = int(layer[4])
    return 2**block if layer.startswith("pool") else 2 ** (block - 1)


STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# The seed's equal layer weights (0.2 each over the five style layers).
DEFAULT_STYLE_LAYER_WEIGHTS: tuple[tuple[str, float], ...] = tuple(
    (name, 1.0 / len(STYLE_LAYERS)) for name in STYLE_LAYERS
)


#: Overlap between neighbouring tiles (pixels at the tiled scale), blended linearly.
TILE_OVERLAP = 64
#: The smallest tile: the overlaps may take at most half of it.
MIN_TILE_SIZE = 4 * TILE_OVERLAP
#: The artists' presets, fastest first (nst_core.plan.PRESETS says what each one does).
QUALITY_PRESETS = ("draft", "normal", "final")
DEFAULT_QUALITY = "normal"
#: A time budget's range in seconds: below 5 s not even a draft fits; a day at most.
MIN_TIME_BUDGET_S = 5.0
MAX_TIME_BUDGET_S = 86400.0
#: The largest weight (alpha, beta, TV, a style layer's) accepted: past it only rounding moves.
MAX_WEIGHT = 1e6


class ParamError(ValueError):
    """A parameter with a bad name, type or value; the message names it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass
class StyleParams:
    """Everything that shapes a run. Defaults aim at jcjohnson/neural-style's look at 512 px."""

    quality: str = "normal"
    """An artist's preset (QUALITY_PRESETS): the planner turns it into scales and iterations."""
    time_budget: float | None = None
    """Seconds the job may take; the planner fits it (quality is then ignored). None = off."""
    iterations: int | None = None
    """Optimizer iterations at every scale, fixed (scripts); None = the planner decides."""
    size: int | str | None = None
    """Long side of the last optimised scale; 'full' = the content's own size; None = the
    planner picks it from the preset or budget and the device's measured speed."""
    restore_detail: bool = True
    """When the last scale is below the layer's size, put the content's fine structure back
    at full size (nst_core.detail); False = a plain bicubic upscale."""
    strength: float = strength_scale.DEFAULT
    """How much style, 0 (a hint) .. 100 (only the painting's texture); sets beta."""
    content_weight: float = 1.0
    """alpha in J = alpha*Jc + beta*Js."""
    style_weight: float | None = None
    """beta in J = alpha*Jc + beta*Js, for experts; None = follow `strength`."""
    tv_weight: float = 10.0
    """Smoothing: weight of the total variation per pixel value of the 0..1 image (10 takes
    the colour speckle off faces without costing style; see docs/quality.md)."""
    normalize_costs: bool = True
    """Divide Jc and each style layer's cost by their targets' energies (weights = shares, one
    strength means the same on every image); False = the seed's raw costs."""
    optimizer: str = "lbfgs"
    learning_rate: float = 0.02
    """Adam step size on the 0..1 image."""
    init: str = "content"
    seed: int = 0
    style_scale: float = 1.0
    """Style image size relative to the working size."""
    preserve_colors: bool = False
    """Luminance-only transfer: keep the content's colours."""
    pooling: str = "max"
    content_layer: str = "relu4_2"
    style_layers: list[tuple[str, float]] = field(
        default_factory=lambda: list(DEFAULT_STYLE_LAYER_WEIGHTS)
    )
    min_scale: int = 128
    """Long side of the first (coarsest) scale."""
    tile_size: int = 1024
    """Scales whose long side exceeds this are optimised in overlapping tiles (bounded memory)."""
    device: str = "auto"
    precision: str = "auto"
    """VGG arithmetic: fp32, bf16 or fp16 (autocast; costs stay fp32), or auto = the one
    measured fastest within tolerance on this device (nst_core.calibrate)."""

    @property
    def beta(self) -> float:
        """The style weight a run uses: `style_weight` if given, else the strength's."""
        if self.style_weight is not None:
            return self.style_weight
        return strength_scale.style_weight(self.strength)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["style_layers"] = [[n, float(w)] for n, w in self.style_layers]
        return data


PARAM_NAMES = tuple(f.name for f in fields(StyleParams))
_CHOICES = {
    "optimizer": ("lbfgs", "adam"),
    "init": ("content", "noise"),
    "pooling": ("max", "avg"),
    "device": ("auto", "cpu", "cuda", "mps"),
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "quality": QUALITY_PRESETS,
}


def _number(
    name: str,
    value: Any,
    kind: type,
    minimum: float,
    maximum: float | None = None,
    strict_min: bool = False,
) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(name, f"expected a number, got {quote(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamError(name, f"must be a finite number, got {quote(value)}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ParamError(name, f"expected an integer, got {quote(value)}")
        value = int(value)
    else:
        value = float(value)
    if value != value or (strict_min and value <= minimum) or value < minimum:
        raise ParamError(
            name, f"must be {'>' if strict_min else '>='} {minimum}, got {quote(value)}"
        )
    if maximum is not None and value > maximum:
        raise ParamError(name, f"must be <= {maximum}, got {quote(value)}")
    return value


def make_params(
    values: dict[str, Any] | StyleParams | None = None, defaults: StyleParams | None = None
) -> StyleParams:
    """Validated StyleParams from a dict (unknown names are errors) or an existing instance;
    what the dict leaves out comes from `defaults` (the engine's own when None)."""
    if isinstance(values, StyleParams):
        values = values.to_dict()
    values = dict(values or {})
    unknown = sorted(_shown(name) for name in values if name not in PARAM_NAMES)
    if unknown:
        raise ParamError(unknown[0], f"unknown parameter (known: {', '.join(PARAM_NAMES)})")
    p = replace(defaults) if defaults is not None else StyleParams()
    for name, value in values.items():
        if name == "iterations":
            if value is not None:
                value = _number(name, value, int, 0, 100000)
        elif name == "time_budget":
            if value is not None:
                value = _number(name, value, float, MIN_TIME_BUDGET_S, MAX_TIME_BUDGET_S)
        elif name in ("seed",):
            value = _number(name, value, int, 0, 2**63 - 1)
        elif name == "min_scale":
            value = _number(name, value, int, 16, 1 << 16)
        elif name == "tile_size":
            value = _number(name, value, int, MIN_TILE_SIZE, 1 << 16)
        elif name == "size":
            if value is not None and value != "full":
                value = _number(name, value, int, 16, 1 << 16)
        elif name == "strength":
            value = _number(name, value, float, strength_scale.MINIMUM, strength_scale.MAXIMUM)
        elif name in ("content_weight", "tv_weight"):
            value = _number(name, value, float, 0.0, MAX_WEIGHT)
        elif name == "style_weight":
            if value is not None:
                value = _number(name, value, float, 0.0, MAX_WEIGHT)
        elif name == "learning_rate":
            value = _number(name, value, float, 0.0, 1.0, strict_min=True)
        elif name == "style_scale":
            value = _number(name, value, float, 0.1, 4.0)
        elif name in ("preserve_colors", "normalize_costs", "restore_detail"):
            if not isinstance(value, bool):
                raise ParamError(name, f"expected true or false, got {quote(value)}")
        elif name in _CHOICES:
            if value not in _CHOICES[name]:
                raise ParamError(
                    name, f"must be one of {', '.join(_CHOICES[name])}, got {quote(value)}"
                )
        elif name == "content_layer":
            if not isinstance(value, str):
                raise ParamError(name, f"expected a layer name, got {quote(value)}")
            _known_layer(name, value)
        elif name == "style_layers":
            value = _style_layers(value)
        setattr(p, name, value)
    if p.content_weight == 0 and p.beta == 0:
        raise ParamError(
            "content_weight",
            "content_weight and the style weight are both 0: there is nothing to optimise",
        )
    return p


def _shown(name: Any) -> str:
    """An unknown parameter's name as a message shows it: plain if it looks like a name."""
    if isinstance(name, str) and name.isidentifier() and len(name) <= 60:
        return name
    return quote(name)


def _known_layer(param: str, layer: str) -> None:
    if layer not in VGG19_LAYERS:
        raise ParamError(
            param,
            f"unknown VGG-19 layer {quote(layer)} (conv1_1, relu1_1, ..., relu5_4, pool1..pool5)",
        )


def _style_layers(value: Any) -> list[tuple[str, float]]:
    items = list(value.items()) if isinstance(value, dict) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ParamError("style_layers", "expected a non-empty list of [layer, weight] pairs")
    out = []
    for item in items:
        if isinstance(item, str):
            _known_layer("style_layers", item)
            out.append((item, 1.0 / len(items)))
            continue
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str):
            raise ParamError("style_layers", f"expected [layer, weight], got {quote(item)}")
        _known_layer("style_layers", item[0])
        out.append((item[0], _number("style_layers", item[1], float, 0.0, MAX_WEIGHT)))
    if not any(weight > 0 for _, weight in out):
        raise ParamError("style_layers", "every layer weight is 0: give at least one a weight")
    return out
