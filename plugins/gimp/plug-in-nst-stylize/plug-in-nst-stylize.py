#!/usr/bin/env python3
"""GIMP 3 plug-in: Filters > Artistic > Neural Style Transfer... through the NST daemon.

Thin on purpose: no torch, no numpy, no PIL. GIMP reads and writes the pixels (GEGL), the
vendored `nst_client` (copied here by `nst install-plugin gimp`) carries them to the daemon,
either straight over ZeroMQ (when GIMP's Python has pyzmq + msgpack) or through the bridge,
a subprocess of the product's own Python. The source layer is only ever read.

This file is the GIMP glue (registration, pixels, dialogs); the rules that need no GIMP are in
nst_gimp_job.py beside it. GIMP 3 runs only the file named like its folder.
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
    """Interactive runs: a GIMP progress bar with a Cancel button that cancels the job."""

    def __init__(self, title: str) -> None:
        from gi.repository import GimpUi, Gtk

        self._gtk = Gtk
        self.cancelled = False
        self.dialog = GimpUi.Dialog(title=title, role=PROC_NAME)
        self.dialog.add_button("_Cancel", Gtk.ResponseType.CANCEL)
        self.dialog.connect("response", self._on_response)
        self.dialog.connect("delete-event", self._on_delete)
        self.bar = GimpUi.ProgressBar.new()  # becomes this plug-in's progress
        self.bar.set_size_request(360, -1)
        box = self.dialog.get_content_area()
        box.set_border_width(12)
        box.pack_start(self.bar, False, False, 0)
        self.dialog.show_all()
        self.pump()

    def _on_response(self, _dialog: Any, _response: Any) -> None:
        self.cancelled = True
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
        dialog = GimpUi.ProcedureDialog.new(procedure, config, "Neural Style Transfer")
        dialog.fill(None)
        ok = dialog.run()
        dialog.destroy()
        if not ok:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)

    ui = (
        ProgressDialog("Neural Style Transfer: working")
        if run_mode == Gimp.RunMode.INTERACTIVE
        else None
    )
    try:
        layer = stylize_layer(image, source, job_args(config), ui)
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


def job_args(config: Gimp.ProcedureConfig) -> job.JobArgs:
    """The procedure's values."""
    style_file = config.get_property("style-file")
    return job.JobArgs(
        style_path=(style_file.get_path() or "") if style_file is not None else "",
        strength=float(config.get_property("strength")),
        iterations=int(config.get_property("iterations")),
        size=int(config.get_property("size")),
        preserve_colors=bool(config.get_property("preserve-colors")),
        seed=int(config.get_property("seed")),
        endpoint=config.get_property("endpoint") or "",
    )


def stylize_layer(
    image: Gimp.Image, source: Gimp.Layer, args: job.JobArgs, ui: ProgressDialog | None
) -> Gimp.Layer:
    """Send the layer (or its part under the selection) and add the result above it."""
    settings = job.load_settings(PLUGIN_DIR, args.endpoint)
    ok, x, y, w, h = source.mask_intersect()
    if not ok or w <= 0 or h <= 0:
        raise job.PluginError(
            "The selection does not cover any of the layer: select part of the layer or nothing."
        )
    has_selection = not Gimp.Selection.is_empty(image)
    dtype = layouts.gimp_dtype(image.get_precision().value_nick)
    channels = layouts.channel_count(source.is_gray(), source.has_alpha())

    Gimp.progress_init(f"{job.TITLE}: sending the layer")
    content = (
        layouts.describe(w, h, channels, dtype, 0),
        read_pixels(source, x, y, w, h, dtype, channels),
    )

    def on_progress(progress: Progress) -> None:
        Gimp.progress_set_text(job.progress_text(progress))
        Gimp.progress_update(progress.fraction)

    def should_cancel() -> bool:
        return ui.pump() if ui is not None else False

    started = time.monotonic()
    done = job.run_job(
        settings,
        content,
        args.style_path,
        lambda path: load_style(path, dtype, args.size),
        job.build_params(args),
        on_progress=on_progress,
        should_cancel=should_cancel,
        on_note=Gimp.message,
    )
    Gimp.progress_set_text(job.done_text(time.monotonic() - started))
    Gimp.progress_update(1.0)
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
            "Sends the active layer (or its part under the selection) to the NST daemon "
            "and puts the stylized result in a new layer above it. Start the daemon with "
            "`nst-daemon` first.",
            name,
        )
        proc.set_attribution("NST Studio", "NST Studio", "2025")
        flags = GObject.ParamFlags.READWRITE
        proc.add_file_argument(
            "style-file",
            "St_yle image",
            "Image whose style to apply",
            Gimp.FileChooserAction.OPEN,
            False,
            None,
            flags,
        )
        proc.add_double_argument(
            "strength",
            "S_trength",
            "How much style: 0 = a hint, 50 = the classic look, 100 = only the painting's texture",
            *job.STRENGTH,
            flags,
        )
        proc.add_int_argument(
            "iterations",
            "_Quality (iterations)",
            "Optimizer iterations per scale",
            *job.ITERATIONS,
            flags,
        )
        proc.add_int_argument(
            "size",
            "_Working size",
            "Long side in pixels at which the style is computed",
            *job.SIZE,
            flags,
        )
        proc.add_boolean_argument(
            "preserve-colors",
            "_Preserve colours",
            "Keep the layer's colours; transfer only the texture",
            False,
            flags,
        )
        proc.add_int_argument("seed", "See_d", "Random seed", *job.SEED, flags)
        proc.add_string_argument(
            "endpoint",
            "Daemon _endpoint",
            "ZeroMQ endpoint of the NST daemon (empty: the installed setting)",
            "",
            flags,
        )
        proc.add_layer_return_value("layer", "Layer", "The new stylized layer", False, flags)
        return proc


if __name__ == "__main__":
    Gimp.main(NstStylize.__gtype__, sys.argv)
