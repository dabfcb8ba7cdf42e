"""A remote daemon with CURVE keys, reached the ways a user reaches it: `connect` on either
transport, `nst status`/`nst stylize --daemon`, and the settings `nst install-plugin` writes.

Every call that cannot succeed must fail within its timeout, however often it is retried: a
thread guards each, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import product
import pytest
from daemon_process import DaemonProc, free_port
from PIL import Image

from nst_client.client import Client, DaemonUnavailable, ZmqTransport, connect
from nst_client.settings import CONFIG_NAME, Settings, SettingsError, load

pytestmark = pytest.mark.e2e

NST = [product.bin_path("nst")]
T = TypeVar("T")
#: Slack on top of a call's own timeout before it counts as a hang.
SLACK_S = 2.0


@dataclass(frozen=True)
class Keys:
    """Certificates as `nst keys` makes them."""

    server_public: Path  # server.key: for clients
    server_secret: Path  # server.key_secret: for the daemon only
    client_public: Path  # allowed/client.key: in the daemon's --curve-allow folder
    client_secret: Path  # allowed/client.key_secret: for the client
    stranger_secret: Path  # a key pair the daemon does not allow


@dataclass(frozen=True)
class CurveDaemon:
    endpoint: str  # where clients connect (the daemon binds 0.0.0.0)
    keys: Keys
    proc: DaemonProc


@pytest.fixture(scope="module")
def curve_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CurveDaemon]:
    from nst_app.keys import make_keys

    root = tmp_path_factory.mktemp("curve")
    server_public, server_secret = (str(path) for path in make_keys(root, "server"))
    allowed = root / "allowed"
    allowed.mkdir()
    client_public, client_secret = (str(path) for path in make_keys(allowed, "client"))
    _, stranger_secret = (str(path) for path in make_keys(root, "stranger"))
    keys = Keys(
        Path(server_public),
        Path(server_secret),
        Path(client_public),
        Path(client_secret),
        Path(stranger_secret),
    )
    port = free_port()
    args = ["--curve-secret-key", server_secret, "--curve-allow", str(allowed)]
    proc = DaemonProc(f"tcp://0.0.0.0:{port}", *args, "--no-warmup", "--device", "cpu")
    try:
        yield CurveDaemon(f"tcp://127.0.0.1:{port}", keys, proc)
    finally:
        proc.stop()


def within(limit_s: float, call: Callable[[], T]) -> tuple[T | BaseException, float]:
    """call()'s result or exception and its duration; fails the test if it runs past limit_s
    (the thread is left behind: it is a daemon thread)."""
    box: list[T | BaseException] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # handed to the test
            box.append(exc)

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    elapsed = time.monotonic() - start
    if not box:
        pytest.fail(f"the call hung: still running after {limit_s:g} s")
    return box[0], elapsed


def unavailable_every_time(client: Client, timeout_s: float, calls: int = 3) -> list[str]:
    """Each of `calls` requests raises DaemonUnavailable within timeout_s; their messages."""
    messages = []
    requests: list[Callable[[], Any]] = [client.ping, client.status, client.hello]
    for n in range(calls):
        outcome, elapsed = within(timeout_s + SLACK_S, requests[n % len(requests)])
        assert isinstance(outcome, DaemonUnavailable), (n, outcome)
        assert elapsed < timeout_s + 0.5, (n, elapsed)
        messages.append(str(outcome))
    return messages


# --- no hang after a failed handshake -------------------------------------------------------


def test_a_refused_client_fails_every_call_in_time_not_only_the_first(
    curve_daemon: CurveDaemon,
) -> None:
    """The regression: a DEALER whose handshake failed blocked forever on its second send."""
    import zmq.auth

    server_key = zmq.auth.load_certificate(curve_daemon.keys.server_public)[0]
    endpoint = curve_daemon.endpoint
    transport = ZmqTransport(endpoint, curve_server_key=server_key)  # a throwaway key pair
    client = Client(endpoint, transport=transport, timeout_s=1.0)
    try:
        # A transport made by hand keeps its own send timeout (5 s by default).
        messages = unavailable_every_time(client, 5.0)
    finally:
        client.close()
    assert all("refused this client's CURVE key" in m for m in messages), messages
    assert "client.key_secret" in messages[0]  # it says how to give a certificate


@pytest.mark.parametrize("transport", ["zmq", "bridge"])
def test_a_key_the_daemon_does_not_allow_fails_in_time_with_the_reason(
    curve_daemon: CurveDaemon, transport: str
) -> None:
    keys = curve_daemon.keys
    settings = Settings(
        endpoint=curve_daemon.endpoint,
        transport=transport,
        timeout_s=1.0,
        curve_server_key=str(keys.server_public),
        curve_client_cert=str(keys.stranger_secret),
    )
    with connect(settings) as client:
        messages = unavailable_every_time(client, settings.timeout_s)
    for message in messages:
        assert "refused this client's CURVE key" in message, message
        assert "--curve-allow" in message and "client.key" in message


@pytest.mark.parametrize(
    "change,words",
    [
        # On a loopback port a client with no keys named uses the user's local keys, which
        # this engine (an administrator's keys) does not hold.
        ({"curve_server_key": None, "curve_client_cert": None}, "is not your style engine"),
        ({"curve_server_key": "stranger"}, "curve_server_key must be the daemon's public key"),
    ],
    ids=["no-keys", "wrong-server-key"],
)
def test_missing_or_wrong_keys_are_named(
    curve_daemon: CurveDaemon, change: dict[str, str | None], words: str
) -> None:
    keys = curve_daemon.keys
    given: dict[str, Any] = {
        "curve_server_key": str(keys.server_public),
        "curve_client_cert": str(keys.client_secret),
        **change,
    }
    if given["curve_server_key"] == "stranger":
        given["curve_server_key"] = str(keys.stranger_secret.with_suffix(".key"))
    settings = Settings(endpoint=curve_daemon.endpoint, transport="zmq", timeout_s=1.0, **given)
    with connect(settings) as client:
        messages = unavailable_every_time(client, settings.timeout_s, calls=2)
    assert all(words in m for m in messages), messages


def test_a_client_works_again_after_errors(curve_daemon: CurveDaemon) -> None:
    """A DaemonError and a timed-out request leave the client usable."""
    from nst_client import protocol as P
    from nst_client.client import DaemonError

    keys = curve_daemon.keys
    settings = Settings(
        endpoint=curve_daemon.endpoint,
        transport="zmq",
        timeout_s=5.0,
        curve_server_key=str(keys.server_public),
        curve_client_cert=str(keys.client_secret),
    )
    with connect(settings) as client:
        with pytest.raises(DaemonError):
            client.request(cast(Any, {"type": "no-such-request", "id": client.new_id()}))
        outcome, _ = within(5.0 + SLACK_S, client.ping)
        assert isinstance(outcome, dict) and outcome["type"] == P.PONG


# --- keys everywhere a user reaches the daemon ---------------------------------------------


@pytest.mark.parametrize("transport", ["zmq", "bridge"])
@pytest.mark.parametrize("server_key", ["file", "z85"])
def test_connect_with_key_files(curve_daemon: CurveDaemon, transport: str, server_key: str) -> None:
    import zmq.auth

    keys = curve_daemon.keys
    given = str(keys.server_public)
    if server_key == "z85":
        given = zmq.auth.load_certificate(keys.server_public)[0].decode()
    settings = Settings(
        endpoint=curve_daemon.endpoint,
        transport=transport,
        timeout_s=10.0,
        curve_server_key=given,
        curve_client_cert=str(keys.client_secret),
    )
    with connect(settings, "curve-test") as client:
        assert client.hello()["protocol"] == 1
        assert client.status()["type"] == "status"


def test_connect_refuses_a_public_certificate_as_the_client_cert(
    curve_daemon: CurveDaemon,
) -> None:
    keys = curve_daemon.keys
    settings = Settings(
        endpoint=curve_daemon.endpoint,
        curve_server_key=str(keys.server_public),
        curve_client_cert=str(keys.client_public),
    )
    for transport in ("zmq", "bridge"):
        settings.transport = transport
        with pytest.raises(SettingsError, match="holds no secret key"):
            connect(settings)


def run_nst(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NST, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_nst_status_with_key_options_and_with_env(curve_daemon: CurveDaemon) -> None:
    keys = curve_daemon.keys
    options = ["--curve-server-key", str(keys.server_public)]
    options += ["--curve-client-cert", str(keys.client_secret)]
    r = run_nst("status", "--endpoint", curve_daemon.endpoint, *options)
    assert r.returncode == 0, r.stderr
    assert "device: cpu" in r.stdout, r.stdout

    env = {
        "NST_ENDPOINT": curve_daemon.endpoint,
        "NST_CURVE_SERVER_KEY": str(keys.server_public),
        "NST_CURVE_CLIENT_CERT": str(keys.client_secret),
    }
    r = run_nst("status", env=env)
    assert r.returncode == 0, r.stderr
    assert "device: cpu" in r.stdout, r.stdout

    r = run_nst("status", "--timeout", "1", env={**env, "NST_CURVE_CLIENT_CERT": ""})
    assert r.returncode == 2
    assert "refused this client's CURVE key" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "option,value,words",
    [
        ("--curve-client-cert", "{dir}/missing.key_secret", "missing.key_secret: no such file"),
        ("--curve-client-cert", "{client_public}", "holds no secret key"),
        ("--curve-server-key", "{dir}/nothing.key", "nothing.key: no such file"),
        ("--curve-server-key", "{notes}", "is not a ZeroMQ certificate"),
    ],
)
def test_nst_status_names_an_unusable_key_file(
    curve_daemon: CurveDaemon, tmp_path: Path, option: str, value: str, words: str
) -> None:
    keys = curve_daemon.keys
    notes = tmp_path / "notes.txt"
    notes.write_text("not a certificate\n")
    fmt = {"dir": str(tmp_path), "client_public": str(keys.client_public), "notes": str(notes)}
    given = {"--curve-server-key": str(keys.server_public)}
    given["--curve-client-cert"] = str(keys.client_secret)
    given[option] = value.format(**fmt)
    args = [a for pair in given.items() for a in pair]
    r = run_nst("status", "--endpoint", curve_daemon.endpoint, *args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert words in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("nst: error: the curve_"), r.stderr


def test_nst_stylize_on_the_curve_daemon(curve_daemon: CurveDaemon, tmp_path: Path) -> None:
    keys = curve_daemon.keys
    rng = np.random.default_rng(0)
    content, style, out = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "out.png"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(content)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(style)
    r = run_nst(
        "stylize",
        str(content),
        str(style),
        "-o",
        str(out),
        "--daemon",
        curve_daemon.endpoint,
        "--curve-server-key",
        str(keys.server_public),
        "--curve-client-cert",
        str(keys.client_secret),
        "--size",
        "32",
        "--iterations",
        "2",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert out.is_file()


@pytest.mark.parametrize("host", ["gimp", "krita"])
def test_install_plugin_writes_keys_the_plugin_connects_with(
    curve_daemon: CurveDaemon, tmp_path: Path, host: str
) -> None:
    keys = curve_daemon.keys
    dest = tmp_path / "plugins"
    home = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    r = run_nst(
        "install-plugin",
        host,
        "--dest",
        str(dest),
        "--endpoint",
        curve_daemon.endpoint,
        "--transport",
        "bridge",
        "--curve-server-key",
        str(keys.server_public),
        "--curve-client-cert",
        str(keys.client_secret),
        env=home,
    )
    assert r.returncode == 0, r.stderr
    (config,) = dest.rglob(CONFIG_NAME)
    settings = load(config, env={})
    assert settings.curve_server_key == str(keys.server_public)
    assert settings.curve_client_cert == str(keys.client_secret)
    for transport in ("bridge", "zmq"):  # what the editor's Python and the CLI's would use
        settings.transport = transport
        with connect(settings, f"{host}-test") as client:
            assert client.hello()["protocol"] == 1

    r = run_nst(
        "install-plugin",
        host,
        "--dest",
        str(tmp_path / "other"),
        "--curve-server-key",
        str(keys.server_public),
        "--curve-client-cert",
        str(keys.client_public),
        env=home,
    )
    assert r.returncode == 2 and "holds no secret key" in r.stderr, r.stderr
    assert not (tmp_path / "other").exists()  # checked before anything was copied
