"""Steps every host's installer shares: where the plug-in files are, the client copy, settings,
the install record, and `nst install-plugin` / `nst uninstall-plugin` for one or both editors.

The client package is copied as it is (its `__version__` is the product's), so a plug-in left
behind by an upgrade can tell from the daemon's `welcome.version` that it is stale.

Each install leaves a record (RECORD_NAME, in the plug-in's own folder) of what it added
besides its files: the folders it had to make and, for Krita, whether it made kritarc or its
[python] section. Uninstall reads it to remove exactly that, so an install followed by an
uninstall leaves the editor's folders as they were. A folder named with --dest is the user's:
uninstall removes what went into it, never the folder.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import nst_client
from nst_client import protocol
from nst_client.progress import duration_words
from nst_client.settings import (
    CONFIG_NAME,
    DEFAULT_IDLE_EXIT_S,
    Settings,
    check_transport,
    load,
)
from nst_daemon import launch_command

from . import flatpak

HOSTS = ("gimp", "krita")
#: What `nst install-plugin` / `uninstall-plugin` accept.
CHOICES = (*HOSTS, "all")
EDITORS = flatpak.EDITORS
CLIENT_PACKAGE = "nst_client"
#: What an install added besides its files, kept in the plug-in's folder for uninstall.
RECORD_NAME = "nst_install.json"
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


@dataclass
class Target:
    """Where one editor's plug-in goes: its plug-ins folder (GIMP) or pykrita (Krita)."""

    host: str
    folder: Path
    #: The Flatpak app id when the editor is a Flatpak (its plug-ins run the product through
    #: flatpak-spawn --host), else None.
    flatpak_app: str | None = None
    #: True when the folder was named with --dest (uninstall leaves the folder itself).
    chosen: bool = False
    #: Krita's settings file, where the plug-in is enabled.
    kritarc: Path | None = None
    #: Things worth saying after the install (another profile of the same editor, ...).
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Installed:
    host: str
    #: The plug-in's folder (GIMP's plug-in folder, Krita's package).
    folder: Path
    target: Target
    settings: Settings


def payload_dir(host: str) -> Path:
    """The folder holding HOST's plug-in files: plugins/HOST in a checkout, or the copy a
    wheel carries next to this package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / host, here / host):
        if candidate.is_dir() and any(p.name != "__init__.py" for p in candidate.iterdir()):
            return candidate
    raise FileNotFoundError(f"the {host} plug-in's files are missing from this installation")


def copy_client(parent: Path) -> Path:
    """Copy the nst_client package into parent (replacing an older copy); returns it."""
    source = Path(nst_client.__file__).resolve().parent
    target = parent / CLIENT_PACKAGE
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=_SKIP)
    return target


def copy_tree(source: Path, target: Path) -> Path:
    """Copy a plug-in folder, replacing what an earlier install left there."""
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, ignore=_SKIP)
    return target


def idle_seconds(text: str) -> float:
    """argparse type of --idle-exit: seconds, 0 (never) or more."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise argparse.ArgumentTypeError(f"expected seconds, 0 (never) or more, got {text!r}")
    return seconds


def plugin_settings(
    endpoint: str,
    transport: str,
    curve_server_key: str | None = None,
    curve_client_cert: str | None = None,
    *,
    start_on_demand: bool = True,
    idle_exit_s: float = DEFAULT_IDLE_EXIT_S,
) -> Settings:
    """The plug-in's settings: the daemon's endpoint, the transport, this Python for the bridge,
    this product's nst-daemon to start on demand, and the CURVE key files as absolute paths.
    Checked in full by the one settings loader, so an installer calls this before it copies
    anything: a bad value leaves nothing behind."""
    settings = load(
        None,
        {},
        overrides={
            "endpoint": endpoint,
            "curve_server_key": curve_server_key,
            "curve_client_cert": curve_client_cert,
            "start_on_demand": start_on_demand,
            "idle_exit_s": idle_exit_s,
        },
    )
    settings.transport = check_transport(transport)
    settings.python = sys.executable
    settings.daemon = launch_command()
    return settings


def settings_for(
    target: Target,
    endpoint: str | None = None,
    transport: str = "auto",
    curve_server_key: str | None = None,
    curve_client_cert: str | None = None,
    *,
    start_on_demand: bool = True,
    idle_exit_s: float = DEFAULT_IDLE_EXIT_S,
) -> Settings:
    """plugin_settings for TARGET: a Flatpak editor's plug-in runs the bridge and the engine
    on the host (after checking that the sandbox allows it: FlatpakError if not)."""
    settings = plugin_settings(
        endpoint or protocol.DEFAULT_ENDPOINT,
        transport,
        curve_server_key,
        curve_client_cert,
        start_on_demand=start_on_demand,
        idle_exit_s=idle_exit_s,
    )
    if target.flatpak_app:
        flatpak.check_host_access(target.host)
        settings.host_command = list(flatpak.HOST_COMMAND)
        if settings.transport == "auto":
            # The sandbox's Python has no pyzmq; the bridge runs on the host.
            settings.transport = "bridge"
    return settings


