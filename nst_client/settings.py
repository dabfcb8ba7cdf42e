"""How a plug-in reaches the daemon: the one loader of `nst_config.json` and its overrides.

`nst install-plugin` writes the file next to the plug-in; environment variables override it
(NST_ENDPOINT, NST_TRANSPORT=auto|zmq|bridge, NST_PYTHON, NST_TIMEOUT, NST_CURVE_SERVER_KEY,
NST_CURVE_CLIENT_CERT) so a user or a test can force the bridge or another daemon without
editing files.

CURVE keys are read here with the standard library only, so an editor whose Python lacks
pyzmq (it talks through the bridge) still says which key file is wrong when it loads them.
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
#: ZeroMQ's Z85 alphabet; a CURVE key is 40 of these characters (32 bytes).
Z85_CHARS = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)
CURVE_KEY_LENGTH = 40


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


@dataclass(frozen=True)
class CurveKeys:
    """What a CURVE client socket needs, each key as 40 Z85 characters.

    client_keypair is None when no client certificate was given: the transport then makes a
    throwaway pair, which only a daemon that allows any client key accepts (`nst-daemon
    --curve-allow` does not).
    """

    server_key: bytes
    client_keypair: tuple[bytes, bytes] | None


def is_curve_key(text: str) -> bool:
    return len(text) == CURVE_KEY_LENGTH and set(text) <= Z85_CHARS


def read_certificate(path: Path, source: str) -> tuple[bytes, bytes | None]:
    """The public and secret key (None if absent) in a ZeroMQ certificate file, the text
    `zmq.auth.create_certificates` writes (`public-key = "..."`, `secret-key = "..."`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{source}: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{source}: cannot read {path}: {exc}") from None
    keys: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.strip() in ("public-key", "secret-key"):
            keys[name.strip()] = value.strip().strip("'\"")
    for name, value in keys.items():
        if not is_curve_key(value):
            raise SettingsError(f"{source}: {path}: its {name} is not a 40-character Z85 key")
    if "public-key" not in keys:
        raise SettingsError(
            f"{source}: {path} is not a ZeroMQ certificate (no public-key); make one with "
            "zmq.auth.create_certificates"
        )
    secret = keys.get("secret-key")
    return keys["public-key"].encode(), secret.encode() if secret else None


def read_curve_keys(
    server_key: str | None,
    client_cert: str | None,
    sources: tuple[str, str] = ("curve_server_key", "curve_client_cert"),
) -> CurveKeys | None:
    """The CURVE keys the settings name, or None when there is no server key (no CURVE);
    SettingsError naming the setting (sources) and the file when they cannot be used.

    server_key: the daemon's public certificate (server.key) or its 40-character key;
    client_cert: this client's secret certificate (client.key_secret), holding both keys.
    The one reader of key files: the zmq transport and the bridge both use it.
    """
    server_source, client_source = sources
    if not server_key:
        if client_cert:
            raise SettingsError(
                f"{client_source} needs curve_server_key too (the daemon's public key)"
            )
        return None
    if Path(server_key).is_file() or not is_curve_key(server_key):
        server_public = read_certificate(Path(server_key), server_source)[0]
    else:
        server_public = server_key.encode()
    if not client_cert:
        return CurveKeys(server_public, None)
    public, secret = read_certificate(Path(client_cert), client_source)
    if secret is None:
        raise SettingsError(
            f"{client_source}: {client_cert} holds no secret key (it is a public "
            "certificate); give this client's secret certificate, client.key_secret"
        )
    return CurveKeys(server_public, (public, secret))


@dataclass
class Settings:
    """Where the daemon is and how to reach it."""

    endpoint: str = DEFAULT_ENDPOINT
    transport: str = "auto"
    #: The product's Python, which runs the bridge (default: this interpreter).
    python: str | None = None
    timeout_s: float = 5.0
    #: The daemon's public CURVE key: its certificate file (server.key) or the 40-character
    #: key. Needed for a daemon bound to a non-loopback address.
    curve_server_key: str | None = None
    #: This client's secret certificate file (client.key_secret); its public half (client.key)
    #: goes in the daemon's --curve-allow folder.
    curve_client_cert: str | None = None

    def resolved_transport(self) -> str:
        """zmq when this Python has pyzmq and msgpack, else the bridge (for 'auto')."""
        if self.transport != "auto":
            return self.transport
        return "zmq" if zmq_available() else "bridge"

    def bridge_python(self) -> str:
        return self.python or sys.executable

    def curve_keys(self) -> CurveKeys | None:
        """The CURVE keys to connect with (None: plain connection); SettingsError if bad."""
        return read_curve_keys(self.curve_server_key, self.curve_client_cert)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path


def _key_path(value: object, source: str, base: Path | None) -> str | None:
    """A key setting as stored: absolute when it is a path (relative ones are taken from
    base, the config file's folder, or the working directory), unchanged when it is a key."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SettingsError(f"{source}: expected a file path, got {value!r}")
    value = value.strip()
    if is_curve_key(value) and not (base or Path.cwd()).joinpath(value).is_file():
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base or Path.cwd()) / path)


def load(
    path: Path | None,
    env: Mapping[str, str] | None = None,
    endpoint: str = "",
    curve_server_key: str = "",
    curve_client_cert: str = "",
) -> Settings:
    """The file's values (when path exists), then the environment's, then those given for
    this run (endpoint from a dialog, the CURVE files from the command line; blank = none);
    SettingsError if bad, key files included."""
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
    sources = []
    value: object
    for field, given_value, variable in (
        ("curve_server_key", curve_server_key, "NST_CURVE_SERVER_KEY"),
        ("curve_client_cert", curve_client_cert, "NST_CURVE_CLIENT_CERT"),
    ):
        if given_value.strip():
            value, source, base = given_value, f"the {field} given", None
        elif env.get(variable, "").strip():
            value, source, base = env[variable], variable, None
        else:
            value, source = data.get(field), f"{field} in {where}"
            base = path.parent if path is not None else None
        setattr(settings, field, _key_path(value, source, base))
        sources.append(source)
    read_curve_keys(settings.curve_server_key, settings.curve_client_cert, (sources[0], sources[1]))
    return settings
