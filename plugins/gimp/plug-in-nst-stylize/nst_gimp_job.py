"""The GIMP plug-in's rules, without GIMP: what plug-in-nst-stylize.py does besides GIMP calls.

From the procedure's values to engine parameters and settings, how far a style image is scaled
down, one job through an nst_client Client (the engine started first when none answers; every
failure a PluginError that says what to do, in the dialog's words), the new layer's name, and
the engine-state watcher behind the dialog's state line. Imports nothing of GIMP, so the unit
tests run it with the product's Python; the script puts this folder on sys.path, where
`nst install-plugin gimp` also puts nst_client.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nst_client import launcher, strength
from nst_client import protocol as P
from nst_client.client import (
    Client,
    DaemonError,
    DaemonUnavailable,
    JobResult,
    RawImage,
    connect,
    version_note,
)
from nst_client.launcher import EngineState
from nst_client.layouts import LayoutError
from nst_client.progress import Progress, format_duration
from nst_client.settings import CONFIG_NAME, Settings, SettingsError, load

PROC_NAME = "plug-in-nst-stylize"
CLIENT_NAME = "gimp-plug-in"
#: What brings a stale plug-in up to date (shown when the daemon is another version).
REINSTALL = "nst install-plugin gimp"
TITLE = "Neural style transfer"

# The procedure's arguments: (minimum, maximum, default).
STRENGTH = (strength.MINIMUM, strength.MAXIMUM, strength.DEFAULT)
#: Seconds the job must fit in; 0 = no limit. 1..4 count as the engine's least, 5.
TIME_LIMIT = (0, 86400, 0)
#: The working size's long side; 0 = Auto (the engine's planner picks it).
SIZE = (0, 8192, 0)
#: For scripts (not in the dialog): a fixed count at every scale; 0 = by quality.
ITERATIONS = (0, 100000, 0)
SEED = (0, 2**31 - 1, 0)
#: The engine's quality presets (nst_core.params.QUALITY_PRESETS), fastest first, as the
#: dialog offers them: (name, label, help). The Krita docker's job_params has the same.
QUALITIES = (
    ("draft", "Draft", "A quick look at a small size, in seconds, to try a style or a strength"),
    ("normal", "Normal", "The classic look, about a minute on a laptop CPU"),
    ("final", "Final", "The layer's own resolution where the machine allows (takes longest)"),
)
DEFAULT_QUALITY = "normal"
#: The dialog's help on the quality choice, and what it says while a time limit is set.
QUALITY_HELP = "; ".join(
    f"{label}: {help_text[0].lower()}{help_text[1:]}" for _, label, help_text in QUALITIES
)
QUALITY_LIMITED = "Not used while there is a time limit: the job is fitted into the time"
#: The engine's range of a time budget (MIN_TIME_BUDGET_S, MAX_TIME_BUDGET_S).
MIN_TIME_LIMIT_S = 5.0
MAX_TIME_LIMIT_S = 86400.0
#: The smallest working size the engine takes.
MIN_SIZE = 16

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


#: Style images are scaled down in GIMP to at most this many times the working size first:
#: the daemon resizes them anyway, and a 24-megapixel photo need not cross the socket.
STYLE_MAX_FACTOR = 2
#: ... but never below this long side, so that a tiny working size keeps the style's detail.
STYLE_MIN_LIMIT = 256
#: The limit when the planner picks the working size (the Krita docker's MAX_STYLE_SIDE).
STYLE_AUTO_LIMIT = 2048
#: How long a job may stay silent (no progress, no pong) before the daemon counts as gone.
IDLE_TIMEOUT_S = 60.0
#: How often the dialog's state line asks the engine (seconds).
STATE_INTERVAL_S = 2.0


class PluginError(Exception):
    """A failure to show the user as is: the message says what happened and what to do."""


@dataclass(frozen=True)
class JobArgs:
    """The procedure's values, as GIMP hands them over (GIMP keeps each in its range)."""

    style_path: str
    strength: float = strength.DEFAULT
    quality: str = DEFAULT_QUALITY
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


def build_params(args: JobArgs) -> dict[str, Any]:
    """The engine parameters (engine names) of one job, as the Krita docker's job_params
    makes them: the quality preset always; time_budget only with a time limit (the quality
    then does not apply), size only when not Auto, iterations only when a script fixed them
    (0: the planner decides from the quality or the time limit)."""
    names = [name for name, _, _ in QUALITIES]
    if args.quality not in names:
        raise PluginError(f"Unknown quality {args.quality!r}: choose one of {', '.join(names)}.")
    params: dict[str, Any] = {
        "quality": args.quality,
        "strength": strength.clamp(args.strength),
        "preserve_colors": bool(args.preserve_colors),
        "seed": int(args.seed),
    }
    if args.time_limit > 0:
        params["time_budget"] = min(max(float(args.time_limit), MIN_TIME_LIMIT_S), MAX_TIME_LIMIT_S)
    if args.size > 0:
        params["size"] = max(int(args.size), MIN_SIZE)
    if args.iterations > 0:
        params["iterations"] = int(args.iterations)
    return params