def write_settings(folder: Path, settings: Settings) -> Path:
    return settings.save(folder / CONFIG_NAME)


# --- the install record ----------------------------------------------------------------------


def missing_dirs(folder: Path) -> list[Path]:
    """The folders `mkdir -p FOLDER` would make, outermost first."""
    missing = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing.append(path)
    return missing[::-1]


def read_record(plugin: Path) -> dict[str, Any]:
    """What an earlier install recorded in the plug-in folder ({} when nothing)."""
    try:
        record = json.loads((plugin / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_record(plugin: Path, record: dict[str, Any]) -> Path:
    path = plugin / RECORD_NAME
    record = {"version": nst_client.__version__, **record}
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def created_dirs(target: Target, old: dict[str, Any]) -> list[str]:
    """The folders this install makes for TARGET (none under a --dest folder), added to those
    an earlier install made."""
    made = [str(p) for p in missing_dirs(target.folder)] if not target.chosen else []
    earlier = [p for p in old.get("created_dirs", []) if isinstance(p, str)]
    return earlier + [p for p in made if p not in earlier]


def check_replaceable(tops: Sequence[Path], record: dict[str, Any], force: bool) -> None:
    """An install replaces what an earlier install recorded; anything else of the same name
    only when told to (--force): FileExistsError naming it."""
    if record or force:
        return
    for path in tops:
        if path.exists():
            raise FileExistsError(
                f"{path} is already there and no install record says nst put it there: move "
                "it away, or install again with --force to replace it"
            )


def recorded_files(folder: Path, tops: Sequence[Path]) -> list[str]:
    """Every file under TOPS, as paths relative to FOLDER: what the record lists."""
    files = []
    for top in tops:
        found = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        files += [p.relative_to(folder).as_posix() for p in found]
    return files


def remove_recorded(folder: Path, record: dict[str, Any], tops: Sequence[Path]) -> list[Path]:
    """Remove exactly the files the record lists (under FOLDER; a name that leads out of it
    is ignored), then the folders under FOLDER they leave empty; returns those of TOPS that
    are gone. A record of an older install without its files: TOPS as they are."""
    listed = record.get("files")
    if not isinstance(listed, list):
        for top in tops:
            if top.is_dir():
                shutil.rmtree(top)
            elif top.exists():
                top.unlink()
        return [top for top in tops if not top.exists()]
    base = folder.resolve()
    parents: set[Path] = set()
    for name in listed:
        path = (folder / str(name)).resolve() if isinstance(name, str) else None
        if path is None or base not in path.parents or not (path.is_file() or path.is_symlink()):
            continue
        path.unlink()
        parents |= {p for p in path.parents if base in p.parents}
    remove_empty_dirs(str(p) for p in parents)
    return [top for top in tops if not top.exists()]


def remove_empty_dirs(paths: Iterable[str]) -> list[Path]:
    """Remove each folder that is now empty, deepest first; returns those removed."""
    removed = []
    for path in sorted({Path(p) for p in paths}, key=lambda p: len(p.parts), reverse=True):
        try:
            path.rmdir()
        except OSError:
            continue  # gone already, or it holds something the install did not put there
        removed.append(path)
    return removed


# --- one or both editors -----------------------------------------------------------------------


def _host_module(host: str) -> ModuleType:
    if host not in HOSTS:
        raise ValueError(f"unknown host {host!r}: choose one of {', '.join(HOSTS)}")
    return importlib.import_module(f"nst_plugins.{host}_installer")


def _hosts(host: str) -> tuple[str, ...]:
    return HOSTS if host == "all" else (host,)


def install_hosts(
    host: str,
    dest: str | None = None,
    endpoint: str | None = None,
    transport: str = "auto",
    curve_server_key: str | None = None,
    curve_client_cert: str | None = None,
    *,
    start_on_demand: bool = True,
    idle_exit_s: float = DEFAULT_IDLE_EXIT_S,
    flatpak: bool | None = None,
    force: bool = False,
) -> list[Installed]:
    """Install HOST's plug-in (gimp, krita or all). Every editor's target and settings are
    checked before anything is copied: a bad value, a sandbox that refuses, or a folder of the
    same name that no install recorded (unless force) leaves nothing.

    flatpak: True installs for the Flatpak editor, False for the native one, None picks the
    Flatpak one when only it has a profile. The CURVE key files are those of
    nst_client.settings (the daemon's server.key, this client's client.key_secret)."""
    hosts = _hosts(host)
    if dest and len(hosts) > 1:
        raise ValueError("--dest names one editor's folder: use it with gimp or krita, not all")
    plans = []
    for name in hosts:
        module = _host_module(name)
        target: Target = module.target(Path(dest) if dest else None, flatpak=flatpak)
        settings = settings_for(
            target,
            endpoint,
            transport,
            curve_server_key,
            curve_client_cert,
            start_on_demand=start_on_demand,
            idle_exit_s=idle_exit_s,
        )
        record = read_record(module.plugin_folder(target))
        check_replaceable(module.installed_paths(target), record, force)
        plans.append((module, target, settings))
    done = []
    for module, target, settings in plans:
        folder: Path = module.install_to(target, settings)
        done.append(Installed(target.host, folder, target, settings))
    return done


def uninstall_hosts(
    host: str,
    dest: str | None = None,
    flatpak: bool | None = None,
    left: dict[str, list[Path]] | None = None,
) -> dict[str, list[Path]]:
    """Remove HOST's plug-in (gimp, krita or all) from every place it may be (dest; the
    Flatpak editor's only with flatpak=True, the native one's only with False): exactly the
    files its install recorded. Returns, per editor, what was removed or (kritarc) changed;
    left gets, per editor, what has the plug-in's names but no install record (not removed).
    Running it twice is harmless."""
    hosts = _hosts(host)
    if dest and len(hosts) > 1:
        raise ValueError("--dest names one editor's folder: use it with gimp or krita, not all")
    removed: dict[str, list[Path]] = {}
    made: dict[str, str] = {}  # folder -> the editor whose install made it
    for name in hosts:
        module = _host_module(name)
        removed[name] = []
        targets: list[Target] = module.targets(Path(dest) if dest else None, flatpak=flatpak)
        for target in targets:
            record = read_record(module.plugin_folder(target))
            if not record:  # not ours to remove, whatever its name
                found = [p for p in module.installed_paths(target) if p.exists()]
                if left is not None and found:
                    left.setdefault(name, []).extend(found)
                continue
            removed[name] += module.remove(target, record)
            for path in record.get("created_dirs", []):
                made.setdefault(path, name)
    # Folders last, all editors' at once: GIMP's install may have made ~/.config, which
    # held Krita's kritarc until just now.
    for path in remove_empty_dirs(made):
        removed[made[str(path)]].append(path)
    return removed


# --- what the commands say ----------------------------------------------------------------------


def engine_note(settings: Settings) -> str:
    """What starts the style engine, in plain words, for the settings an install wrote."""
    from nst_client.launcher import cannot_start

    why = cannot_start(settings)
    if why is not None:
        return f"The plug-ins will not start the style engine themselves: {why}."
    stops = (
        "keeps running until you stop it (`nst daemon stop`)"
        if settings.idle_exit_s == 0
        else f"stops after {duration_words(settings.idle_exit_s)} without a job"
    )
    return (
        "The style engine starts by itself the first time you stylize (loading its model "
        f"takes a few seconds) and {stops}. It runs {' '.join(settings.daemon or [])}."
    )


def install_report(done: Sequence[Installed]) -> str:
    lines = []
    for item in done:
        module = _host_module(item.host)
        editor = EDITORS[item.host]
        app = item.target.flatpak_app
        where = f" for Flatpak {editor} ({app})" if app else ""
        lines.append(f"Installed the {editor} plug-in{where} in {item.folder}")
        if app:
            lines.append(
                "  It runs the style engine and its Python outside the sandbox, through "
                "flatpak-spawn --host."
            )
        lines.append(f"  Next: {module.NEXT_STEPS}")
        lines += [f"  Note: {note}" for note in item.target.notes]
    if done:
        lines.append(engine_note(done[0].settings))
    return "\n".join(lines)


def uninstall_report(
    removed: dict[str, list[Path]], left: dict[str, list[Path]] | None = None
) -> str:
    lines = []
    for host, paths in removed.items():
        editor = EDITORS[host]
        for path in (left or {}).get(host, []):
            lines.append(
                f"{path} has no install record of nst: nothing was removed there (remove it "
                "yourself if it is yours to remove)."
            )
        if not paths and (left or {}).get(host):
            continue
        if not paths:
            lines.append(f"The {editor} plug-in was not installed: nothing to remove.")
            continue
        lines.append(f"Removed the {editor} plug-in:")
        for path in paths:
            if path.exists():
                lines.append(f"  took its line out of {path}")
            else:
                lines.append(f"  removed {path}")
        lines.append(f"  Restart {editor} if it is running.")
    return "\n".join(lines)
