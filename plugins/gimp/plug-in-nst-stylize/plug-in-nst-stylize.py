#!/usr/bin/env python3
"""GIMP 3 plug-in: Filters > Artistic > Neural Style Transfer... through the NST daemon.

Thin on purpose: no torch, no numpy, no PIL. GIMP reads and writes the pixels (GEGL), the
vendored `nst_client` (copied here by `nst install-plugin gimp`) carries them to the daemon,
either straight over ZeroMQ (when GIMP's Python has pyzmq + msgpack) or through the bridge,
a subprocess of the product's own Python. The source layer is only ever read.

When no engine answers at a local address, the plug-in starts the installed one (nst_client.
launcher) and shows "Starting the style engine..." while it loads; the procedure dialog shows
the engine's state, kept current by a background thread. Up to three styles, each on its
region (the rest of the image, the whole image, the selection or a channel), go as one job;
the result is one new layer. This file is the GIMP glue (registration, pixels, the run); the
procedure's values and dialogs are in nst_gimp_ui.py, and the rules that need no GIMP in
nst_gimp_job.py and nst_gimp_masks.py beside it. GIMP 3 runs only the file named like its
folder.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
gi.require_version("GimpUi", "3.0")
from gi.repository import Gegl, Gimp, Gio, GLib, GObject  # noqa: E402

PLUGIN_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(PLUGIN_DIR))
import nst_gimp_job as job  # noqa: E402
import nst_gimp_masks as masks  # noqa: E402
from nst_gimp_ui import ProgressDialog, job_args, region_channels, run_dialog  # noqa: E402

from nst_client import layouts  # noqa: E402
from nst_client.client import JobCancelled, RawImage, RawStyle  # noqa: E402
from nst_client.launcher import EngineState  # noqa: E402
from nst_client.progress import Progress  # noqa: E402

PROC_NAME = job.PROC_NAME

# --- pixels --------------------------------------------------------------------------------


def read_pixels(
    drawable: Gimp.Drawable, x: int, y: int, w: int, h: int, dtype: str, channels: int
) -> bytes:
    """Drawable-local rectangle as wire bytes (the Babl format is the wire layout)."""
    rect = Gegl.Rectangle.new(x, y, w, h)
    fmt = layouts.gimp_format(dtype, channels)
    data = drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP)
    return bytes(data)


def read_mask(drawable: Gimp.Drawable, source: Gimp.Layer, box: job.Box, dtype: str) -> bytes:
    """A mask (the selection, a channel) over a box of the source layer, as one grey channel;
    nothing (0) outside the mask's own extent. Soft values stay as they are."""
    _, lx, ly = source.get_offsets()
    _, mx, my = drawable.get_offsets()
    x, y, w, h = box
    rect = Gegl.Rectangle.new(lx + x - mx, ly + y - my, w, h)
    data = drawable.get_buffer().get(rect, 1.0, masks.mask_format(dtype), Gegl.AbyssPolicy.NONE)
    return bytes(data)


def load_style(path: str, dtype: str, size: int) -> RawImage:
    """Open the style file with GIMP's own loaders, read it as RGB, close it again."""
    try:
        style = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    except GLib.Error as exc:
        raise job.PluginError(f"GIMP cannot open the style image {path}: {exc.message}") from exc
    if style is None:
        raise job.PluginError(f"GIMP cannot open the style image {path}.")
    try:
        if style.get_base_type() != Gimp.ImageBaseType.RGB:
            style.convert_rgb()
        layer = style.flatten()
        w, h = layer.get_width(), layer.get_height()
        sw, sh = job.style_size(w, h, size)
        if (sw, sh) != (w, h):
            style.scale(sw, sh)
            layer = style.get_layers()[0]
        data = read_pixels(layer, 0, 0, sw, sh, dtype, 3)
        return layouts.describe(sw, sh, 3, dtype, 0), data
    finally:
        style.delete()


# --- the procedure -------------------------------------------------------------------------


