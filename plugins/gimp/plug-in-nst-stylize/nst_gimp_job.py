"""The GIMP plug-in's rules, without GIMP: what plug-in-nst-stylize.py does besides GIMP calls.

From the procedure's values to engine parameters, how far a style image is scaled down, one
job through an nst_client Client (every failure a PluginError that says what to do), and the
new layer's name. Imports nothing of GIMP, so the unit tests run it with the product's Python;
the script puts this folder on sys.path, where `nst install-plugin gimp` also puts nst_client.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nst_client import strength
from nst_client.client import (
    Client,
    DaemonError,
    DaemonUnavailable,
    JobResult,
    RawImage,
    connect,
    version_note,
)
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
ITERATIONS = (1, 5000, 300)
SIZE = (16, 8192, 512)
SEED = (0, 2**31 - 1, 0)

#: Style images are scaled down in GIMP to at most this many times the working size first:
#: the daemon resizes them anyway, and a 24-megapixel photo need not cross the socket.
STYLE_MAX_FACTOR = 2
#: ... but never below this long side, so that a tiny working size keeps the style's detail.
STYLE_MIN_LIMIT = 256
#: How long a job may stay silent (no progress, no pong) before the daemon counts as gone.
IDLE_TIMEOUT_S = 60.0


class PluginError(Exception):
    """A failure to show the user as is: the message says what happened and what to do."""


@dataclass(frozen=True)
class JobArgs:
    """The procedure's values, as GIMP hands them over (GIMP keeps each in its range)."""

    style_path: str
    strength: float = strength.DEFAULT
    iterations: int = ITERATIONS[2]
    size: int = SIZE[2]
    preserve_colors: bool = False
    seed: int = 0
    #: The daemon's endpoint for this run; empty: the installed setting.
    endpoint: str = ""


def build_params(args: JobArgs) -> dict[str, Any]:
    """The engine parameters (engine names) of one job."""
    return {
        "iterations": int(args.iterations),
        "size": int(args.size),
        "strength": strength.clamp(args.strength),
        "preserve_colors": bool(args.preserve_colors),
        "seed": int(args.seed),
    }


def style_limit(size: int) -> int:
    """The longest side a style image keeps on its way to the daemon."""
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


# --- the daemon ----------------------------------------------------------------------------


def load_settings(
    plugin_dir: Path, endpoint: str = "", env: Mapping[str, str] | None = None
) -> Settings:
    """The installed settings (nst_config.json beside the plug-in, the NST_* variables on
    top), then the procedure's endpoint when it gives one."""
    try:
        return load(plugin_dir / CONFIG_NAME, env, endpoint)
    except SettingsError as exc:
        raise PluginError(f"The plug-in settings cannot be used: {exc}") from exc


Connect = Callable[[Settings, str], Client]


def open_client(settings: Settings, connect_fn: Connect = connect) -> Client:
    """A Client on the settings' transport; PluginError when there is none to be had."""
    try:
        return connect_fn(settings, CLIENT_NAME)
    except DaemonUnavailable as exc:  # the bridge's Python did not start
        raise PluginError(f'{exc}. Check "python" in the plug-in\'s {CONFIG_NAME}.') from exc
    except ImportError as exc:
        raise PluginError(
            f"The zmq transport needs pyzmq and msgpack in GIMP's Python ({exc}); "
            f'set "transport": "bridge" in the plug-in\'s {CONFIG_NAME}.'
        ) from exc
    except SettingsError as exc:
        raise PluginError(f"The plug-in settings cannot be used: {exc}") from exc


def check_style_path(path: str) -> None:
    if not path or not os.path.isfile(path):
        raise PluginError(
            f"Style image {path or '(none)'} does not exist: choose an image file as the style."
        )


def run_job(
    settings: Settings,
    content: RawImage,
    style_path: str,
    read_style: Callable[[str], RawImage],
    params: Mapping[str, Any],
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    on_note: Callable[[str], None] | None = None,
    connect_fn: Connect = connect,
) -> JobResult:
    """One job on the daemon: the result in the content's size, or PluginError.

    read_style(path) reads the style file (GIMP's loaders); it runs once the daemon has
    answered. on_note gets the warning of a plug-in that is not the daemon's version (the job
    still runs). JobCancelled passes through: the user asked for it, it is no failure.
    """
    check_style_path(style_path)
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
        raise PluginError(f"{exc}.") from exc
    except DaemonError as exc:
        raise PluginError(f"The NST daemon refused the job: {exc}") from exc
    except LayoutError as exc:
        raise PluginError(f"The NST daemon sent a malformed result: {exc}") from exc
    finally:
        client.close()
    want = (content[0]["width"], content[0]["height"])
    got = (done.image["width"], done.image["height"])
    if got != want:
        raise PluginError(
            f"The daemon returned {got[0]}x{got[1]} pixels for a {want[0]}x{want[1]} layer."
        )
    return done
