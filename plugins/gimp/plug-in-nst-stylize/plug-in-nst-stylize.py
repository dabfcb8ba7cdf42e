#!/usr/bin/env python3
"""GIMP 3 plug-in: Filters > Artistic > Neural Style Transfer... through the NST daemon.

Thin on purpose: no torch, no numpy, no PIL. GIMP reads and writes the pixels (GEGL), the
vendored `nst_client` (copied here by `nst install-plugin gimp`) carries them to the daemon,
either straight over ZeroMQ (when GIMP's Python has pyzmq + msgpack) or through the bridge,
a subprocess of the product's own Python. The source layer is only ever read.

When no engine answers at a local address, the plug-in starts the installed one (nst_client.
launcher) and shows "Starting the style engine..." while it loads; the procedure dialog shows
the engine's state, kept current by a background thread. This file is the GIMP glue
(registration, pixels, dialogs); the rules that need no GIMP are in nst_gimp_job.py beside it.
GIMP 3 runs only the file named like its folder.
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

from nst_client import layouts  # noqa: E402
from nst_client.client import JobCancelled, RawImage  # noqa: E402
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


class ProgressDialog:
    """Interactive runs: what the job is doing (the engine's start-up, then the job's progress)
    with a Cancel button that cancels it. The dialog shows it itself: GIMP forwards a plug-in's
    progress calls only where it has an interface (the image window's status bar)."""

    def __init__(self, title: str) -> None:
        from gi.repository import GimpUi, Gtk

        self._gtk = Gtk
        self.cancelled = False
        self.dialog = GimpUi.Dialog(title=title, role=PROC_NAME)
        self.dialog.add_button("_Cancel", Gtk.ResponseType.CANCEL)
        self.dialog.connect("response", self._on_response)
        self.dialog.connect("delete-event", self._on_delete)
        self.text = Gtk.Label(label=f"{job.TITLE}: sending the layer")
        self.text.set_xalign(0.0)
        self.text.set_line_wrap(True)
        self.text.set_max_width_chars(52)
        self.bar = Gtk.ProgressBar()
        self.bar.set_size_request(380, -1)
        box = self.dialog.get_content_area()
        box.set_border_width(12)
        box.set_spacing(8)
        box.pack_start(self.text, False, False, 0)
        box.pack_start(self.bar, False, False, 0)
        self.dialog.show_all()
        self.pump()

    def show(self, text: str, fraction: float | None) -> None:
        """TEXT above the bar; the bar at FRACTION (None: it pulses, no figure yet)."""
        if not self.cancelled:
            self.text.set_text(text)
        if fraction is None:
            self.bar.pulse()
        else:
            self.bar.set_fraction(min(max(fraction, 0.0), 1.0))
        self.pump()

    def _on_response(self, _dialog: Any, _response: Any) -> None:
        self.cancelled = True
        self.text.set_text(f"{job.TITLE}: cancelling…")
        Gimp.progress_set_text("Cancelling...")

    def _on_delete(self, *_args: Any) -> bool:
        """Closing the window cancels too; True keeps it open until the job has ended."""
        self._on_response(None, None)
        return True

    def pump(self) -> bool:
        """Let GTK draw and handle clicks; returns whether the user cancelled."""
        while self._gtk.events_pending():
            self._gtk.main_iteration()
        return self.cancelled

    def close(self) -> None:
        self.dialog.destroy()
        self.pump()


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
        if not run_dialog(procedure, config):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)

    ui = (
        ProgressDialog("Neural Style Transfer: working")
        if run_mode == Gimp.RunMode.INTERACTIVE
        else None
    )
    try:
        layer = stylize_layer(image, source, job_args(config, run_mode), ui)
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


def _path(config: Gimp.ProcedureConfig, name: str) -> str:
    """A file argument's path; "" for none."""
    file = config.get_property(name)
    return (file.get_path() or "") if file is not None else ""


def job_args(
    config: Gimp.ProcedureConfig, run_mode: Gimp.RunMode = Gimp.RunMode.INTERACTIVE
) -> job.JobArgs:
    """The procedure's values; `iterations` only from a script (job.run_iterations)."""
    interactive = run_mode != Gimp.RunMode.NONINTERACTIVE
    return job.JobArgs(
        style_path=_path(config, "style-file"),
        strength=float(config.get_property("strength")),
        quality=str(config.get_property("quality")),
        time_limit=int(config.get_property("time-limit")),
        size=int(config.get_property("size")),
        iterations=job.run_iterations(config.get_property("iterations"), interactive),
        preserve_colors=bool(config.get_property("preserve-colors")),
        seed=int(config.get_property("seed")),
        endpoint=config.get_property("endpoint") or "",
        curve_server_key=_path(config, "curve-server-key"),
        curve_client_cert=_path(config, "curve-client-cert"),
        start_on_demand=bool(config.get_property("start-on-demand")),
    )


#: The procedure's arguments that are engine settings (they restart the state line's watch).
ENGINE_ARGS = ("start-on-demand", "endpoint", "curve-server-key", "curve-client-cert")


