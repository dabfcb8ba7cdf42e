#!/usr/bin/env python3
"""GIMP 3 plug-in: Filters > Artistic > Neural Style Transfer... through the NST daemon.

Thin on purpose: no torch, no numpy, no PIL. GIMP reads and writes the pixels (GEGL), the
vendored `nst_client` (copied here by `nst install-plugin gimp`) carries them to the daemon,
either straight over ZeroMQ (when GIMP's Python has pyzmq + msgpack) or through the bridge,
a subprocess of the product's own Python. The source layer is only ever read.
"""

from __future__ import annotations

import json
import os
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
from nst_client import client as nst  # noqa: E402
from nst_client import layouts  # noqa: E402

PROC_NAME = "plug-in-nst-stylize"
CONFIG_FILE = PLUGIN_DIR / "nst_config.json"
#: Style images are scaled down in GIMP to at most this many times the working size first:
#: the daemon resizes them anyway, and a 24-megapixel photo need not cross the socket.
STYLE_MAX_FACTOR = 2
#: How long a job may stay silent (no progress, no pong) before the daemon counts as gone.
IDLE_TIMEOUT_S = 60.0


class PluginError(Exception):
    """A failure to show the user as is: the message says what happened and what to do."""


# --- configuration -----------------------------------------------------------------------


