"""`nst install-plugin HOST` / `nst uninstall-plugin HOST`: shared steps, host steps elsewhere.

Shared here: vendoring the pure-Python client next to a plug-in, and writing the plug-in's
config (daemon endpoint, transport, the product's Python for the bridge). Each host's module
(`nst_plugins.gimp.installer`, `nst_plugins.krita.installer`) knows its folders.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import nst_core.layouts
import nst_daemon.client
import nst_daemon.protocol

HOSTS = ("gimp", "krita")
CONFIG_NAME = "nst_config.json"
VENDOR_NAME = "nst_client"
#: The files that make up the vendored client, by the name they get there.
VENDORED_MODULES = {
    "protocol.py": nst_daemon.protocol.__file__,
    "client.py": nst_daemon.client.__file__,
    "layouts.py": nst_core.layouts.__file__,
}


def vendor_client(plugin_dir: Path) -> Path:
    """Copy protocol, client and layouts into plugin_dir/nst_client (a package)."""
    target = plugin_dir / VENDOR_NAME
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / "__init__.py").write_text(
        '"""Copy of the NST product\'s client, written by `nst install-plugin`."""\n'
    )
    for name, source in VENDORED_MODULES.items():
        shutil.copyfile(source, target / name)
    return target


def default_config(endpoint: str, transport: str = "auto") -> dict[str, Any]:
    """What a plug-in needs to reach the daemon; `python` runs the bridge."""
    return {
        "endpoint": endpoint,
        "transport": transport,
        "python": sys.executable,
        "timeout_s": 5.0,
    }


def write_config(plugin_dir: Path, config: dict[str, Any]) -> Path:
    path = plugin_dir / CONFIG_NAME
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _host_module(host: str) -> Any:
    if host not in HOSTS:
        raise ValueError(f"unknown host {host!r}: choose one of {', '.join(HOSTS)}")
    return importlib.import_module(f"nst_plugins.{host}.installer")


def install(
    host: str, dest: str | None = None, endpoint: str | None = None, transport: str = "auto"
) -> Path:
    """Install HOST's plug-in; returns the folder it went to."""
    return _host_module(host).install(
        dest=Path(dest) if dest else None,
        endpoint=endpoint or nst_daemon.protocol.DEFAULT_ENDPOINT,
        transport=transport,
    )


def uninstall(host: str, dest: str | None = None) -> list[Path]:
    """Remove HOST's plug-in; returns what was removed."""
    return _host_module(host).uninstall(dest=Path(dest) if dest else None)
