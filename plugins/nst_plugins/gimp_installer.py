"""Install the GIMP 3 plug-in into GIMP's user plug-ins folder (`nst install-plugin gimp`).

GIMP 3 loads a Python plug-in only from a folder named like the script, with the script
executable, so the whole `plug-in-nst-stylize` folder is copied and chmod'ed. The client
package goes inside that folder (the script puts its folder on sys.path) with the settings.
Flatpak GIMP keeps its profile under ~/.var/app/org.gimp.GIMP (nst_plugins.flatpak).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

from nst_client.settings import Settings

from . import flatpak as fp
from . import install as shared

PLUGIN_NAME = "plug-in-nst-stylize"
GIMP_SERIES = "3.0"
NEXT_STEPS = "restart GIMP; the filter is in Filters > Artistic > Neural Style Transfer…"


def candidate_dirs() -> list[Path]:
    """GIMP 3's user plug-ins folders for this OS, most likely first (on Linux: the native
    GIMP's, then Flatpak GIMP's)."""
    home = Path.home()
    if sys.platform == "win32":
        appdata = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
        return [appdata / "GIMP" / GIMP_SERIES / "plug-ins"]
    if sys.platform == "darwin":
        return [home / "Library" / "Application Support" / "GIMP" / GIMP_SERIES / "plug-ins"]
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    native = config / "GIMP" / GIMP_SERIES / "plug-ins"
    return [native, flatpak_plugins_dir()]


def flatpak_plugins_dir() -> Path:
    return fp.app_dir("gimp") / "config" / "GIMP" / GIMP_SERIES / "plug-ins"


def find_plugins_dir() -> Path:
    """The folder to install into: the first whose GIMP profile exists, else the native one.

    A profile folder exists once GIMP 3 has run; Flatpak GIMP keeps it under ~/.var.
    """
    candidates = candidate_dirs()
    for path in candidates:
        if path.parent.is_dir():
            return path
    return candidates[0]


def target(dest: Path | None = None, flatpak: bool | None = None) -> shared.Target:
    """Where to install: DEST, or Flatpak GIMP's folder (flatpak=True, or None when only
    Flatpak GIMP has a profile), or the native GIMP's."""
    app = fp.APPS["gimp"]
    if flatpak and not fp.supported():
        raise ValueError("Flatpak GIMP exists on Linux only")
    if dest is not None:
        return shared.Target("gimp", Path(dest).expanduser(), app if flatpak else None, True)
    native = candidate_dirs()[0]
    if not fp.supported():
        return shared.Target("gimp", native)
    flat = flatpak_plugins_dir()
    if flatpak is None:
        flatpak = find_plugins_dir() == flat
    if flatpak:
        return shared.Target("gimp", flat, app)
    notes = []
    if flat.parent.is_dir():
        notes.append(
            "Flatpak GIMP has a profile here too; `nst install-plugin gimp --flatpak` "
            "installs the plug-in there as well."
        )
    return shared.Target("gimp", native, notes=notes)


def targets(dest: Path | None = None, flatpak: bool | None = None) -> list[shared.Target]:
    """Every place uninstall looks: DEST, else the native and/or the Flatpak folder."""
    if dest is not None:
        return [target(dest, flatpak)]
    app = fp.APPS["gimp"]
    found = [shared.Target("gimp", candidate_dirs()[0])]
    if fp.supported():
        found.append(shared.Target("gimp", flatpak_plugins_dir(), app))
    return [t for t in found if flatpak is None or bool(t.flatpak_app) == flatpak]


def plugin_folder(where: shared.Target) -> Path:
    return where.folder / PLUGIN_NAME


def _make_executable(path: Path) -> None:
    mode = path.stat().st_mode
    path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def installed_paths(where: shared.Target) -> list[Path]:
    """What an install puts in WHERE: the plug-in's folder (its files, the client copy, the
    settings and the record)."""
    return [plugin_folder(where)]


def install_to(where: shared.Target, settings: Settings) -> Path:
    """Copy the plug-in, the client and SETTINGS (checked already) into WHERE; returns the
    plug-in's folder."""
    plugin = plugin_folder(where)
    made = shared.created_dirs(where, shared.read_record(plugin))
    record: dict[str, Any] = {"created_dirs": made}
    shared.copy_tree(shared.payload_dir("gimp") / PLUGIN_NAME, plugin)
    _make_executable(plugin / f"{PLUGIN_NAME}.py")
    shared.copy_client(plugin)
    shared.write_settings(plugin, settings)
    shared.write_record(plugin, record)  # once to be listed, then with the list
    record["files"] = shared.recorded_files(where.folder, installed_paths(where))
    shared.write_record(plugin, record)
    return plugin


def remove(where: shared.Target, record: dict[str, Any]) -> list[Path]:
    """Remove exactly what the install recorded."""
    if not plugin_folder(where).is_dir():
        return []
    return shared.remove_recorded(where.folder, record, installed_paths(where))
