"""The GIMP plug-in's procedure values and dialogs: the run's values read from the procedure's
config (the style rows among them), the procedure dialog with its style rows and the engine's
state line, and the progress dialog of an interactive run. GIMP glue like the script that
imports it; the rules are in nst_gimp_job.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
import nst_gimp_job as job  # noqa: E402
from gi.repository import Gimp, GLib, GObject  # noqa: E402
from nst_gimp_state import StateWatcher  # noqa: E402

from nst_client.launcher import EngineState  # noqa: E402

PLUGIN_DIR = Path(__file__).resolve().parent
PROC_NAME = job.PROC_NAME


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


def _path(config: Gimp.ProcedureConfig, name: str) -> str:
    """A file argument's path; "" for none."""
    file = config.get_property(name)
    return (file.get_path() or "") if file is not None else ""


def region_channels(config: Gimp.ProcedureConfig) -> dict[int, Gimp.Channel | None]:
    """Each style row's chosen channel (None: none)."""
    rows = range(1, job.STYLE_ROWS + 1)
    return {n: config.get_property(job.argument_name("region-channel", n)) for n in rows}


def style_choice(config: Gimp.ProcedureConfig, number: int) -> job.StyleChoice:
    """A style row's values; its channel by name (the plug-in keeps the channel itself)."""

    def value(name: str) -> Any:
        return config.get_property(job.argument_name(name, number))

    channel = value("region-channel")
    return job.StyleChoice(
        number,
        _path(config, job.argument_name("style-file", number)),
        float(value("strength")),
        str(value("region")),
        channel.get_name() if channel is not None else None,
    )


def job_args(
    config: Gimp.ProcedureConfig, run_mode: Gimp.RunMode = Gimp.RunMode.INTERACTIVE
) -> job.JobArgs:
    """The procedure's values; `iterations` only from a script (job.run_iterations)."""
    interactive = run_mode != Gimp.RunMode.NONINTERACTIVE
    first = style_choice(config, 1)
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
        region=first.region,
        channel=first.channel,
        more_styles=tuple(style_choice(config, n) for n in range(2, job.STYLE_ROWS + 1)),
    )


#: The procedure's arguments that are engine settings (they restart the state line's watch).
ENGINE_ARGS = ("start-on-demand", "endpoint", "curve-server-key", "curve-client-cert")


class EngineStateLine:
    """The dialog's engine state: the plain summary, the details in its tooltip, refreshed by
    a StateWatcher thread (GTK is only touched here, through GLib.idle_add)."""

    def __init__(self, label: Any, config: Gimp.ProcedureConfig) -> None:
        self.label = label
        self.config = config
        self.closed = False
        self.label.set_line_wrap(True)
        self.label.set_xalign(0.0)
        self.label.set_max_width_chars(48)
        self.watcher = StateWatcher(lambda state: GLib.idle_add(self._show, state))
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


class ChannelRow:
    """A style row's channel: a list of the image's channels by name, which sets the row's
    channel argument (GIMP 3.0's own chooser for it shows neither the channel's name nor its
    picture, and offers every image's channels)."""

    def __init__(self, image: Gimp.Image, config: Gimp.ProcedureConfig, number: int) -> None:
        from gi.repository import GimpUi, Gtk

        self.config = config
        self.name = job.argument_name("region-channel", number)
        self.image_id = image.get_id()
        self.combo = GimpUi.ChannelComboBox.new(self._in_image)
        self.combo.set_tooltip_text(
            "The channel this style goes on, white = all of it (Select > Save to Channel "
            "keeps a selection as one)"
        )
        chosen = config.get_property(self.name)
        if chosen is not None and self._in_image(image, chosen):
            self.combo.set_active(chosen.get_id())
        # GimpIntComboBox.connect is another call (a value and a callback): the signal's own.
        GObject.Object.connect(self.combo, "changed", self._changed)
        self._changed()
        label = Gtk.Label.new_with_mnemonic(job.row_label(job.CHANNEL_LABEL, number))
        label.set_xalign(0.0)
        label.set_mnemonic_widget(self.combo)
        self.row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=12)
        self.row.pack_start(label, False, False, 0)
        self.row.pack_end(self.combo, True, True, 0)
        self.row.show_all()

    def _in_image(self, image: Gimp.Image, _item: Any, *_data: Any) -> bool:
        return bool(image.get_id() == self.image_id)

    def _changed(self, *_args: Any) -> None:
        ok, channel_id = self.combo.get_active()
        self.config.set_property(self.name, Gimp.Channel.get_by_id(channel_id) if ok else None)


def run_dialog(procedure: Gimp.Procedure, config: Gimp.ProcedureConfig, image: Gimp.Image) -> bool:
    """The procedure dialog: the styles (a tab each), the job's values, then the engine's
    state and settings in a frame. True on OK."""
    from gi.repository import GimpUi

    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Neural Style Transfer")
    dialog.get_label("engine-title", "Style engine", False, False)
    label = dialog.get_label("engine-state", "Checking the style engine…", False, False)
    dialog.fill_box("engine-box", ["engine-state", *ENGINE_ARGS])
    dialog.fill_frame("engine-frame", "engine-title", False, "engine-box")
    # A tab per style row: as tall as one style, and styles 2 and 3 one click away.
    rows = range(1, job.STYLE_ROWS + 1)
    channels = {n: ChannelRow(image, config, n) for n in rows}
    for n in rows:
        dialog.get_label(f"style-{n}-tab", f"Style {n}", False, False)
        fields = [job.argument_name(a, n) for a in job.STYLE_ROW_ARGS[:-1]]
        box = dialog.fill_box(f"style-{n}-box", fields)
        box.pack_start(channels[n].row, False, False, 0)
        box.set_border_width(8)
    dialog.fill_notebook(
        "styles", [f"style-{n}-tab" for n in rows], [f"style-{n}-box" for n in rows]
    )
    # The iterations argument is for scripts: the dialog offers the quality and a time limit.
    dialog.fill(
        [
            "styles",
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
    handlers = [config.connect("notify::time-limit", grey_quality)]
    for n in rows:
        region = job.argument_name("region", n)

        def grey_channel(*_args: Any, row: ChannelRow = channels[n], region: str = region) -> None:
            """A row's channel applies only while its region is a channel."""
            row.row.set_sensitive(config.get_property(region) == job.CHANNEL)

        grey_channel()
        handlers.append(config.connect(f"notify::{region}", grey_channel))
    state_line = EngineStateLine(label, config)
    try:
        return bool(dialog.run())
    finally:
        for handler in handlers:
            config.disconnect(handler)
        state_line.close()
        dialog.destroy()
