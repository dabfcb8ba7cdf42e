"""Install the GIMP 3 plug-in into GIMP's user plug-ins folder (`nst install-plugin gimp`).

GIMP 3 loads a Python plug-in only from a folder named like the script, with the script
executable, so the whole `plug-in-nst-stylize` folder is copied and chmod'ed. The client
package goes inside that folder (the script puts its folder on sys.path) with the settings.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

from . import install as shared

PLUGIN_NAME = "plug-in-nst-stylize"
GIMP_SERIES = "3.0"


def candidate_dirs() -> list[Path]:
    """GIMP 3's user plug-ins folders for this OS, most likely first."""
    home = Path.home()
    if sys.platform == "win32":
        appdata = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
        return [appdata / "GIMP" / GIMP_SERIES / "plug-ins"]
    if sys.platform == "darwin":
        return [home / "Library" / "Application Support" / "GIMP" / GIMP_SERIES / "plug-ins"]
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    native = config / "GIMP" / GIMP_SERIES / "plug-ins"
    flatpak = home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / GIMP_SERIES
    return [native, flatpak / "plug-ins"]


def find_plugins_dir() -> Path:
    """The folder to install into: the first whose GIMP profile exists, else the native one.

    A profile folder exists once GIMP 3 has run; Flatpak GIMP keeps it under ~/.var.
    """
    candidates = candidate_dirs()
    for path in candidates:
        if path.parent.is_dir():
            return path
    return candidates[0]


def _make_executable(path: Path) -> None:
    mode = path.stat().st_mode
    path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def install(
    dest: Path | None,
    endpoint: str,
    transport: str,
    curve_server_key: str | None = None,
    curve_client_cert: str | None = None,
) -> Path:
    """Copy the plug-in to DEST (a plug-ins folder) or GIMP's; returns the plug-in's folder."""
    plugins_dir = Path(dest).expanduser() if dest else find_plugins_dir()
    target = plugins_dir / PLUGIN_NAME
    settings = shared.plugin_settings(endpoint, transport, curve_server_key, curve_client_cert)
    shared.copy_tree(shared.payload_dir("gimp") / PLUGIN_NAME, target)
    _make_executable(target / f"{PLUGIN_NAME}.py")
    shared.copy_client(target)
    shared.write_settings(target, settings)
    return target


def uninstall(dest: Path | None) -> list[Path]:
    """Remove the plug-in from DEST or from every GIMP 3 location; returns what was removed."""
    folders = [Path(dest).expanduser()] if dest else candidate_dirs()
    removed = []
    for plugins_dir in folders:
        target = plugins_dir / PLUGIN_NAME
        if target.is_dir():
            shutil.rmtree(target)
            removed.append(target)
    return removed
