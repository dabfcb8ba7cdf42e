"""The GIMP plug-in's rules, without GIMP: what plug-in-nst-stylize.py does besides GIMP calls.

The procedure's arguments (ranges, labels and help from nst_client.params, the one definition),
its values as a job's parameters (nst_client.params.editor_params, shared with Krita), how far
a style image is scaled down, one job through nst_client.job (every failure a PluginError in
the dialog's words), the new layer's name; and a style per region: which of the dialog's
three styles a run uses, the rectangle it sends and each region's mask (the masks' pixels:
nst_gimp_masks.py; the dialog's engine-state thread: nst_gimp_state.py). Imports nothing of
GIMP, so the unit tests run it with the product's Python; the script puts this folder on
sys.path, where `nst install-plugin gimp` also puts nst_client.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nst_gimp_masks import Box, crop_mask, mask_bounds, rest_of, union

from nst_client import job, layouts
from nst_client import params as P
from nst_client.client import JobResult, RawImage, RawStyle
from nst_client.launcher import EngineState
from nst_client.progress import Progress, format_duration
from nst_client.settings import CONFIG_NAME, Settings, SettingsError, load

PROC_NAME = "plug-in-nst-stylize"
CLIENT_NAME = "gimp-plug-in"
#: What brings a stale plug-in up to date (shown when the daemon is another version).
REINSTALL = "nst install-plugin gimp"
TITLE = "Neural style transfer"

#: GIMP's integer arguments are 32-bit.
GINT_MAX = 2**31 - 1


def _argument(name: str, off: int | None = None, integer: bool = False) -> tuple[Any, ...]:
    """A procedure argument's (minimum, maximum, default) from the parameter's definition;
    off: the argument's value that stands for None (no time limit, Auto size, by quality)."""
    spec = P.SPECS[name]
    low = spec.minimum if off is None else off
    default = P.DEFAULTS[name] if P.DEFAULTS[name] is not None else off
    assert low is not None and spec.maximum is not None and default is not None
    if spec.kind == "float" and not integer:
        return float(low), float(spec.maximum), float(default)
    return int(low), min(int(spec.maximum), GINT_MAX), int(default)


# The procedure's arguments: (minimum, maximum, default).
STRENGTH = _argument("strength")
#: Seconds the job must fit in; 0 = no limit. 1..4 count as the engine's least.
TIME_LIMIT = _argument("time_budget", P.NO_TIME_LIMIT, integer=True)
#: The working size's long side; 0 = Auto (the engine's planner picks it).
SIZE = _argument("size", P.AUTO_SIZE)
#: For scripts (not in the dialog): a fixed count at every scale; 0 = by quality.
ITERATIONS = _argument("iterations", 0)
SEED = _argument("seed")
#: The dialog's help on the quality choice, and what it says while a time limit is set.
QUALITY_HELP = P.quality_help()


def param_label(name: str) -> str:
    """A parameter's label in the dialog, with its mnemonic."""
    return P.SPECS[name].label


def param_help(name: str) -> str:
    """A parameter's help in the dialog: the definition's, as a sentence."""
    text = P.SPECS[name].help
    return text[:1].upper() + text[1:]


#: The dialog's labels of the engine settings, with their mnemonics (nst_client.settings
#: names them by their keys): the script registers its arguments with these, and messages
#: name the fields so (label() drops the mnemonic).
STYLE_FIELD = "Style image"
#: The labels of a style row's fields (style 2 and 3 add their number: row_label).
STYLE_LABEL = "St_yle image"
REGION_LABEL = "Re_gion"
CHANNEL_LABEL = "C_hannel"
ENGINE_FIELDS = {
    "start_on_demand": "Start the _engine when needed",
    "endpoint": "Engine _address",
    "curve_server_key": "Engine public _key",
    "curve_client_cert": "Your secret _certificate",
}


