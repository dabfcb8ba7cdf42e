"""How a plug-in reaches the daemon: the one loader of `nst_config.json` and its overrides.

`nst install-plugin` writes the file next to the plug-in; environment variables override it
(NST_ENDPOINT, NST_TRANSPORT=auto|zmq|bridge, NST_PYTHON, NST_TIMEOUT, NST_CURVE_SERVER_KEY,
NST_CURVE_CLIENT_CERT, NST_START_ON_DEMAND, NST_DAEMON, NST_IDLE_EXIT) so a user or a test can
force the bridge or another daemon without editing files; what is given for the run (the
command line's options, an editor's own settings UI: `overrides`) wins over both. `load` is
the one place that precedence is applied.

CURVE keys are read here with the standard library only, so an editor whose Python lacks
pyzmq (it talks through the bridge) still says which key file is wrong when it loads them.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from . import endpoints, keyfiles
from .protocol import DEFAULT_ENDPOINT

CONFIG_NAME = "nst_config.json"
TRANSPORTS = ("auto", "zmq", "bridge")
#: ZeroMQ's Z85 alphabet; a CURVE key is 40 of these characters (32 bytes).
Z85_CHARS = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)
CURVE_KEY_LENGTH = 40
#: How long an engine started on demand waits for a job before it exits (30 min).
DEFAULT_IDLE_EXIT_S = 1800.0
#: What an editor's settings UI may set and keep (a subset of load's overrides).
OVERRIDABLE = (
    "endpoint",
    "curve_server_key",
    "curve_client_cert",
    "start_on_demand",
    "idle_exit_s",
)


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
        import msgpack
        import zmq
    except ImportError:
        return False
    # A folder named zmq or msgpack without the library imports as an empty namespace package.
    return hasattr(zmq, "Context") and hasattr(msgpack, "packb")


@dataclass(frozen=True)
class CurveKeys:
    """What a CURVE client socket needs, each key as 40 Z85 characters.

    client_keypair is None when no client certificate was given: the transport then makes a
    throwaway pair, which only a daemon that allows any client key accepts (`nst-daemon
    --curve-allow` does not).
    """

    server_key: bytes
    client_keypair: tuple[bytes, bytes] | None
    #: The user's own keys for the engine on this machine (keyfiles.local_keys), not an
    #: administrator's: a failed handshake then means the listener is not the user's engine.
    local: bool = False


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
    problem = keyfiles.exposed(client_cert) if secret is not None else None
    if problem is not None:
        raise SettingsError(f"{client_source}: {problem}")
    if secret is None:
        raise SettingsError(
            f"{client_source}: {client_cert} holds no secret key (it is a public "
            "certificate); give this client's secret certificate, client.key_secret"
        )
    return CurveKeys(server_public, (public, secret))


def local_curve_keys(folder: Path | None = None) -> CurveKeys:
    """The user's local keys as a client uses them: the engine's public key, the clients'
    pair; made on first use; SettingsError naming the folder when they cannot be had."""
    try:
        keys = keyfiles.local_keys(folder)
    except ImportError:
        raise SettingsError(
            "your engine's keys are made by the product's Python (pyzmq): start the engine "
            "once with `nst daemon start`, or use the bridge (transport: bridge)"
        ) from None
    except OSError as exc:
        raise SettingsError(f"your engine's keys: {exc}") from None
    source = "your engine's keys"
    server_public = read_certificate(keys.public(keyfiles.ENGINE), source)[0]
    public, secret = read_certificate(keys.secret(keyfiles.CLIENT), source)
    if secret is None:
        raise SettingsError(f"{source}: {keys.secret(keyfiles.CLIENT)} holds no secret key")
    return CurveKeys(server_public, (public, secret), local=True)


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
    #: Start the local engine when none answers (nst_client.launcher).
    start_on_demand: bool = True
    #: The command that starts the engine, recorded at install time (the product's nst-daemon).
    daemon: list[str] | None = None
    #: An engine started on demand exits after this many seconds without a job.
    idle_exit_s: float = DEFAULT_IDLE_EXIT_S
    #: Prefix of every program run outside an editor's sandbox (the bridge's Python, the
    #: engine): ["flatpak-spawn", "--host"] for a Flatpak editor, else nothing.
    host_command: list[str] = field(default_factory=list)

    def resolved_transport(self) -> str:
        """zmq when this Python has pyzmq and msgpack, else the bridge (for 'auto')."""
        if self.transport != "auto":
            return self.transport
        return "zmq" if zmq_available() else "bridge"

    def bridge_python(self) -> str:
        return self.python or sys.executable

    def bridge_command(self) -> list[str]:
        """The bridge's Python as a command line (behind host_command in a sandbox)."""
        return [*self.host_command, self.bridge_python()]

    def daemon_command(self) -> list[str] | None:
        """The engine's command line (behind host_command), or None when none was recorded."""
        return [*self.host_command, *self.daemon] if self.daemon else None

    def curve_keys(self) -> CurveKeys | None:
        """The CURVE keys to connect with: those the settings name, else on a loopback TCP
        endpoint the user's local keys (made on first use), else None (a plain connection:
        an ipc socket, whose folder guards it); SettingsError if they cannot be used."""
        named = read_curve_keys(self.curve_server_key, self.curve_client_cert)
        if named is not None or not endpoints.is_loopback_tcp(self.endpoint):
            return named
        return local_curve_keys()

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


