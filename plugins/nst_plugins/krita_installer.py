"""`nst install-plugin krita`: put the Neural Style docker into Krita's pykrita folder.

Krita puts pykrita on sys.path, so the client package goes there beside the plug-in package
and both import it as `nst_client`. Krita loads user Python plug-ins only when kritarc says
`[python] enable_NAME=true`, so the installer also writes that line (and uninstall removes
it). Krita must be restarted after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from nst_client.protocol import DEFAULT_ENDPOINT
from nst_client.settings import CONFIG_NAME, TRANSPORTS

from . import install as shared

PLUGIN_NAME = "neural_style"
DESKTOP_FILE = f"{PLUGIN_NAME}.desktop"
#: Written per install, never copied from the source tree.
_GENERATED = (CONFIG_NAME, "__pycache__", "*.pyc")


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
            raise RuntimeError("LOCALAPPDATA is not set; pass --kritarc with Krita's kritarc")
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


def install(
    dest: Path | None = None,
    endpoint: str = DEFAULT_ENDPOINT,
    transport: str = "auto",
    kritarc: Path | None = None,
    curve_server_key: str | None = None,
    curve_client_cert: str | None = None,
) -> Path:
    """Copy the plug-in and the client package into dest (default: Krita's pykrita folder),
    write its settings and enable it in kritarc. Returns the plug-in package folder."""
    settings = shared.plugin_settings(endpoint, transport, curve_server_key, curve_client_cert)
    dest = Path(dest) if dest else pykrita_dir()
    source = shared.payload_dir("krita")
    package = shared.copy_tree(source / PLUGIN_NAME, dest / PLUGIN_NAME)
    for generated in _GENERATED:  # a source checkout may hold a developer's own settings
        for path in package.glob(generated):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.copyfile(source / DESKTOP_FILE, dest / DESKTOP_FILE)
    shared.copy_client(dest)
    shared.write_settings(package, settings)
    set_enabled(kritarc or kritarc_path(), True)
    return package


def uninstall(dest: Path | None = None, kritarc: Path | None = None) -> list[Path]:
    """Remove the plug-in from dest (default: Krita's pykrita folder) and its kritarc line."""
    dest = Path(dest) if dest else pykrita_dir()
    removed = []
    package = dest / PLUGIN_NAME
    if package.exists():
        shutil.rmtree(package)
        removed.append(package)
    desktop = dest / DESKTOP_FILE
    if desktop.exists():
        desktop.unlink()
        removed.append(desktop)
    client = dest / shared.CLIENT_PACKAGE
    if client.is_dir():
        shutil.rmtree(client)
        removed.append(client)
    rc = kritarc or kritarc_path()
    if set_enabled(rc, False):
        removed.append(rc)
    return removed


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m nst_plugins.krita_installer`), same as the nst command."""
    parser = argparse.ArgumentParser(
        prog="python -m nst_plugins.krita_installer", description=__doc__
    )
    parser.add_argument("action", choices=("install", "uninstall"))
    parser.add_argument("--dest", type=Path, help="pykrita folder (default: Krita's own)")
    parser.add_argument("--kritarc", type=Path, help="kritarc file (default: Krita's own)")
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT)
    parser.add_argument("--transport", choices=TRANSPORTS, default="auto")
    parser.add_argument("--curve-server-key", help="the daemon's server.key (remote daemon)")
    parser.add_argument("--curve-client-cert", help="this client's client.key_secret")
    args = parser.parse_args(argv)
    if args.action == "install":
        package = install(
            args.dest,
            args.endpoint,
            args.transport,
            args.kritarc,
            args.curve_server_key,
            args.curve_client_cert,
        )
        print(f"installed {package}; restart Krita and open Settings > Dockers > Neural Style")
    else:
        for path in uninstall(args.dest, args.kritarc):
            print(f"updated {path}" if path.name == "kritarc" else f"removed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