def label(text: str) -> str:
    """A dialog label as the user reads it: "Engine _address" -> "Engine address"."""
    return text.replace("_", "")


class PluginError(Exception):
    """A failure to show the user as is: the message says what happened and what to do."""


# --- the styles' rows and regions ------------------------------------------------------------

#: Where a style goes: the procedure's region choices.
REST, WHOLE, SELECTION, CHANNEL = "rest", "whole", "selection", "channel"
#: Each region choice: its label and help, in the dialog's order.
REGIONS = {
    REST: ("The rest of the image", "Where no other style's region goes (all of it when alone)"),
    WHOLE: ("The whole image", "Everywhere, mixed with the other styles inside their regions"),
    SELECTION: ("The current selection", "What is selected now; a soft edge blends the style"),
    CHANNEL: ("A channel (saved selection)", "The channel below: white = all of it, black = none"),
}
#: How messages name each region: "the rest of the image".
REGION_WORDS = {key: text[:1].lower() + text[1:] for key, (text, _) in REGIONS.items()}
#: The dialog's style rows: the procedure's first style and two more.
STYLE_ROWS = 3
#: A style row's procedure arguments (argument_name numbers them), in the dialog's order.
STYLE_ROW_ARGS = ("style-file", "strength", "region", "region-channel")


def default_region(number: int) -> str:
    """Style 1 takes the rest of the image (all of it when alone: the filter as it always
    was); a style added to it goes where the selection is (select the sky, add its style)."""
    return REST if number == 1 else SELECTION


def argument_name(name: str, number: int) -> str:
    """A style row's procedure argument: "style-file" for style 1, "style-file-2", ..."""
    return name if number == 1 else f"{name}-{number}"


def row_label(text: str, number: int) -> str:
    """A style row's field label: "St_yle image" for style 1, "St_yle image 2", ..."""
    return text if number == 1 else f"{text} {number}"


def region_help(number: int) -> str:
    return (
        f"Where style {number} goes: the rest of the image (where no other style goes; all of "
        f"it when alone), the whole image, the current selection, or a channel (a saved "
        f"selection, chosen below)"
    )


@dataclass(frozen=True)
class StyleChoice:
    """One style row of the dialog: its style file, strength and region."""

    number: int
    path: str = ""
    strength: float = STRENGTH[2]
    #: One of REGIONS' ids; "" stands for the row's default.
    region: str = ""
    #: The channel chosen for the CHANNEL region, by name (messages); None: none chosen.
    channel: str | None = None

    @property
    def where(self) -> str:
        return self.region or default_region(self.number)

    def field(self, text: str) -> str:
        """A field of this row as messages name it: '"Region 2"'."""
        return f'"{label(row_label(text, self.number))}"'


@dataclass(frozen=True)
class JobArgs:
    """The procedure's values, as GIMP hands them over (GIMP keeps each in its range)."""

    style_path: str
    strength: float = STRENGTH[2]
    quality: str = P.DEFAULT_QUALITY
    time_limit: int = TIME_LIMIT[2]
    size: int = SIZE[2]
    iterations: int = ITERATIONS[2]
    preserve_colors: bool = False
    seed: int = 0
    #: The engine settings of the dialog; blank: the installed ones.
    endpoint: str = ""
    curve_server_key: str = ""
    curve_client_cert: str = ""
    start_on_demand: bool = True
    #: Style 1's region and the name of the channel chosen for it.
    region: str = REST
    channel: str | None = None
    #: Styles 2 and 3 as the dialog's rows hold them (a row without a file is not used).
    more_styles: tuple[StyleChoice, ...] = ()

    def style_choices(self) -> tuple[StyleChoice, ...]:
        first = StyleChoice(1, self.style_path, self.strength, self.region, self.channel)
        return (first, *self.more_styles)

    def engine_settings(self) -> dict[str, object]:
        """The dialog's engine settings, as nst_client.settings.load's overrides."""
        return {
            "endpoint": self.endpoint,
            "curve_server_key": self.curve_server_key,
            "curve_client_cert": self.curve_client_cert,
            "start_on_demand": self.start_on_demand,
        }


