"""How a plug-in reaches the daemon: the one loader of `nst_config.json` and its overrides.

`nst install-plugin` writes the file next to the plug-in; environment variables override it
(NST_ENDPOINT, NST_TRANSPORT=auto|zmq|bridge, NST_PYTHON, NST_TIMEOUT) so a user or a test can
force the bridge or another daemon without editing files.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from .protocol import DEFAULT_ENDPOINT

CONFIG_NAME = "nst_config.json"
TRANSPORTS = ("auto", "zmq", "bridge")


class SettingsError(ValueError):
    """A config file or environment variable that cannot be used; the message says which."""


def check_transport(name: str, source: str = "transport") -> str:
    """The transport name, or SettingsError: the one check of auto|zmq|bridge."""
    if name not in TRANSPORTS:
        raise SettingsError(f"{source}: must be one of {', '.join(TRANSPORTS)}, got {name!r}")
    return name


def zmq_available() -> bool:
    """True when this Python can talk to the daemon directly (pyzmq and msgpack)."""
    try:
        import msgpack  # noqa: F401
        import zmq  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Settings:
    """Where the daemon is and how to reach it."""

    endpoint: str = DEFAULT_ENDPOINT
    transport: str = "auto"
    #: The product's Python, which runs the bridge (default: this interpreter).
    python: str | None = None
    timeout_s: float = 5.0

    def resolved_transport(self) -> str:
        """zmq when this Python has pyzmq and msgpack, else the bridge (for 'auto')."""
        if self.transport != "auto":
            return self.transport
        return "zmq" if zmq_available() else "bridge"

    def bridge_python(self) -> str:
        return self.python or sys.executable

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path


def load(path: Path | None, env: Mapping[str, str] | None = None, endpoint: str = "") -> Settings:
    """The file's values (when path exists), then the environment's, then `endpoint` (one
    given for this run, e.g. in a dialog; blank = none); SettingsError if bad."""
    env = os.environ if env is None else env
    data: dict[str, object] = {}
    if path is not None and path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SettingsError(
                f"cannot read {path}: {exc}; reinstall with `nst install-plugin`"
            ) from None
        if not isinstance(loaded, dict):
            raise SettingsError(f"{path} must hold a JSON object")
        data = loaded
    where = path.name if path is not None else "the settings"
    settings = Settings()
    given = endpoint.strip()
    chosen = given or env.get("NST_ENDPOINT") or data.get("endpoint") or settings.endpoint
    source = "the endpoint given" if given else f"endpoint in {where}"
    if not isinstance(chosen, str) or "://" not in chosen:
        raise SettingsError(f"{source}: expected tcp://HOST:PORT, got {chosen!r}")
    settings.endpoint = chosen.strip()
    transport = env.get("NST_TRANSPORT") or data.get("transport") or "auto"
    source = "NST_TRANSPORT" if env.get("NST_TRANSPORT") else f"transport in {where}"
    settings.transport = check_transport(str(transport).lower(), source)
    python = env.get("NST_PYTHON") or data.get("python")
    settings.python = python if isinstance(python, str) and python else None
    timeout = env.get("NST_TIMEOUT") or data.get("timeout_s", settings.timeout_s)
    try:
        if isinstance(timeout, bool) or not isinstance(timeout, (str, int, float)):
            raise TypeError(timeout)
        settings.timeout_s = float(timeout)
    except (TypeError, ValueError):
        raise SettingsError(f"timeout_s in {where}: expected seconds, got {timeout!r}") from None
    if not (math.isfinite(settings.timeout_s) and settings.timeout_s > 0):
        raise SettingsError(f"timeout_s in {where}: must be positive, got {timeout!r}")
    return settings