def _fail(procedure: Gimp.Procedure, message: str) -> Gimp.ValueArray:
    return procedure.new_return_values(
        Gimp.PDBStatusType.EXECUTION_ERROR,
        GLib.Error.new_literal(Gimp.PlugIn.error_quark(), message, 0),
    )


def _success(layer: Gimp.Layer) -> Gimp.ValueArray:
    return Gimp.ValueArray.new_from_values(
        [
            GObject.Value(Gimp.PDBStatusType, Gimp.PDBStatusType.SUCCESS),
            GObject.Value(Gimp.Layer, layer),
        ]
    )


def run(
    procedure: Gimp.Procedure,
    run_mode: Gimp.RunMode,
    image: Gimp.Image,
    drawables: list[Gimp.Drawable],
    config: Gimp.ProcedureConfig,
    _data: Any,
) -> Gimp.ValueArray:
    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
        return _fail(
            procedure,
            "Neural Style Transfer works on one layer: select exactly one "
            "layer (not a mask or channel).",
        )
    source = drawables[0]

    if run_mode == Gimp.RunMode.INTERACTIVE:
        from gi.repository import GimpUi

        GimpUi.init(PROC_NAME)
        if not run_dialog(procedure, config, image):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)

    ui = (
        ProgressDialog("Neural Style Transfer: working")
        if run_mode == Gimp.RunMode.INTERACTIVE
        else None
    )
    try:
        args = job_args(config, run_mode)
        layer = stylize_layer(image, source, args, region_channels(config), ui)
    except job.PluginError as exc:
        return _fail(procedure, str(exc))
    except JobCancelled:
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    except Exception as exc:  # a bug: still a message in GIMP, the traceback on stderr
        traceback.print_exc()
        return _fail(procedure, f"Neural Style Transfer failed unexpectedly: {exc!r}")
    finally:
        if ui is not None:
            ui.close()
    Gimp.displays_flush()
    return _success(layer)


def region_drawable(
    image: Gimp.Image, style: job.StyleChoice, channels: dict[int, Gimp.Channel | None]
) -> Gimp.Drawable:
    """Where a style's mask is read: the selection, or its row's channel of this image."""
    if style.where == job.SELECTION:
        return image.get_selection()
    channel = channels[style.number]
    if channel is None or not channel.is_valid() or channel.get_image().get_id() != image.get_id():
        raise job.PluginError(job.foreign_channel_message(style))
    return channel


def stylize_layer(
    image: Gimp.Image,
    source: Gimp.Layer,
    args: job.JobArgs,
    channels: dict[int, Gimp.Channel | None],
    ui: ProgressDialog | None,
) -> Gimp.Layer:
    """Send the layer (or its part under the selection, or the part its styles' regions
    cover) with its styles and their masks, and add the result above it."""
    settings = job.load_settings(PLUGIN_DIR, args.engine_settings())
    plan = job.plan_styles(args, not Gimp.Selection.is_empty(image))
    drawables = {s.number: region_drawable(image, s, channels) for s in plan.masked}
    x, y, w, h = 0, 0, source.get_width(), source.get_height()
    if plan.selection_limits:
        ok, x, y, w, h = source.mask_intersect()
        if not ok or w <= 0 or h <= 0:
            raise job.PluginError(
                "The selection does not cover any of the layer: select part of the layer or "
                "nothing."
            )
    dtype = layouts.gimp_dtype(image.get_precision().value_nick)
    channel_count = layouts.channel_count(source.is_gray(), source.has_alpha())
    mask_dtype = masks.mask_dtype(dtype)
    regions = None
    if plan.regions:
        read = {n: read_mask(d, source, (x, y, w, h), mask_dtype) for n, d in drawables.items()}
        regions = job.region_masks(plan, (w, h), read, mask_dtype)
        bx, by, w, h = regions.box
        x, y = x + bx, y + by

    def report(text: str, fraction: float | None) -> None:
        """In GIMP's progress (the image window's status bar) and the dialog's."""
        Gimp.progress_set_text(text)
        if fraction is None:
            Gimp.progress_pulse()
        else:
            Gimp.progress_update(fraction)
        if ui is not None:
            ui.show(text, fraction)

    Gimp.progress_init(f"{job.TITLE}: sending the layer")
    content = (
        layouts.describe(w, h, channel_count, dtype, 0),
        read_pixels(source, x, y, w, h, dtype, channel_count),
    )

    def on_progress(progress: Progress) -> None:
        report(job.progress_text(progress), progress.fraction)

    def on_state(state: EngineState) -> None:  # while the engine starts
        report(state.summary, state.fraction)

    def should_cancel() -> bool:
        return ui.pump() if ui is not None else False

    def read_styles() -> list[RawStyle]:
        """The style files, read once the engine has answered."""
        return job.raw_styles(plan, lambda p: load_style(p, dtype, args.size), regions, mask_dtype)

    started = time.monotonic()
    done = job.run_styles(
        settings,
        content,
        read_styles,
        job.build_params(args, (w, h)),
        on_progress=on_progress,
        on_state=on_state,
        should_cancel=should_cancel,
        on_note=Gimp.message,
    )
    report(job.done_text(time.monotonic() - started), 1.0)
    name = job.result_layer_name(source.get_name(), *plan.paths)
    return add_result_layer(image, source, (x, y, w, h), done.raw, plan.selection_limits, name)