def build_params(args: JobArgs, area: tuple[int, int]) -> dict[str, Any]:
    """The job's parameters for a layer area of (width, height): the editors' one mapping
    (nst_client.params.editor_params); iterations only when a script fixed them."""
    return P.editor_params(
        quality=args.quality,
        strength=args.strength,
        preserve_colors=args.preserve_colors,
        area=area,
        time_limit_s=args.time_limit,
        size=args.size,
        seed=args.seed,
        iterations=args.iterations,
    )


def run_iterations(value: int, interactive: bool) -> int:
    """The `iterations` a run uses: a script's (non-interactive) count; 0 for a dialog run or
    its repeat, whose saved values may hold a count the dialog does not show (an older
    version's 300), which must not override the quality the user sees."""
    return 0 if interactive else int(value)


def style_size(width: int, height: int, size: int) -> tuple[int, int]:
    """A style image's size once scaled down to the editors' limit (unchanged when within)."""
    limit = P.style_side_limit(size)
    longest = max(width, height)
    if longest <= limit:
        return width, height
    k = limit / longest
    return max(1, round(width * k)), max(1, round(height * k))


def result_layer_name(source_name: str, *style_paths: str) -> str:
    """'Background (starry-night)': the source layer's name and the style files' ('Background
    (starry-night + swirls)' for a style per region)."""
    stems = dict.fromkeys(Path(path).stem or "style" for path in style_paths)  # each once
    return f"{source_name} ({' + '.join(stems) or 'style'})"


def progress_text(progress: Progress) -> str:
    return f"{TITLE}: {progress.text()}"


def done_text(seconds: float) -> str:
    return f"{TITLE}: done in {format_duration(seconds)}"


# --- a style per region ----------------------------------------------------------------------


@dataclass(frozen=True)
class StylePlan:
    """The styles a run sends, and how their regions decide what it sends."""

    styles: tuple[StyleChoice, ...]
    #: A style per region (masks, a strength each); False: one style over the layer, as the
    #: filter always did.
    regions: bool
    #: The selection limits the result, as in every GIMP filter: the run sends the layer's part
    #: under it and the new layer is masked by it. False when a style takes it as its region.
    selection_limits: bool

    @property
    def masked(self) -> tuple[StyleChoice, ...]:
        """The styles whose region is a mask read from GIMP (the selection, a channel)."""
        return tuple(s for s in self.styles if s.where in (SELECTION, CHANNEL))

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(s.path for s in self.styles)


def plan_styles(args: JobArgs, has_selection: bool) -> StylePlan:
    """The styles of the dialog's rows that a run uses, checked before any pixel is read: a
    row without a file is unused, unless its region was changed (a file forgotten)."""
    used = []
    for style in args.style_choices():
        where = style.where
        if where not in REGION_WORDS:
            names = ", ".join(REGION_WORDS)
            raise PluginError(f"Style {style.number}'s region {where!r} is not one of: {names}.")
        if style.number > 1 and not style.path:
            if where != default_region(style.number):
                raise PluginError(
                    f"Style {style.number} has a region, {REGION_WORDS[where]}, but no image: "
                    f"choose its {style.field(STYLE_FIELD)}, or set its "
                    f"{style.field(REGION_LABEL)} back to "
                    f"{REGION_WORDS[default_region(style.number)]}."
                )
            continue
        check_style_path(style.path, style.number)
        if where == SELECTION and not has_selection:
            raise PluginError(
                f"Style {style.number}'s region is the current selection, but nothing is "
                f"selected: select where style {style.number} goes, or choose another "
                f"{style.field(REGION_LABEL)}."
            )
        if where == CHANNEL and style.channel is None:
            raise PluginError(
                f"Style {style.number}'s region is a channel, but no channel is chosen: choose "
                f"one of the image's channels (a saved selection) as "
                f"{style.field(CHANNEL_LABEL)}."
            )
        used.append(style)
    whole = [s.number for s in used if s.where == WHOLE]
    for style in used:
        if style.where == REST and whole:
            raise PluginError(
                f"Style {style.number}'s region, the rest of the image, is empty: style "
                f"{whole[0]} covers the whole image. Give style {whole[0]} a region of its own, "
                f'or choose "The whole image" for both to mix them everywhere.'
            )
    regions = len(used) > 1 or used[0].where in (SELECTION, CHANNEL)
    selection_limits = has_selection and not any(s.where == SELECTION for s in used)
    return StylePlan(tuple(used), regions, selection_limits)


