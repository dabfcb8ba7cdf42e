"""The user's local engine keys: made once, the user's alone, and what lets a client and the
engine on a loopback port know each other (nst_client.keyfiles, the daemon's RouterSocket, the
client's ZmqTransport; in-process sockets, no engine)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth

from nst_client.keyfiles import KeyFolderError, local_keys, local_keys_dir
from nst_client.settings import Settings, SettingsError, local_curve_keys
from nst_client.transports import UNDELIVERED, ZmqTransport
from nst_daemon.transport import RouterSocket


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_keys_are_made_once_and_are_the_users_alone(tmp_path: Path) -> None:
    folder = tmp_path / "nst" / "engine-keys"
    keys = local_keys(folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in keys.files())
    for path in keys.files():
        assert path.stat().st_mode & 0o777 == (0o600 if path.suffix == ".key_secret" else 0o644)
    before = [p.read_bytes() for p in keys.files()]
    assert [p.read_bytes() for p in local_keys(folder).files()] == before  # never made anew
    with pytest.raises(KeyFolderError, match="does not exist yet"):
        local_keys(tmp_path / "none", make=False)


def test_programs_starting_at_once_end_with_one_set(tmp_path: Path) -> None:
    folder = tmp_path / "engine-keys"
    seen: list[bytes] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        seen.append(local_curve_keys(folder).server_key)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and len(set(seen)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["engine-keys"]  # no draft left behind


def test_a_folder_or_secret_others_can_reach_is_refused_with_its_fix(tmp_path: Path) -> None:
    folder = tmp_path / "engine-keys"
    keys = local_keys(folder)
    folder.chmod(0o755)
    with pytest.raises(KeyFolderError, match=r"can be entered by other users .*chmod 700"):
        local_keys(folder)
    folder.chmod(0o700)
    keys.secret("client").chmod(0o644)
    with pytest.raises(SettingsError, match=r"your engine's keys: .*chmod 600"):
        local_curve_keys(folder)
    keys.secret("client").unlink()
    with pytest.raises(KeyFolderError, match=r"lacks client.key_secret: remove the folder"):
        local_keys(folder)


def test_the_folder_is_in_the_users_settings() -> None:
    home = {"HOME": "/home/a"}
    assert local_keys_dir(home, "linux") == Path("/home/a/.config/nst/engine-keys")
    xdg = {**home, "XDG_CONFIG_HOME": "/x/config"}
    assert local_keys_dir(xdg, "linux") == Path("/x/config/nst/engine-keys")
    mac = local_keys_dir(home, "darwin")
    assert mac == Path("/home/a/Library/Application Support/nst/engine-keys")
    win = {"HOME": r"C:\Users\a", "APPDATA": r"C:\Users\a\AppData\Roaming"}
    assert local_keys_dir(win, "win32") == Path(r"C:\Users\a\AppData\Roaming") / "nst/engine-keys"


@pytest.fixture
def engine() -> Iterator[tuple[RouterSocket, str]]:
    """A daemon's socket on a loopback port, served with the user's local keys."""
    ctx: zmq.Context[Any] = zmq.Context()
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    router = RouterSocket(ctx, endpoint)
    yield router, endpoint
    router.close(linger_ms=0)
    ctx.term()


def _received(router: RouterSocket, wait_s: float = 1.0) -> list[Any] | None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        frames = router.recv()
        if frames is not None:
            return frames
        time.sleep(0.01)
    return None


def _hello(transport: ZmqTransport) -> dict[str, Any] | None:
    """Send a hello; the transport's `undelivered` notice if it could not."""
    transport.send({"type": "hello", "id": "h"})
    got = transport.recv(0.05)
    return got[0] if got and got[0].get("type") == UNDELIVERED else None


def test_the_users_own_client_reaches_the_engine(engine: tuple[RouterSocket, str]) -> None:
    router, endpoint = engine
    keys = Settings(endpoint=endpoint).curve_keys()
    assert keys is not None and keys.local
    client = ZmqTransport(endpoint, keys.server_key, keys.client_keypair, 2.0, local_keys=True)
    try:
        assert _hello(client) is None
        assert _received(router) is not None
    finally:
        client.close()


def test_another_users_clients_get_nothing_in(
    engine: tuple[RouterSocket, str], tmp_path: Path
) -> None:
    """Another user has their own local keys (or none): the engine hears nothing of theirs,
    whether they connect plain, with their own keys, or with the engine's public key and a
    pair of their own."""
    router, endpoint = engine
    theirs = local_curve_keys(tmp_path / "other-user")
    ours = Settings(endpoint=endpoint).curve_keys()
    assert ours is not None
    attempts = [
        ZmqTransport(endpoint, send_timeout_s=0.2),
        ZmqTransport(endpoint, theirs.server_key, theirs.client_keypair, 0.2),
        ZmqTransport(endpoint, ours.server_key, theirs.client_keypair, 0.5, local_keys=True),
    ]
    try:
        notices = [_hello(client) for client in attempts]
        assert all(notice is not None for notice in notices)  # undelivered: no handshake
        assert _received(router, 0.2) is None
        # The engine judged the key and refused it: said as a key the engine does not accept.
        assert "does not accept the client key" in str(notices[2])
    finally:
        for client in attempts:
            client.close()


def test_a_listener_without_the_engines_secret_gets_nothing(tmp_path: Path) -> None:
    """Whoever holds the address without the engine's secret (another user's program, on a
    system whose listeners cannot be told apart; another user's own engine) receives no
    message, and the client says so."""
    ctx: zmq.Context[Any] = zmq.Context()
    plain = ctx.socket(zmq.ROUTER)  # takes whatever a client would send
    theirs = ctx.socket(zmq.ROUTER)  # another user's engine, with their own local keys
    other = local_keys(tmp_path / "other-user")
    theirs.curve_server = True
    theirs.curve_publickey, theirs.curve_secretkey = zmq.auth.load_certificate(
        other.secret("engine")
    )
    clients = []
    try:
        for rogue in (plain, theirs):
            endpoint = f"tcp://127.0.0.1:{_free_port()}"
            rogue.bind(endpoint)
            keys = Settings(endpoint=endpoint).curve_keys()
            assert keys is not None
            client = ZmqTransport(
                endpoint, keys.server_key, keys.client_keypair, 0.5, local_keys=True
            )
            clients.append(client)
            notice = _hello(client)
            assert notice is not None
            assert "is not your style engine" in notice["message"]
            assert "another user's program may hold the address" in notice["message"]
            assert "Nothing was sent" in notice["message"]
            assert not rogue.poll(100)
    finally:
        for client in clients:
            client.close()
        plain.close(0)
        theirs.close(0)
        ctx.term()


def test_a_bridge_that_cannot_use_its_keys_says_why(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """The bridge's settings problem reaches the editor in words (`bridge_failed`), not as
    "the bridge exited"; the transport raises it as the settings error it is."""
    import io

    from nst_client import bridge, pipe
    from nst_client.transports import BRIDGE_FAILED

    missing = str(tmp_path / "missing.key")
    assert bridge.main(["--endpoint", "tcp://127.0.0.1:9", "--curve-server-key", missing]) == 2
    header, _ = pipe.read_message(io.BytesIO(capsysbinary.readouterr().out))
    assert header["type"] == BRIDGE_FAILED
    assert f"{missing}: no such file" in header["message"]
