"""How the docker reaches the daemon: its settings and the vendored client (no Qt here).

Settings come from nst_config.json written by `nst install-plugin krita`; environment variables
override them (NST_ENDPOINT, NST_TRANSPORT=zmq|bridge|auto, NST_PYTHON) so a user or a test can
force the bridge without editing files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # the copy that `nst install-plugin` puts next to this package
    from .nst_client import client, layouts, protocol
except ImportError:  # running from a source checkout with the product installed
    from nst_core import layouts  # type: ignore[no-redef]  # noqa: I001
    from nst_daemon import client, protocol  # type: ignore[no-redef]

__all__ = ["client", "layouts", "protocol", "DaemonSettings", "load_settings", "connect"]

CONFIG_PATH = Path(__file__).with_name("nst_config.json")
TRANSPORTS = ("auto", "zmq", "bridge")
CLIENT_NAME = "krita-neural-style"

DaemonUnavailable = client.DaemonUnavailable
DaemonError = client.DaemonError
JobCancelled = client.JobCancelled
RawImage = tuple[dict[str, Any], bytes]


class SettingsError(ValueError):
    """A config file or environment variable the plug-in cannot use."""


@dataclass
class DaemonSettings:
    endpoint: str = protocol.DEFAULT_ENDPOINT
    transport: str = "auto"
    python: str | None = None
    timeout_s: float = 5.0

    def resolved_transport(self) -> str:
        """zmq when Krita's Python has pyzmq and msgpack, else the bridge (for 'auto')."""
        if self.transport != "auto":
            return self.transport
        try:
            import msgpack  # noqa: F401
            import zmq  # noqa: F401
        except ImportError:
            return "bridge"
        return "zmq"


def load_settings(path: Path = CONFIG_PATH, env: dict[str, str] | None = None) -> DaemonSettings:
    """The config file's values, then environment overrides; SettingsError names what is bad."""
    env = dict(os.environ if env is None else env)
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SettingsError(
                f"cannot read {path}: {exc}; reinstall with `nst install-plugin krita`"
            ) from None
        if not isinstance(data, dict):
            raise SettingsError(f"{path} must hold a JSON object")
    settings = DaemonSettings()
    settings.endpoint = str(env.get("NST_ENDPOINT") or data.get("endpoint") or settings.endpoint)
    settings.transport = str(env.get("NST_TRANSPORT") or data.get("transport") or "auto").lower()
    settings.python = env.get("NST_PYTHON") or data.get("python") or None
    try:
        settings.timeout_s = float(data.get("timeout_s", settings.timeout_s))
    except (TypeError, ValueError):
        raise SettingsError(
            f"{path}: timeout_s must be a number, got {data.get('timeout_s')!r}"
        ) from None
    if settings.transport not in TRANSPORTS:
        raise SettingsError(
            f"transport must be one of {', '.join(TRANSPORTS)}, got "
            f"{settings.transport!r} (from NST_TRANSPORT or {path.name})"
        )
    return settings


def connect(settings: DaemonSettings) -> Any:
    """A protocol Client on the chosen transport (call from a worker thread, not the GUI)."""
    transport = settings.resolved_transport()
    return client.connect(
        settings.endpoint,
        transport=transport,
        python=settings.python,
        timeout_s=settings.timeout_s,
        client_name=f"{CLIENT_NAME}/{transport}",
    )


def describe_welcome(welcome: dict[str, Any], settings: DaemonSettings) -> str:
    """One status line from the daemon's welcome: device and transport."""
    device = welcome.get("device") or welcome.get("devices") or "unknown device"
    if isinstance(device, dict):
        device = device.get("name") or device.get("type") or json.dumps(device)
    elif isinstance(device, (list, tuple)):
        device = ", ".join(str(d) for d in device)
    return f"Daemon connected: {device} via {settings.resolved_transport()} ({settings.endpoint})"