def region_words(style: StyleChoice) -> str:
    """'the channel "Sky"', 'the current selection': a region as messages name it."""
    if style.where == CHANNEL:
        return f'the channel "{style.channel}"'
    return REGION_WORDS[style.where]


def foreign_channel_message(style: StyleChoice) -> str:
    """A channel of another image (GIMP's last-used values may hold one)."""
    return (
        f'The channel "{style.channel}" chosen for style {style.number} is not in this image: '
        f"choose one of this image's channels as {style.field(CHANNEL_LABEL)}."
    )


@dataclass(frozen=True)
class Regions:
    """The rectangle a run sends, within the area it looked at, and each style's mask there."""

    box: Box
    #: Style number -> its mask over box (one channel of mask_dtype); None: no mask.
    masks: dict[int, bytes | None]


def region_masks(
    plan: StylePlan, area: tuple[int, int], read: Mapping[int, bytes], dtype: str
) -> Regions:
    """Each style's mask over the rectangle to send. read: each masked style's mask over the
    whole area (the layer, or its part under a selection that limits the result). The
    rectangle is the area when a style takes the whole image or the rest, else the regions'
    bounds: where no region reaches the result is the photo, so it need not be sent."""
    width, height = area
    bounds = {}
    for style in plan.masked:
        found = mask_bounds(read[style.number], width, dtype)
        if found is None:
            within = "the layer's selected part" if plan.selection_limits else "the layer"
            raise PluginError(
                f"Style {style.number}'s region, {region_words(style)}, is empty: it covers "
                f"none of {within}. Choose another {style.field(REGION_LABEL)}, or mark "
                f"where style {style.number} goes."
            )
        bounds[style.number] = found
    covers_all = any(s.where in (WHOLE, REST) for s in plan.styles)
    box = (0, 0, width, height) if covers_all else union(list(bounds.values()))
    masks: dict[int, bytes | None] = {n: crop_mask(read[n], width, dtype, box) for n in bounds}
    rest: bytes | None = None
    on_rest = [s for s in plan.styles if s.where == REST]
    if on_rest and masks:
        rest = rest_of([m for m in masks.values() if m is not None], dtype)
        if not any(rest):
            raise PluginError(
                f"Style {on_rest[0].number}'s region, the rest of the image, is empty: the "
                f"other styles' regions cover all of the layer. Choose another "
                f"{on_rest[0].field(REGION_LABEL)}."
            )
    for style in plan.styles:
        if style.where in (WHOLE, REST):
            masks[style.number] = rest if style.where == REST else None
    return Regions(box, masks)


def raw_styles(
    plan: StylePlan,
    read_style: Callable[[str], RawImage],
    regions: Regions | None = None,
    dtype: str = "u8",
) -> list[RawStyle]:
    """The job's styles: one style as the filter always sent it, or a style per region with
    its mask (dtype: mask_dtype's) and its own strength. read_style(path) reads a style
    file with GIMP's loaders, once a file."""
    read: dict[str, RawImage] = {}

    def image(path: str) -> RawImage:
        if path not in read:
            read[path] = read_style(path)
        return read[path]

    if not plan.regions or regions is None:
        return [RawStyle(image(plan.styles[0].path))]
    _, _, width, height = regions.box
    out = []
    for style in plan.styles:
        data = regions.masks[style.number]
        mask = None if data is None else (layouts.describe(width, height, 1, dtype, 0), data)
        out.append(RawStyle(image(style.path), 1.0, mask, style.strength))
    return out