def add_result_layer(
    image: Gimp.Image,
    source: Gimp.Layer,
    box: tuple[int, int, int, int],
    result: RawImage,
    masked: bool,
    name: str,
) -> Gimp.Layer:
    """New layer directly above the source, at its offsets, masked by the selection where it
    limits the result; one undo."""
    x, y, w, h = box
    desc, data = result
    _, ox, oy = source.get_offsets()
    image.undo_group_start()
    try:
        layer = Gimp.Layer.new(
            image, name, w, h, source.type_with_alpha(), 100.0, Gimp.LayerMode.NORMAL
        )
        parent = source.get_parent()
        image.insert_layer(layer, parent, image.get_item_position(source))
        layer.set_offsets(ox + x, oy + y)
        buffer = layer.get_buffer()
        buffer.set(
            Gegl.Rectangle.new(0, 0, w, h),
            layouts.gimp_format(desc["dtype"], desc["channels"]),
            data,
        )
        buffer.flush()
        layer.update(0, 0, w, h)
        if masked:
            mask = layer.create_mask(Gimp.AddMaskType.SELECTION)
            layer.add_mask(mask)
    finally:
        image.undo_group_end()
    return layer


class NstStylize(Gimp.PlugIn):
    """Registers plug-in-nst-stylize with GIMP."""

    def do_query_procedures(self) -> list[str]:
        return [PROC_NAME]

    def do_set_i18n(self, _name: str) -> bool:
        return False

    def do_create_procedure(self, name: str) -> Gimp.Procedure:
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        proc.set_menu_label("Neural Style Transfer...")
        proc.add_menu_path("<Image>/Filters/Artistic")
        proc.set_documentation(
            "Repaint the layer in the style of another image",
            "Sends the active layer (or its part under the selection) to the NST style engine "
            "and puts the stylized result in a new layer above it. Up to three styles, each with "
            "its strength and region (the rest of the image, the whole image, the selection or "
            "a channel). The engine starts when needed (the installed one, on this computer) "
            "and stops on its own when idle.",
            name,
        )
        proc.set_attribution("NST Studio", "NST Studio", "2025")
        flags = GObject.ParamFlags.READWRITE
        proc.add_file_argument(
            "style-file",
            "St_yle image",
            "Image whose style to apply",
            Gimp.FileChooserAction.OPEN,
            True,  # none is allowed through, so the plug-in's own message says what to do
            None,
            flags,
        )
        proc.add_double_argument(
            "strength",
            job.param_label("strength"),
            job.param_help("strength"),
            *job.STRENGTH,
            flags,
        )
        quality = Gimp.Choice.new()
        for number, preset in enumerate(job.P.QUALITIES):
            quality.add(preset.name, number, preset.label, preset.help)
        proc.add_choice_argument(
            "quality",
            job.param_label("quality"),
            job.QUALITY_HELP,
            quality,
            job.P.DEFAULT_QUALITY,
            flags,
        )
        proc.add_int_argument(
            "time-limit",
            f"{job.param_label('time_budget')} (seconds, 0 = none)",
            f"{job.param_help('time_budget')}. 0 = no limit",
            *job.TIME_LIMIT,
            flags,
        )
        proc.add_int_argument(
            "size",
            f"{job.param_label('size')} (0 = auto)",
            f"{job.param_help('size')}. 0 = Auto",
            *job.SIZE,
            flags,
        )
        proc.add_int_argument(
            "iterations",
            f"{job.param_label('iterations')} (scripts; 0 = by quality)",
            f"{job.param_help('iterations')}. 0 = the engine plans them (the dialog does not "
            "show this)",
            *job.ITERATIONS,
            flags,
        )
        proc.add_boolean_argument(
            "preserve-colors",
            job.param_label("preserve_colors"),
            job.param_help("preserve_colors"),
            job.P.DEFAULTS["preserve_colors"],
            flags,
        )
        proc.add_int_argument(
            "seed", job.param_label("seed"), job.param_help("seed"), *job.SEED, flags
        )
        fields = job.ENGINE_FIELDS
        proc.add_boolean_argument(
            "start-on-demand",
            fields["start_on_demand"],
            "Start the installed style engine on this computer when none answers; it stops "
            "on its own when idle",
            job.installed_start_on_demand(PLUGIN_DIR),
            flags,
        )
        proc.add_string_argument(
            "endpoint",
            fields["endpoint"],
            "Where the style engine listens, e.g. tcp://127.0.0.1:5757 (empty: as installed)",
            "",
            flags,
        )
        proc.add_file_argument(
            "curve-server-key",
            fields["curve_server_key"],
            "An engine on another computer: its public key file, server.key (none: as installed)",
            Gimp.FileChooserAction.OPEN,
            True,
            None,
            flags,
        )
        proc.add_file_argument(
            "curve-client-cert",
            fields["curve_client_cert"],
            "An engine on another computer: this computer's secret certificate, "
            "client.key_secret (none: as installed)",
            Gimp.FileChooserAction.OPEN,
            True,
            None,
            flags,
        )
        add_style_rows(proc, flags)
        proc.add_layer_return_value("layer", "Layer", "The new stylized layer", False, flags)
        return proc