def load_config() -> dict[str, Any]:
    """nst_config.json written at install time, with $NST_TRANSPORT / $NST_ENDPOINT on top."""
    config: dict[str, Any] = {
        "endpoint": "tcp://127.0.0.1:5757",
        "transport": "auto",
        "python": None,
        "timeout_s": 5.0,
    }
    try:
        config.update(json.loads(CONFIG_FILE.read_text()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise PluginError(
            f"Cannot read the plug-in settings {CONFIG_FILE}: {exc}. "
            "Reinstall with `nst install-plugin gimp`."
        ) from exc
    if os.environ.get("NST_TRANSPORT"):
        config["transport"] = os.environ["NST_TRANSPORT"]
    if os.environ.get("NST_ENDPOINT"):
        config["endpoint"] = os.environ["NST_ENDPOINT"]
    if config["transport"] not in ("auto", "zmq", "bridge"):
        raise PluginError(
            f"Transport {config['transport']!r} in the settings must be auto, zmq or bridge."
        )
    return config


# --- pixels ------------------------------------------------------------------------------


def wire_dtype(image: Gimp.Image) -> str:
    """The wire dtype for the image's precision: u8, u16, else f32 (u32/half/double too)."""
    name = image.get_precision().value_nick  # e.g. "u8-non-linear", "half-linear"
    if name.startswith("u8"):
        return "u8"
    if name.startswith("u16"):
        return "u16"
    return "f32"


def channels_of(drawable: Gimp.Drawable) -> int:
    """1, 2, 3 or 4: grey or RGB, with or without alpha."""
    base = 1 if drawable.is_gray() else 3
    return base + (1 if drawable.has_alpha() else 0)


def read_pixels(
    drawable: Gimp.Drawable, x: int, y: int, w: int, h: int, dtype: str, channels: int
) -> bytes:
    """Drawable-local rectangle as wire bytes (the Babl format is the wire layout)."""
    rect = Gegl.Rectangle.new(x, y, w, h)
    fmt = layouts.gimp_format(dtype, channels)
    data = drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.CLAMP)
    return bytes(data)


def load_style(path: str, dtype: str, size: int) -> tuple[dict[str, Any], bytes]:
    """Open the style file with GIMP's own loaders, read it as RGB, close it again."""
    if not path or not os.path.isfile(path):
        raise PluginError(
            f"Style image {path or '(none)'} does not exist: choose an image file as the style."
        )
    try:
        style = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    except GLib.Error as exc:
        raise PluginError(f"GIMP cannot open the style image {path}: {exc.message}") from exc
    if style is None:
        raise PluginError(f"GIMP cannot open the style image {path}.")
    try:
        if style.get_base_type() != Gimp.ImageBaseType.RGB:
            style.convert_rgb()
        layer = style.flatten()
        w, h = layer.get_width(), layer.get_height()
        limit = max(size, 256) * STYLE_MAX_FACTOR
        if max(w, h) > limit:
            k = limit / max(w, h)
            w, h = max(1, round(w * k)), max(1, round(h * k))
            style.scale(w, h)
            layer = style.get_layers()[0]
        data = read_pixels(layer, 0, 0, w, h, dtype, 3)
        return layouts.describe(w, h, 3, dtype, 0), data
    finally:
        style.delete()


# --- the daemon --------------------------------------------------------------------------


def progress_text(header: dict[str, Any]) -> tuple[float, str]:
    """(fraction done, status text) from a progress message."""
    it, its = int(header.get("iteration", 0)), max(int(header.get("iterations", 1)), 1)
    scale, scales = int(header.get("scale", 1)), max(int(header.get("scales", 1)), 1)
    elapsed, eta = float(header.get("elapsed_s") or 0.0), header.get("eta_s")
    if eta is not None and elapsed + float(eta) > 0:
        frac = elapsed / (elapsed + float(eta))
    else:
        frac = (min(max(scale - 1, 0), scales - 1) + it / its) / scales
    text = f"Neural style transfer: iteration {it}/{its}"
    if scales > 1:
        text += f", scale {scale}/{scales}"
    if eta is not None:
        text += f", about {_duration(float(eta))} left"
    return min(max(frac, 0.0), 1.0), text


def _duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def stylize(
    content: tuple[dict[str, Any], bytes],
    style: tuple[dict[str, Any], bytes],
    params: dict[str, Any],
    endpoint: str,
    config: dict[str, Any],
    on_progress: Any,
    should_cancel: Any,
) -> tuple[dict[str, Any], bytes]:
    """One job on the daemon; PluginError with a readable message for every failure."""
    timeout = float(config.get("timeout_s") or 5.0)
    try:
        conn = nst.connect(
            endpoint,
            transport=config["transport"],
            python=config.get("python") or None,
            timeout_s=timeout,
            client_name="gimp-plug-in",
        )
    except nst.DaemonUnavailable as exc:
        raise PluginError(str(exc)) from exc
    except ImportError as exc:
        raise PluginError(
            f"The zmq transport needs pyzmq and msgpack in GIMP's Python "
            f'({exc}); set "transport": "bridge" in {CONFIG_FILE}.'
        ) from exc
    try:
        conn.hello()
        return conn.stylize_raw(
            content,
            [(style, 1.0)],
            params,
            on_progress=on_progress,
            should_cancel=should_cancel,
            idle_timeout_s=IDLE_TIMEOUT_S,
        )
    except nst.DaemonUnavailable as exc:
        raise PluginError(f"{exc}.") from exc
    except nst.DaemonError as exc:
        raise PluginError(f"The NST daemon refused the job: {exc}") from exc
    finally:
        conn.close()


# --- the procedure -----------------------------------------------------------------------


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
        self.dialog.connect("delete-event", lambda *a: self._on_response(None, None) or True)
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
        layer = stylize_layer(image, source, config, ui)
    except PluginError as exc:
        return _fail(procedure, str(exc))
    except nst.JobCancelled:
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
    except Exception as exc:  # a bug: still a message in GIMP, the traceback on stderr
        traceback.print_exc()
        return _fail(procedure, f"Neural Style Transfer failed unexpectedly: {exc!r}")
    finally:
        if ui is not None:
            ui.close()
    Gimp.displays_flush()
    return _success(layer)


def stylize_layer(
    image: Gimp.Image, source: Gimp.Layer, config: Gimp.ProcedureConfig, ui: ProgressDialog | None
) -> Gimp.Layer:
    """Send the layer (or its part under the selection) and add the result above it."""
    settings = load_config()
    style_file = config.get_property("style-file")
    style_path = style_file.get_path() if style_file is not None else ""
    size = int(config.get_property("size"))
    params: dict[str, Any] = {
        "iterations": int(config.get_property("iterations")),
        "size": size,
        "strength": float(config.get_property("strength")),
        "preserve_colors": bool(config.get_property("preserve-colors")),
        "seed": int(config.get_property("seed")),
    }
    endpoint = (config.get_property("endpoint") or "").strip() or settings["endpoint"]

    ok, x, y, w, h = source.mask_intersect()
    if not ok or w <= 0 or h <= 0:
        raise PluginError(
            "The selection does not cover any of the layer: select part of the layer or nothing."
        )
    has_selection = not Gimp.Selection.is_empty(image)
    dtype = wire_dtype(image)
    channels = channels_of(source)

    Gimp.progress_init("Neural style transfer: sending the layer")
    content = (
        layouts.describe(w, h, channels, dtype, 0),
        read_pixels(source, x, y, w, h, dtype, channels),
    )
    style = load_style(style_path, dtype, size)

    def on_progress(header: dict[str, Any]) -> None:
        frac, text = progress_text(header)
        Gimp.progress_set_text(text)
        Gimp.progress_update(frac)

    def should_cancel() -> bool:
        return ui.pump() if ui is not None else False

    started = time.monotonic()
    desc, data = stylize(content, style, params, endpoint, settings, on_progress, should_cancel)
    if (desc["width"], desc["height"]) != (w, h):
        raise PluginError(
            f"The daemon returned {desc['width']}x{desc['height']} pixels for a {w}x{h} layer."
        )
    took = _duration(time.monotonic() - started)
    Gimp.progress_set_text(f"Neural style transfer: done in {took}")
    Gimp.progress_update(1.0)
    return add_result_layer(image, source, (x, y, w, h), desc, data, has_selection, style_path)


def add_result_layer(
    image: Gimp.Image,
    source: Gimp.Layer,
    box: tuple[int, int, int, int],
    desc: dict[str, Any],
    data: bytes,
    has_selection: bool,
    style_path: str,
) -> Gimp.Layer:
    """New layer directly above the source, at its offsets, masked by the selection; one undo."""
    x, y, w, h = box
    style_name = Path(style_path).stem or "style"
    name = f"{source.get_name()} ({style_name})"
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
            0.0,
            100.0,
            50.0,
            flags,
        )
        proc.add_int_argument(
            "iterations",
            "_Quality (iterations)",
            "Optimizer iterations per scale",
            1,
            5000,
            300,
            flags,
        )
        proc.add_int_argument(
            "size",
            "_Working size",
            "Long side in pixels at which the style is computed",
            16,
            8192,
            512,
            flags,
        )
        proc.add_boolean_argument(
            "preserve-colors",
            "_Preserve colours",
            "Keep the layer's colours; transfer only the texture",
            False,
            flags,
        )
        proc.add_int_argument("seed", "See_d", "Random seed", 0, 2**31 - 1, 0, flags)
        proc.add_string_argument(
            "endpoint",
            "Daemon _endpoint",
            "ZeroMQ endpoint of the NST daemon (empty: the installed setting)",
            "",
            flags,
        )
        proc.add_layer_return_value("layer", "Layer", "The new stylized layer", False, flags)
        return proc


Gimp.main(NstStylize.__gtype__, sys.argv)