def _bool(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{source}: expected true or false, got {value!r}")


def _seconds(value: object, source: str, allow_zero: bool) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError(value)
        seconds = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{source}: expected seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        limit = "0 (never) or more" if allow_zero else "positive"
        raise SettingsError(f"{source}: must be {limit}, got {value!r}")
    return seconds


def _command(value: object, source: str) -> list[str] | None:
    """A command line: a list of strings, or one string split as a shell would."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise SettingsError(f"{source}: {exc}") from None
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise SettingsError(f"{source}: expected a command (a list of strings), got {value!r}")


#: Each setting's environment variable ("" = none).
VARIABLES = {
    "endpoint": "NST_ENDPOINT",
    "transport": "NST_TRANSPORT",
    "python": "NST_PYTHON",
    "timeout_s": "NST_TIMEOUT",
    "start_on_demand": "NST_START_ON_DEMAND",
    "idle_exit_s": "NST_IDLE_EXIT",
    "daemon": "NST_DAEMON",
    "host_command": "",
    "curve_server_key": "NST_CURVE_SERVER_KEY",
    "curve_client_cert": "NST_CURVE_CLIENT_CERT",
}


def _endpoint(value: object, source: str) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise SettingsError(f"{source}: expected tcp://HOST:PORT, got {value!r}")
    return value.strip()


def _python(value: object, source: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SettingsError(f"{source}: expected a program path, got {value!r}")
    return value


#: How each setting's value is checked and converted (key settings are paths: _key_path).
_CHECKS = {
    "endpoint": _endpoint,
    "transport": lambda v, s: check_transport(str(v).lower(), s),
    "python": _python,
    "timeout_s": lambda v, s: _seconds(v, s, allow_zero=False),
    "start_on_demand": _bool,
    "idle_exit_s": lambda v, s: _seconds(v, s, allow_zero=True),
    "daemon": _command,
    "host_command": lambda v, s: _command(v, s) or [],
}


def load(
    path: Path | None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    labels: Mapping[str, str] | None = None,
    defaults: Settings | None = None,
) -> Settings:
    """The settings of one run, each by the one precedence: what is given for this run
    (overrides: the command line's options, an editor's settings UI; blank or None = not
    given) > the environment (VARIABLES) > the file at path (when it exists) > defaults
    (Settings() when None). SettingsError names the setting and where it came from, key files
    included. labels: how a message names a given value, per key (an editor's field,
    '"Engine address" in the dialog'); by default "the KEY given"."""
    named = dict(labels or {})
    env = os.environ if env is None else env
    given = {
        k: v.strip() if isinstance(v, str) else v
        for k, v in (overrides or {}).items()
        if v is not None and not (isinstance(v, str) and not v.strip())
    }
    unknown = sorted(set(given) - set(VARIABLES))
    if unknown:
        raise SettingsError(f"unknown settings {', '.join(unknown)}")
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
    settings = replace(defaults) if defaults is not None else Settings()
    sources: dict[str, str] = {}
    for key, variable in VARIABLES.items():
        base: Path | None = None
        value: object
        if key in given:
            value, source = given[key], named.get(key, f"the {key} given")
        elif variable and env.get(variable, "").strip():
            value, source = env[variable], variable
        elif key in data:
            value, source = data[key], f"{key} in {where}"
            base = path.parent if path is not None else None
        else:
            continue
        sources[key] = source
        if key in ("curve_server_key", "curve_client_cert"):
            setattr(settings, key, _key_path(value, source, base))
        else:
            setattr(settings, key, _CHECKS[key](value, source))
    read_curve_keys(
        settings.curve_server_key,
        settings.curve_client_cert,
        (
            sources.get("curve_server_key", "curve_server_key"),
            sources.get("curve_client_cert", "curve_client_cert"),
        ),
    )
    return settings
