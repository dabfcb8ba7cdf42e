"""The GIMP plug-in's rules, without GIMP: what plug-in-nst-stylize.py does besides GIMP calls.

The procedure's arguments (ranges, labels and help from nst_client.params, the one definition),
its values as a job's parameters (nst_client.params.editor_params, shared with Krita), how far
a style image is scaled down, one job through nst_client.job (every failure a PluginError in
the dialog's words), the new layer's name, and the engine-state watcher behind the dialog's
state line. Imports nothing of GIMP, so the unit tests run it with the product's Python; the
script puts this folder on sys.path, where `nst install-plugin gimp` also puts nst_client.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nst_client import job, launcher
from nst_client import params as P
from nst_client.client import JobResult, RawImage
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
ENGINE_FIELDS = {
    "start_on_demand": "Start the _engine when needed",
    "endpoint": "Engine _address",
    "curve_server_key": "Engine public _key",
    "curve_client_cert": "Your secret _certificate",
}


def label(text: str) -> str:
    """A dialog label as the user reads it: "Engine _address" -> "Engine address"."""
    return text.replace("_", "")


#: How often the dialog's state line asks the engine (seconds).
STATE_INTERVAL_S = 2.0


class PluginError(Exception):
    """A failure to show the user as is: the message says what happened and what to do."""


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


def result_layer_name(source_name: str, style_path: str) -> str:
    """'Background (starry-night)': the source layer's name and the style file's."""
    return f"{source_name} ({Path(style_path).stem or 'style'})"


def progress_text(progress: Progress) -> str:
    return f"{TITLE}: {progress.text()}"


def done_text(seconds: float) -> str:
    return f"{TITLE}: done in {format_duration(seconds)}"


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


def check_style_path(path: str) -> None:
    if not path:
        raise PluginError(f'No style image was chosen: choose an image file as "{STYLE_FIELD}".')
    if not os.path.isfile(path):
        raise PluginError(
            f'The style image {path} does not exist: choose an image file as "{STYLE_FIELD}".'
        )


def run_job(
    settings: Settings,
    content: RawImage,
    style_path: str,
    read_style: Callable[[str], RawImage],
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
    PluginError with the job's message. read_style(path) reads the style file with GIMP's
    loaders once the engine has answered. JobCancelled passes through: the user asked."""
    check_style_path(style_path)

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
            lambda: [(read_style(style_path), 1.0)],
            params,
            on_event=on_event,
            should_cancel=should_cancel,
            connect_fn=connect_fn,
            ensure_fn=ensure_fn,
            probe_fn=probe_fn,
        )
    except job.JobFailed as exc:
        raise PluginError(exc.message) from exc


# --- the dialog's state line ---------------------------------------------------------------


class Monitor(Protocol):
    """What StateWatcher needs of nst_client.launcher.EngineMonitor."""

    def poll(self) -> EngineState: ...

    def close(self) -> None: ...


def _engine_monitor(settings: Settings) -> Monitor:
    return launcher.EngineMonitor(settings, CLIENT_NAME)


class StateWatcher:
    """Asks the engine for its state every interval_s on a thread of its own, so that the
    dialog never waits on the network, and hands each state to post (in GIMP: through
    GLib.idle_add to the GTK thread). watch(settings) follows the dialog's engine settings
    (None: stop asking until they can be used); stop() ends the thread within one poll."""

    def __init__(
        self,
        post: Callable[[EngineState], None],
        make_monitor: Callable[[Settings], Monitor] = _engine_monitor,
        interval_s: float = STATE_INTERVAL_S,
    ) -> None:
        self._post = post
        self._make_monitor = make_monitor
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._settings: Settings | None = None
        self._generation = 0
        self._thread = threading.Thread(target=self._loop, name="nst-engine-state", daemon=True)
        self._thread.start()

    def watch(self, settings: Settings | None) -> None:
        with self._lock:
            self._settings = settings
            self._generation += 1
        self._wake.set()

    def stop(self, timeout_s: float = 3.0) -> None:
        with self._lock:
            self._stopped = True
        self._wake.set()
        self._thread.join(timeout_s)

    def _current(self) -> tuple[bool, int, Settings | None]:
        with self._lock:
            return self._stopped, self._generation, self._settings

    def _loop(self) -> None:
        monitor: Monitor | None = None
        seen = 0
        try:
            while True:
                stopped, generation, settings = self._current()
                if stopped:
                    return
                if generation != seen:
                    if monitor is not None:
                        monitor.close()
                    monitor, seen = None, generation
                    if settings is not None:
                        try:
                            monitor = self._make_monitor(settings)
                        except Exception as exc:  # a transport that cannot be made here
                            self._post(launcher.unreachable(settings, exc))
                if monitor is not None and settings is not None:
                    try:
                        state = monitor.poll()
                    except Exception as exc:  # the watcher outlives any reply
                        state = launcher.unreachable(settings, exc)
                    stopped, generation, _ = self._current()
                    if not stopped and generation == seen:  # not for settings since changed
                        self._post(state)
                        self._wake.wait(self._interval_s)
                    self._wake.clear()
                else:
                    self._wake.wait()
                    self._wake.clear()
        finally:
            if monitor is not None:
                monitor.close()
