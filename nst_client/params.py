"""Every job parameter, defined once: name, type, range, default, words.

`StyleParams` is the definition: each field carries its `Spec` (kind, range, choices, the help
text, an editor's label), and everything else is derived from it: the daemon's and the CLI's
validation (`make_params`), the CLI's options (`nst_app.options`), the GIMP procedure's
arguments and the Krita docker's controls (their ranges, labels and help), and the engine's
typed view. The quality presets' labels and help live here too (`QUALITIES`); what each preset
does lives with the planner (nst_core.plan.PRESETS, keyed by these names).

Adding a parameter: one field here (with its Spec), plus its use in the engine. Pure Python,
standard library only: the editors' Python imports it through `nst_client`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from . import strength as strength_scale
from .protocol import quote

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
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: The seed's equal layer weights (0.2 each over the five style layers).
DEFAULT_STYLE_LAYER_WEIGHTS: tuple[tuple[str, float], ...] = tuple(
    (name, 1.0 / len(STYLE_LAYERS)) for name in STYLE_LAYERS
)

#: Overlap between neighbouring tiles (pixels at the tiled scale), blended linearly.
TILE_OVERLAP = 64
#: The smallest tile: the overlaps may take at most half of it.
MIN_TILE_SIZE = 4 * TILE_OVERLAP
#: The largest weight (alpha, beta, TV, a style layer's) accepted: past it only rounding moves.
MAX_WEIGHT = 1e6


@dataclass(frozen=True)
class Quality:
    """An artist's quality preset as every client offers it."""

    name: str
    label: str
    help: str


#: The presets, fastest first (nst_core.plan.PRESETS says what each one does).
QUALITIES = (
    Quality(
        "draft", "Draft", "A quick look at a small size, in seconds, to try a style or a strength"
    ),
    Quality("normal", "Normal", "The classic look, about a minute on a laptop CPU"),
    Quality(
        "final", "Final", "The layer's own resolution where the machine allows (takes longest)"
    ),
)
QUALITY_PRESETS = tuple(q.name for q in QUALITIES)
DEFAULT_QUALITY = "normal"
#: The quality control's help while a time limit is set.
QUALITY_WHILE_LIMITED = "Not used while there is a time limit: the job is fitted into the time"


def quality_help() -> str:
    """One line on every preset ('Draft: a quick look ...; Normal: ...')."""
    return "; ".join(f"{q.label}: {q.help[:1].lower()}{q.help[1:]}" for q in QUALITIES)


