"""`nst install-plugin krita`: put the Neural Style docker into Krita's pykrita folder.

Krita puts pykrita on sys.path, so the client package goes there beside the plug-in package
and both import it as `nst_client`. Krita loads user Python plug-ins only when kritarc says
`[python] enable_NAME=true`, so the installer also writes that line (and uninstall removes
it). Krita must be restarted after. Flatpak Krita keeps its pykrita and kritarc under
~/.var/app/org.kde.krita (nst_plugins.flatpak).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nst_client.settings import CONFIG_NAME, Settings

from . import flatpak as fp
from . import install as shared

PLUGIN_NAME = "neural_style"
DESKTOP_FILE = f"{PLUGIN_NAME}.desktop"
#: Written per install, never copied from the source tree.
_GENERATED = (CONFIG_NAME, shared.RECORD_NAME, "__pycache__", "*.pyc")
NEXT_STEPS = "restart Krita, then show the docker: Settings > Dockers > Neural Style."


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def pykrita_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """Krita's user plug-in folder on this platform."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    if platform.startswith("win"):
        base = env.get("APPDATA")
        if not base:
            raise RuntimeError("APPDATA is not set; pass --dest with Krita's pykrita folder")
        return Path(base) / "krita" / "pykrita"
    if platform == "darwin":
        return _home(env) / "Library" / "Application Support" / "krita" / "pykrita"
    data = env.get("XDG_DATA_HOME") or str(_home(env) / ".local" / "share")
    return Path(data) / "krita" / "pykrita"