# --- the settings --------------------------------------------------------------------------


def _field(key: str) -> str:
    return f'"{label(ENGINE_FIELDS[key])}" in the dialog'


#: How the settings loader and the job's messages name each engine setting of the dialog.
FIELD_LABELS = {key: _field(key) for key in ENGINE_FIELDS}
WORDS = job.ClientWords(CLIENT_NAME, REINSTALL, FIELD_LABELS, "the dialog's engine settings")


def load_settings(
    plugin_dir: Path,
    dialog: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The installed settings (nst_config.json beside the plug-in, the NST_* variables on
    top), then the dialog's engine settings (JobArgs.engine_settings; blank: installed)."""
    try:
        return load(plugin_dir / CONFIG_NAME, env, overrides=dialog, labels=FIELD_LABELS)
    except SettingsError as exc:
        raise PluginError(job.settings_message(exc, WORDS)) from exc


def installed_start_on_demand(plugin_dir: Path, env: Mapping[str, str] | None = None) -> bool:
    """The installed start_on_demand (`nst install-plugin gimp --no-start-on-demand` turns it
    off): the default of the dialog's checkbox. True when the settings cannot be read (the
    run says why)."""
    try:
        return load(plugin_dir / CONFIG_NAME, env).start_on_demand
    except SettingsError:
        return True


# --- the engine ----------------------------------------------------------------------------


def check_style_path(path: str, number: int = 1) -> None:
    field = row_label(STYLE_FIELD, number)
    if not path:
        raise PluginError(f'No style image was chosen: choose an image file as "{field}".')
    if not os.path.isfile(path):
        raise PluginError(
            f'The style image {path} does not exist: choose an image file as "{field}".'
        )


def run_job(
    settings: Settings,
    content: RawImage,
    style_path: str,
    read_style: Callable[[str], RawImage],
    params: Mapping[str, Any],
    **hooks: Any,
) -> JobResult:
    """One style over the whole content (run_styles): read_style(path) reads its file."""
    check_style_path(style_path)
    return run_styles(
        settings, content, lambda: [RawStyle(read_style(style_path))], params, **hooks
    )


def run_styles(
    settings: Settings,
    content: RawImage,
    styles: Callable[[], Sequence[RawStyle]],
    params: Mapping[str, Any],
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_state: Callable[[EngineState], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    on_note: Callable[[str], None] | None = None,
    connect_fn: job.Connect | None = None,
    ensure_fn: job.Ensure | None = None,
    probe_fn: job.Probe | None = None,
) -> JobResult:
    """One job on the engine (nst_client.job.run_job): the result in the content's size, or
    PluginError with the job's message. styles() reads the style files with GIMP's loaders
    (raw_styles), called once the engine has answered. JobCancelled passes through: the user
    asked."""

    def on_event(event: job.JobEvent) -> None:
        if isinstance(event, job.EngineChanged) and on_state is not None:
            on_state(event.state)
        elif isinstance(event, job.Progressed) and on_progress is not None:
            on_progress(event.progress)
        elif isinstance(event, job.Welcomed) and event.note and on_note is not None:
            on_note(event.note)

    try:
        return job.run_job(
            settings,
            WORDS,
            content,
            styles,
            params,
            on_event=on_event,
            should_cancel=should_cancel,
            connect_fn=connect_fn,
            ensure_fn=ensure_fn,
            probe_fn=probe_fn,
        )
    except job.JobFailed as exc:
        raise PluginError(exc.message) from exc