class ParamError(ValueError):
    """A parameter with a bad name, type or value; the message names it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True)
class Spec:
    """What one parameter accepts and how a person is told about it."""

    kind: str
    """int, float, seconds, bool, choice, size (pixels or 'full'), layer (a VGG-19 layer),
    layers (VGG-19 layers with weights)."""
    help: str
    minimum: float | None = None
    maximum: float | None = None
    #: The minimum itself is refused (a step size of 0).
    above_minimum: bool = False
    choices: tuple[str, ...] = ()
    #: None is accepted and means "off" or "the planner decides".
    optional: bool = False
    #: An editor's label, with a mnemonic ("S_trength"); "" = no editor shows it.
    label: str = ""
    #: The CLI option when it is not --NAME ('--raw-costs' for a true-by-default switch);
    #: "" = the CLI has none.
    option: str | None = None
    #: The CLI's metavar, where the type alone does not say it.
    metavar: str | None = None
    #: The help of a CLI switch that turns a true-by-default parameter off.
    option_help: str = ""


def _param(default: Any, spec: Spec) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


MIN_SIZE = 16
MAX_SIZE = 1 << 16
MIN_TIME_BUDGET_S = 5.0
MAX_TIME_BUDGET_S = 86400.0


@dataclass
class StyleParams:
    """Everything that shapes a run. Defaults aim at jcjohnson/neural-style's look at 512 px."""

    quality: str = _param(
        DEFAULT_QUALITY,
        Spec(
            "choice",
            "the quality preset: " + quality_help(),
            choices=QUALITY_PRESETS,
            label="_Quality",
            metavar="PRESET",
        ),
    )
    time_budget: float | None = _param(
        None,
        Spec(
            "seconds",
            "fit the job into this time (5 s to 24 h): the engine plans the size and the work "
            "for this computer, and the quality does not apply",
            minimum=MIN_TIME_BUDGET_S,
            maximum=MAX_TIME_BUDGET_S,
            optional=True,
            label="Time _limit",
            metavar="SECONDS",
        ),
    )
    iterations: int | None = _param(
        None,
        Spec(
            "int",
            "a fixed number of optimizer iterations at every scale, for scripts (default: the "
            "planner's, from the quality or the time limit)",
            minimum=0,
            maximum=100000,
            optional=True,
            label="Iterations per scale",
        ),
    )
    size: int | str | None = _param(
        None,
        Spec(
            "size",
            "the long side, in pixels, the style is worked out at ('full': the layer's own); "
            "the result is scaled to the layer (default: the engine picks it from the quality "
            "or the time limit and this computer's speed)",
            minimum=MIN_SIZE,
            maximum=MAX_SIZE,
            optional=True,
            label="_Working size",
        ),
    )
    restore_detail: bool = _param(
        True,
        Spec(
            "bool",
            "when the last scale is below the layer's size, put the content's fine structure "
            "back at full size; off: a plain bicubic upscale",
            option="--no-restore-detail",
            option_help="when the last scale is smaller than the content, upscale the result "
            "plainly (bicubic) instead of putting the content's fine detail back",
        ),
    )
    strength: float = _param(
        strength_scale.DEFAULT,
        Spec(
            "float",
            f"how much style: {strength_scale.MINIMUM:g} = a hint, {strength_scale.DEFAULT:g} "
            f"= the classic look, {strength_scale.MAXIMUM:g} = only the painting's texture",
            minimum=strength_scale.MINIMUM,
            maximum=strength_scale.MAXIMUM,
            label="S_trength",
        ),
    )
    content_weight: float = _param(
        1.0, Spec("float", "alpha in J = alpha*Jc + beta*Js", minimum=0.0, maximum=MAX_WEIGHT)
    )
    style_weight: float | None = _param(
        None,
        Spec(
            "float",
            "beta in J = alpha*Jc + beta*Js, for experts: overrides the strength",
            minimum=0.0,
            maximum=MAX_WEIGHT,
            optional=True,
        ),
    )
    tv_weight: float = _param(
        10.0,
        Spec(
            "float",
            "smoothing: the total variation's weight per pixel value of the 0..1 image",
            minimum=0.0,
            maximum=MAX_WEIGHT,
        ),
    )
    normalize_costs: bool = _param(
        True,
        Spec(
            "bool",
            "divide Jc and each style layer's cost by their targets' energies (one strength "
            "means the same on every image); off: the seed's raw costs",
            option="--raw-costs",
            option_help="the seed's raw costs: no division by the targets' energies",
        ),
    )
    optimizer: str = _param("lbfgs", Spec("choice", "the optimiser", choices=("lbfgs", "adam")))
    learning_rate: float = _param(
        0.02,
        Spec(
            "float",
            "Adam's step size on the 0..1 image",
            minimum=0.0,
            maximum=1.0,
            above_minimum=True,
        ),
    )
    init: str = _param(
        "palette",
        Spec(
            "choice",
            "the starting image: the photo in the painting's colours, the photo, or noise",
            choices=("palette", "content", "noise"),
        ),
    )
    seed: int = _param(0, Spec("int", "random seed", minimum=0, maximum=2**63 - 1, label="See_d"))
    style_scale: float = _param(
        1.0,
        Spec(
            "float",
            "the style image's size relative to the working size",
            minimum=0.1,
            maximum=4.0,
        ),
    )
    preserve_colors: bool = _param(
        False,
        Spec(
            "bool",
            "luminance-only transfer: keep the layer's colours, transfer only the texture",
            label="_Preserve colours",
        ),
    )
    pooling: str = _param("max", Spec("choice", "VGG-19's pooling", choices=("max", "avg")))
    content_layer: str = _param(
        "relu4_2", Spec("layer", "the VGG-19 layer the content cost compares")
    )
    style_layers: list[tuple[str, float]] = _param(
        list(DEFAULT_STYLE_LAYER_WEIGHTS),
        Spec("layers", "the style cost's VGG-19 layers and their weights", option=""),
    )
    min_scale: int = _param(
        128,
        Spec("int", "the long side of the first (coarsest) scale", minimum=16, maximum=1 << 16),
    )
    tile_size: int = _param(
        1024,
        Spec(
            "int",
            "scales whose long side exceeds this are optimised in overlapping tiles (bounded "
            "memory)",
            minimum=MIN_TILE_SIZE,
            maximum=1 << 16,
        ),
    )
    device: str = _param(
        "auto", Spec("choice", "where a local run computes", choices=("auto", "cpu", "cuda", "mps"))
    )
    precision: str = _param(
        "auto",
        Spec(
            "choice",
            "VGG-19's arithmetic (the costs stay fp32); auto: the fastest measured on this "
            "device within tolerance",
            choices=("auto", "fp32", "bf16", "fp16"),
        ),
    )

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


#: Each parameter's Spec, in the definition's order.
SPECS: dict[str, Spec] = {f.name: f.metadata["spec"] for f in fields(StyleParams)}
PARAM_NAMES = tuple(SPECS)
#: Each parameter's default.
DEFAULTS: Mapping[str, Any] = StyleParams().to_dict()