def kritarc_path(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """Krita's settings file (where user plug-ins are enabled) on this platform."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    if platform.startswith("win"):
        base = env.get("LOCALAPPDATA")
        if not base:
            raise RuntimeError(
                "LOCALAPPDATA is not set, so Krita's kritarc cannot be found: set it to the "
                "folder that holds kritarc (usually C:\\Users\\NAME\\AppData\\Local) and "
                "install again"
            )
        return Path(base) / "kritarc"
    if platform == "darwin":
        return _home(env) / "Library" / "Preferences" / "kritarc"
    config = env.get("XDG_CONFIG_HOME") or str(_home(env) / ".config")
    return Path(config) / "kritarc"


def set_enabled(kritarc: Path, enabled: bool, name: str = PLUGIN_NAME) -> bool:
    """Add or remove `enable_NAME=true` under [python]; True if the file changed.

    Edited line by line: kritarc is a KConfig file, and a generic INI writer would reorder
    or re-case Krita's own keys.
    """
    key = f"enable_{name}"
    lines = kritarc.read_text(encoding="utf-8").splitlines() if kritarc.exists() else []
    out: list[str] = []
    section = None
    python_at = None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            if section == "python":
                python_at = len(out)
        elif section == "python" and stripped.split("=", 1)[0].strip() == key:
            continue  # dropped; re-added below when enabling
        out.append(line)
    if enabled:
        entry = f"{key}=true"
        if python_at is None:
            if out and out[-1].strip():
                out.append("")
            out += ["[python]", entry]
        else:
            out.insert(python_at + 1, entry)
    if out == lines:
        return False
    kritarc.parent.mkdir(parents=True, exist_ok=True)
    kritarc.write_text("\n".join(out) + "\n", encoding="utf-8")
    return True


def forget(kritarc: Path, record: Mapping[str, Any]) -> bool:
    """Take the enable line out of kritarc, and what the install that wrote it added around
    it: the [python] section when it made it (and it is empty now), the file when it made it
    (and it is empty now). True if the file changed or went."""
    changed = set_enabled(kritarc, False)
    if not kritarc.exists():
        return changed
    lines = kritarc.read_text(encoding="utf-8").splitlines()
    if record.get("python_section_added"):
        headers = [i for i, line in enumerate(lines) if line.strip().startswith("[")]
        for n, at in enumerate(headers):
            end = headers[n + 1] if n + 1 < len(headers) else len(lines)
            if lines[at].strip() == "[python]" and not any(x.strip() for x in lines[at + 1 : end]):
                del lines[at:end]
                while lines and not lines[-1].strip():
                    lines.pop()
                kritarc.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
                changed = True
                break
    if record.get("kritarc_created") and not any(line.strip() for line in lines):
        kritarc.unlink()
        changed = True
    return changed


def _python_section(kritarc: Path) -> bool:
    return kritarc.exists() and any(
        line.strip() == "[python]" for line in kritarc.read_text(encoding="utf-8").splitlines()
    )


def flatpak_dirs(env: Mapping[str, str] | None = None) -> tuple[Path, Path]:
    """Flatpak Krita's pykrita folder and kritarc."""
    app = fp.app_dir("krita", env)
    return app / "data" / "krita" / "pykrita", app / "config" / "kritarc"


def _has_profile(pykrita: Path, kritarc: Path) -> bool:
    """Krita has run with this profile: its kritarc or its data folder exists."""
    return kritarc.exists() or pykrita.parent.is_dir()


def target(
    dest: Path | None = None, kritarc: Path | None = None, flatpak: bool | None = None
) -> shared.Target:
    """Where to install: DEST (default: Flatpak Krita's pykrita with flatpak=True, or None
    when only Flatpak Krita has a profile; else the native Krita's) and its kritarc."""
    app = fp.APPS["krita"]
    if flatpak and not fp.supported():
        raise ValueError("Flatpak Krita exists on Linux only")
    native = (pykrita_dir(), kritarc_path())
    flat = flatpak_dirs() if fp.supported() else None
    if flatpak is None:
        flatpak = flat is not None and _has_profile(*flat) and not _has_profile(*native)
    pykrita, rc = flat if flatpak and flat else native
    notes = []
    if not flatpak and dest is None and flat is not None and _has_profile(*flat):
        notes.append(
            "Flatpak Krita has a profile here too; `nst install-plugin krita --flatpak` "
            "installs the plug-in there as well."
        )
    chosen = dest is not None
    return shared.Target(
        "krita",
        Path(dest).expanduser() if dest is not None else pykrita,
        app if flatpak else None,
        chosen,
        Path(kritarc) if kritarc else rc,
        notes,
    )


def targets(
    dest: Path | None = None, kritarc: Path | None = None, flatpak: bool | None = None
) -> list[shared.Target]:
    """Every place uninstall looks: DEST, else the native and/or Flatpak Krita's pykrita."""
    if dest is not None:
        return [target(dest, kritarc, flatpak)]
    found = [target(None, kritarc, False)]
    if fp.supported():
        found.append(target(None, kritarc, True))
    return [t for t in found if flatpak is None or bool(t.flatpak_app) == flatpak]


def plugin_folder(where: shared.Target) -> Path:
    return where.folder / PLUGIN_NAME


def installed_paths(where: shared.Target) -> list[Path]:
    """What an install puts in WHERE: the plug-in package, its desktop file and the client
    copy beside them."""
    return [
        plugin_folder(where),
        where.folder / DESKTOP_FILE,
        where.folder / shared.CLIENT_PACKAGE,
    ]


def install_to(where: shared.Target, settings: Settings) -> Path:
    """Copy the plug-in and the client package into WHERE, write SETTINGS (checked already)
    and enable it in kritarc. Returns the plug-in package folder."""
    dest, rc = where.folder, where.kritarc or kritarc_path()
    package = plugin_folder(where)
    old = shared.read_record(package)
    same_rc = old.get("kritarc") == str(rc)
    record: dict[str, Any] = {
        "created_dirs": shared.created_dirs(where, old)
        + [str(p) for p in shared.missing_dirs(rc.parent) if not where.chosen],
        "kritarc": str(rc),
        "kritarc_created": not rc.exists() or (same_rc and bool(old.get("kritarc_created"))),
        "python_section_added": not _python_section(rc)
        or (same_rc and bool(old.get("python_section_added"))),
    }
    source = shared.payload_dir("krita")
    shared.copy_tree(source / PLUGIN_NAME, package)
    for generated in _GENERATED:  # a source checkout may hold a developer's own settings
        for path in package.glob(generated):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.copyfile(source / DESKTOP_FILE, dest / DESKTOP_FILE)
    shared.copy_client(dest)
    shared.write_settings(package, settings)
    set_enabled(rc, True)
    shared.write_record(package, record)  # once to be listed, then with the list
    record["files"] = shared.recorded_files(dest, installed_paths(where))
    shared.write_record(package, record)
    return package


def remove(where: shared.Target, record: Mapping[str, Any]) -> list[Path]:
    """Remove exactly the files the install recorded (the plug-in package, its desktop file,
    the client copy beside them) and the kritarc line (with what the install added around
    it); returns what went or changed."""
    there = [p for p in installed_paths(where) if p.exists()]
    gone = shared.remove_recorded(where.folder, dict(record), installed_paths(where))
    removed = [p for p in there if p in gone]
    recorded = record.get("kritarc")
    rc = Path(recorded) if isinstance(recorded, str) else where.kritarc or kritarc_path()
    if forget(rc, record):
        removed.append(rc)
    return removed