class EngineStateLine:
    """The dialog's engine state: the plain summary, the details in its tooltip, refreshed by
    a job.StateWatcher thread (GTK is only touched here, through GLib.idle_add)."""

    def __init__(self, label: Any, config: Gimp.ProcedureConfig) -> None:
        self.label = label
        self.config = config
        self.closed = False
        self.label.set_line_wrap(True)
        self.label.set_xalign(0.0)
        self.label.set_max_width_chars(48)
        self.watcher = job.StateWatcher(lambda state: GLib.idle_add(self._show, state))
        self._handlers = [
            config.connect(f"notify::{name}", lambda *_: self.refresh()) for name in ENGINE_ARGS
        ]
        self.refresh()

    def refresh(self) -> None:
        """Follow the dialog's engine settings; a setting that cannot be used is the line."""
        try:
            settings = job.load_settings(PLUGIN_DIR, job_args(self.config).engine_settings())
        except job.PluginError as exc:
            self.watcher.watch(None)
            self._set(str(exc), "")
            return
        self._set("Checking the style engine…", f"endpoint {settings.endpoint}")
        self.watcher.watch(settings)

    def _show(self, state: EngineState) -> bool:
        if not self.closed:
            self._set(state.summary, state.details)
        return False  # once

    def _set(self, summary: str, details: str) -> None:
        self.label.set_text(summary)
        self.label.set_tooltip_text(details or None)

    def close(self) -> None:
        self.closed = True
        for handler in self._handlers:
            self.config.disconnect(handler)
        self.watcher.stop()


def run_dialog(procedure: Gimp.Procedure, config: Gimp.ProcedureConfig) -> bool:
    """The procedure dialog: the job's values, then the engine's state and settings in a
    frame. True on OK."""
    from gi.repository import GimpUi

    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Neural Style Transfer")
    dialog.get_label("engine-title", "Style engine", False, False)
    label = dialog.get_label("engine-state", "Checking the style engine…", False, False)
    dialog.fill_box("engine-box", ["engine-state", *ENGINE_ARGS])
    dialog.fill_frame("engine-frame", "engine-title", False, "engine-box")
    # The iterations argument is for scripts: the dialog offers the quality and a time limit.
    dialog.fill(
        [
            "style-file",
            "strength",
            "quality",
            "time-limit",
            "size",
            "preserve-colors",
            "seed",
            "engine-frame",
        ]
    )
    quality = dialog.get_widget("quality", GObject.TYPE_NONE)

    def grey_quality(*_args: Any) -> None:
        """The quality does not apply while there is a time limit: greyed, and says why."""
        limited = int(config.get_property("time-limit")) > 0
        quality.set_sensitive(not limited)
        quality.set_tooltip_text(job.P.QUALITY_WHILE_LIMITED if limited else job.QUALITY_HELP)

    grey_quality()
    limit_handler = config.connect("notify::time-limit", grey_quality)
    state_line = EngineStateLine(label, config)
    try:
        return bool(dialog.run())
    finally:
        config.disconnect(limit_handler)
        state_line.close()
        dialog.destroy()


def stylize_layer(
    image: Gimp.Image, source: Gimp.Layer, args: job.JobArgs, ui: ProgressDialog | None
) -> Gimp.Layer:
    """Send the layer (or its part under the selection) and add the result above it."""
    settings = job.load_settings(PLUGIN_DIR, args.engine_settings())
    ok, x, y, w, h = source.mask_intersect()
    if not ok or w <= 0 or h <= 0:
        raise job.PluginError(
            "The selection does not cover any of the layer: select part of the layer or nothing."
        )
    has_selection = not Gimp.Selection.is_empty(image)
    dtype = layouts.gimp_dtype(image.get_precision().value_nick)
    channels = layouts.channel_count(source.is_gray(), source.has_alpha())

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
        layouts.describe(w, h, channels, dtype, 0),
        read_pixels(source, x, y, w, h, dtype, channels),
    )

    def on_progress(progress: Progress) -> None:
        report(job.progress_text(progress), progress.fraction)

    def on_state(state: EngineState) -> None:  # while the engine starts
        report(state.summary, state.fraction)

    def should_cancel() -> bool:
        return ui.pump() if ui is not None else False

    started = time.monotonic()
    done = job.run_job(
        settings,
        content,
        args.style_path,
        lambda path: load_style(path, dtype, args.size),
        job.build_params(args, (w, h)),
        on_progress=on_progress,
        on_state=on_state,
        should_cancel=should_cancel,
        on_note=Gimp.message,
    )
    report(job.done_text(time.monotonic() - started), 1.0)
    name = job.result_layer_name(source.get_name(), args.style_path)
    return add_result_layer(image, source, (x, y, w, h), done.raw, has_selection, name)


def add_result_layer(
    image: Gimp.Image,
    source: Gimp.Layer,
    box: tuple[int, int, int, int],
    result: RawImage,
    has_selection: bool,
    name: str,
) -> Gimp.Layer:
    """New layer directly above the source, at its offsets, masked by the selection; one undo."""
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
        if has_selection:
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
            "and puts the stylized result in a new layer above it. The engine starts when "
            "needed (the installed one, on this computer) and stops on its own when idle.",
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
        proc.add_layer_return_value("layer", "Layer", "The new stylized layer", False, flags)
        return proc


if __name__ == "__main__":
    Gimp.main(NstStylize.__gtype__, sys.argv)