def add_style_rows(proc: Gimp.Procedure, flags: GObject.ParamFlags) -> None:
    """Each style row's region and channel, and styles 2 and 3 (after the arguments that
    scripts know, so that their calls still fit)."""
    for n in range(1, job.STYLE_ROWS + 1):
        if n > 1:
            proc.add_file_argument(
                job.argument_name("style-file", n),
                job.row_label(job.STYLE_LABEL, n),
                f"Style {n}: an image whose style goes on its region (none: style {n} is unused)",
                Gimp.FileChooserAction.OPEN,
                True,
                None,
                flags,
            )
            proc.add_double_argument(
                job.argument_name("strength", n),
                job.row_label(job.param_label("strength"), n),
                f"Style {n}: {job.param_help('strength')}",
                *job.STRENGTH,
                flags,
            )
        regions = Gimp.Choice.new()
        for number, (key, (text, why)) in enumerate(job.REGIONS.items()):
            regions.add(key, number, text, why)
        proc.add_choice_argument(
            job.argument_name("region", n),
            job.row_label(job.REGION_LABEL, n),
            job.region_help(n),
            regions,
            job.default_region(n),
            flags,
        )
        proc.add_channel_argument(
            job.argument_name("region-channel", n),
            job.row_label(job.CHANNEL_LABEL, n),
            f"The channel (a saved selection) style {n} goes on when its region is a channel",
            True,
            flags,
        )


if __name__ == "__main__":
    Gimp.main(NstStylize.__gtype__, sys.argv)
