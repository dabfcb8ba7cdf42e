"""Steps every host's installer shares: where the plug-in files are, the client copy, settings.

The client package is copied as it is (its `__version__` is the product's), so a plug-in left
behind by an upgrade can tell from the daemon's `welcome.version` that it is stale.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path
from types import ModuleType

import nst_client
from nst_client import protocol
from nst_client.settings import CONFIG_NAME, Settings, check_transport, load

HOSTS = ("gimp", "krita")
CLIENT_PACKAGE = "nst_client"
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


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


def plugin_settings(
    endpoint: str,
    transport: str,
    curve_server_key: str | None = None,
    curve_client_cert: str | None = None,
) -> Settings:
    """The plug-in's settings: the daemon's endpoint, the transport, this Python for the bridge,
    and the CURVE key files as absolute paths. Checked in full by the one settings loader, so
    an installer calls this before it copies anything: a bad value leaves nothing behind."""
    settings = load(None, {}, endpoint, curve_server_key or "", curve_client_cert or "")
    settings.transport = check_transport(transport)
    settings.python = sys.executable
    return settings


def write_settings(folder: Path, settings: Settings) -> Path:
    return settings.save(folder / CONFIG_NAME)


def _host_module(host: str) -> ModuleType:
    if host not in HOSTS:
        raise ValueError(f"unknown host {host!r}: choose one of {', '.join(HOSTS)}")
    return importlib.import_module(f"nst_plugins.{host}_installer")


def install(
    host: str,
    dest: str | None = None,
    endpoint: str | None = None,
    transport: str = "auto",
    curve_server_key: str | None = None,
    curve_client_cert: str | None = None,
) -> Path:
    """Install HOST's plug-in; returns the folder it went to. The CURVE key files are those
    of nst_client.settings (the daemon's server.key, this client's client.key_secret)."""
    installed: Path = _host_module(host).install(
        dest=Path(dest) if dest else None,
        endpoint=endpoint or protocol.DEFAULT_ENDPOINT,
        transport=transport,
        curve_server_key=curve_server_key,
        curve_client_cert=curve_client_cert,
    )
    return installed


def uninstall(host: str, dest: str | None = None) -> list[Path]:
    """Remove HOST's plug-in; returns what was removed."""
    removed: list[Path] = _host_module(host).uninstall(dest=Path(dest) if dest else None)
    return removed