def run_iterations(value: int, interactive: bool) -> int:
    """The `iterations` a run uses: a script's (non-interactive) count; 0 for a dialog run or
    its repeat, whose saved values may hold a count the dialog does not show (an older
    version's 300), which must not override the quality the user sees."""
    return 0 if interactive else int(value)


def style_limit(size: int) -> int:
    """The longest side a style image keeps on its way to the daemon (size 0, Auto: the
    planner may work up to the layer's own size, so STYLE_AUTO_LIMIT, as the Krita docker)."""
    if size <= 0:
        return STYLE_AUTO_LIMIT
    return max(int(size), STYLE_MIN_LIMIT) * STYLE_MAX_FACTOR


def style_size(width: int, height: int, size: int) -> tuple[int, int]:
    """A style image's size once scaled down to style_limit(size) (unchanged when within)."""
    limit = style_limit(size)
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


#: How the settings loader names each engine setting of the dialog in its messages.
FIELD_LABELS = {key: _field(key) for key in ENGINE_FIELDS}


def settings_message(exc: SettingsError) -> str:
    return f"The engine settings cannot be used: {exc}"


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
        raise PluginError(settings_message(exc)) from exc


def installed_start_on_demand(plugin_dir: Path, env: Mapping[str, str] | None = None) -> bool:
    """The installed start_on_demand (`nst install-plugin gimp --no-start-on-demand` turns it
    off): the default of the dialog's checkbox. True when the settings cannot be read (the
    run says why)."""
    try:
        return load(plugin_dir / CONFIG_NAME, env).start_on_demand
    except SettingsError:
        return True


# --- the engine ----------------------------------------------------------------------------

Connect = Callable[[Settings, str], Client]
Ensure = Callable[..., EngineState]


def open_client(settings: Settings, connect_fn: Connect = connect) -> Client:
    """A Client on the settings' transport; PluginError when there is none to be had."""
    try:
        return connect_fn(settings, CLIENT_NAME)
    except DaemonUnavailable as exc:  # the bridge's Python did not start
        raise PluginError(f"{exc}: reinstall the plug-in with `{REINSTALL}`.") from exc
    except ImportError as exc:
        raise PluginError(
            f"The plug-in is set to talk to the engine with pyzmq and msgpack, which GIMP's "
            f"Python lacks ({exc}): reinstall it with `{REINSTALL} --transport auto`."
        ) from exc
    except SettingsError as exc:
        raise PluginError(settings_message(exc)) from exc


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return f"{text[:1].upper()}{text[1:]}."


def unavailable_message(exc: DaemonUnavailable, settings: Settings) -> str:
    """Why there is no engine, in the dialog's words: the field that changes it."""
    if not P.is_local_endpoint(settings.endpoint):
        return (
            f"{_sentence(str(exc))} The engine at {settings.endpoint} is on another computer: "
            f"it is started there. Check {_field('endpoint')} and, for that engine's keys, "
            f"{_field('curve_server_key')} and {_field('curve_client_cert')}."
        )
    if not settings.start_on_demand:
        return (
            f"The style engine is not running and {_field('start_on_demand')} is off: turn it "
            f"on, or start the engine with `nst daemon start`, or check {_field('endpoint')}."
        )
    return _sentence(str(exc))


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
    connect_fn: Connect = connect,
    ensure_fn: Ensure = launcher.ensure_running,
) -> JobResult:
    """One job on the engine: the result in the content's size, or PluginError.

    The engine is started first when none answers (ensure_fn, nst_client.launcher's
    ensure_running), reporting through on_state while it loads; should_cancel is asked
    there too. read_style(path) reads the style file (GIMP's loaders); it runs once the engine
    has answered. on_note gets the warning of a plug-in that is not the engine's version (the
    job still runs). JobCancelled passes through: the user asked for it, it is no failure.
    """
    check_style_path(style_path)
    try:
        ensure_fn(settings, on_state=on_state, should_cancel=should_cancel)
    except DaemonUnavailable as exc:
        raise PluginError(unavailable_message(exc, settings)) from exc
    except SettingsError as exc:
        raise PluginError(settings_message(exc)) from exc
    client = open_client(settings, connect_fn)
    try:
        welcome = client.hello()
        note = version_note(welcome, REINSTALL)
        if note is not None and on_note is not None:
            on_note(note)
        style = read_style(style_path)
        done = client.stylize_raw(
            content,
            [(style, 1.0)],
            params,
            on_progress=on_progress,
            should_cancel=should_cancel,
            idle_timeout_s=max(IDLE_TIMEOUT_S, settings.timeout_s),
        )
    except DaemonUnavailable as exc:
        raise PluginError(f"The style engine stopped answering: {exc}.") from exc
    except DaemonError as exc:
        raise PluginError(f"The style engine refused the job: {exc}") from exc
    except LayoutError as exc:
        raise PluginError(f"The style engine sent a malformed result: {exc}") from exc
    finally:
        client.close()
    want = (content[0]["width"], content[0]["height"])
    got = (done.image["width"], done.image["height"])
    if got != want:
        raise PluginError(
            f"The engine returned {got[0]}x{got[1]} pixels for a {want[0]}x{want[1]} layer."
        )
    return done


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
                if monitor is not None:
                    state = monitor.poll()
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
