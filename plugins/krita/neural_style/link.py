"""How the docker reaches the daemon, and what it says about it (no Qt here).

The settings are the file `nst install-plugin krita` writes next to this package, read by
nst_client.settings with its environment overrides (NST_ENDPOINT, NST_TRANSPORT, NST_PYTHON,
NST_TIMEOUT). The installer puts the `nst_client` package beside this one in pykrita.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nst_client import client, settings

CONFIG_PATH = Path(__file__).resolve().parent / settings.CONFIG_NAME
CLIENT_NAME = "krita-neural-style"
REINSTALL = "nst install-plugin krita"


def load_settings() -> settings.Settings:
    """The installed settings; SettingsError says what is wrong with them."""
    return settings.load(CONFIG_PATH)


def connect(daemon: settings.Settings) -> client.Client:
    """A Client on the settings' transport (from a worker thread: it may start the bridge)."""
    return client.connect(daemon, f"{CLIENT_NAME}/{daemon.resolved_transport()}")


def status_line(welcome: Mapping[str, Any], daemon: settings.Settings) -> str:
    """'Daemon connected: cuda:0 via zmq (tcp://127.0.0.1:5757)'."""
    device = welcome.get("device") or "unknown device"
    return f"Daemon connected: {device} via {daemon.resolved_transport()} ({daemon.endpoint})"


def version_warning(welcome: Mapping[str, Any]) -> str | None:
    """Words for the user when this plug-in's client is not the daemon's version, else None."""
    return client.version_note(welcome, REINSTALL)