def _number(name: str, value: Any, spec: Spec) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(name, f"expected a number, got {quote(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamError(name, f"must be a finite number, got {quote(value)}")
    if spec.kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise ParamError(name, f"expected an integer, got {quote(value)}")
        value = int(value)
    else:
        value = float(value)
    low, high = spec.minimum, spec.maximum
    if low is not None and (value < low or (spec.above_minimum and value <= low)):
        raise ParamError(
            name, f"must be {'>' if spec.above_minimum else '>='} {low}, got {quote(value)}"
        )
    if high is not None and value > high:
        raise ParamError(name, f"must be <= {high}, got {quote(value)}")
    return value


def check_value(name: str, value: Any) -> Any:
    """One parameter's value as a run uses it, or ParamError naming it."""
    spec = SPECS[name]
    if value is None and spec.optional:
        return None
    if spec.kind in ("int", "float", "seconds"):
        return _number(name, value, spec)
    if spec.kind == "size":
        return value if value == "full" else _number(name, value, replace(spec, kind="int"))
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ParamError(name, f"expected true or false, got {quote(value)}")
        return value
    if spec.kind == "choice":
        if value not in spec.choices:
            raise ParamError(name, f"must be one of {', '.join(spec.choices)}, got {quote(value)}")
        return value
    if spec.kind == "layer":
        if not isinstance(value, str):
            raise ParamError(name, f"expected a layer name, got {quote(value)}")
        _known_layer(name, value)
        return value
    if spec.kind == "layers":
        return _style_layers(name, value)
    raise AssertionError(f"unknown kind {spec.kind!r} of {name}")


def make_params(
    values: Mapping[str, Any] | StyleParams | None = None, defaults: StyleParams | None = None
) -> StyleParams:
    """Validated StyleParams from a mapping (unknown names are errors): the one check of a
    job's parameters, where a request enters (the daemon, the CLI, the Python API). What the
    mapping leaves out comes from `defaults` (the definition's own when None)."""
    if isinstance(values, StyleParams):
        values = values.to_dict()
    values = dict(values or {})
    unknown = sorted(_shown(name) for name in values if name not in SPECS)
    if unknown:
        raise ParamError(unknown[0], f"unknown parameter (known: {', '.join(PARAM_NAMES)})")
    p = replace(defaults) if defaults is not None else StyleParams()
    for name, value in values.items():
        setattr(p, name, check_value(name, value))
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


def _style_layers(name: str, value: Any) -> list[tuple[str, float]]:
    items = list(value.items()) if isinstance(value, dict) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ParamError(name, "expected a non-empty list of [layer, weight] pairs")
    weight_spec = Spec("float", "", minimum=0.0, maximum=MAX_WEIGHT)
    out = []
    for item in items:
        if isinstance(item, str):
            _known_layer(name, item)
            out.append((item, 1.0 / len(items)))
            continue
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str):
            raise ParamError(name, f"expected [layer, weight], got {quote(item)}")
        _known_layer(name, item[0])
        out.append((item[0], _number(name, item[1], weight_spec)))
    if not any(weight > 0 for _, weight in out):
        raise ParamError(name, "every layer weight is 0: give at least one a weight")
    return out


# --- an editor's controls ------------------------------------------------------------------

#: The working size control's value for "the engine decides".
AUTO_SIZE = 0
#: The time limit control's value for "no limit".
NO_TIME_LIMIT = 0


def label(name: str) -> str:
    """A parameter's editor label as read ('S_trength' -> 'Strength')."""
    return SPECS[name].label.replace("_", "")


#: Style images are scaled down on the client to at most this many times the working size:
#: the engine resizes them anyway, and a 24-megapixel photo need not cross the socket ...
STYLE_SIDE_FACTOR = 2
#: ... but never below this long side, so that a tiny working size keeps the style's detail;
STYLE_MIN_SIDE = 256
#: with Auto size (the planner may work up to the layer's own size), this long side.
STYLE_AUTO_SIDE = 2048


def style_side_limit(size: int = AUTO_SIZE) -> int:
    """The longest side a style image keeps on its way to the engine, for a working size
    control's value (AUTO_SIZE: STYLE_AUTO_SIDE)."""
    if size <= 0:
        return STYLE_AUTO_SIDE
    return max(int(size), STYLE_MIN_SIDE) * STYLE_SIDE_FACTOR


def editor_params(
    *,
    quality: str,
    strength: float,
    preserve_colors: bool,
    area: tuple[int, int],
    time_limit_s: float = NO_TIME_LIMIT,
    size: int = AUTO_SIZE,
    seed: int | None = None,
    iterations: int | None = None,
) -> dict[str, Any]:
    """A job's parameters from an editor's controls, for an area of (width, height): the one
    mapping both plug-ins use. The controls keep their values in the definition's ranges;
    what they mean by 0 is decided here: no time limit (else the job is fitted into it, the
    quality not applying; under the least budget it counts as the least), Auto size (else
    that long side, never above the area's own: more would only upscale and lose detail),
    iterations by the quality (scripts fix them). The daemon validates what is sent."""
    params: dict[str, Any] = {
        "quality": quality,
        "strength": float(strength),
        "preserve_colors": bool(preserve_colors),
    }
    if seed is not None:
        params["seed"] = int(seed)
    if time_limit_s and time_limit_s > 0:
        params["time_budget"] = min(max(float(time_limit_s), MIN_TIME_BUDGET_S), MAX_TIME_BUDGET_S)
    if size and size > 0:
        params["size"] = max(MIN_SIZE, min(int(size), max(area)))
    if iterations:
        params["iterations"] = int(iterations)
    return params
