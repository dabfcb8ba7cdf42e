"""Other people on the machine, with real processes: a module planted in the editor's current
folder does not run in the helpers the client starts, and another real user cannot hold the
launchers' lock (the tests run the hostile side as `nobody`; that needs root, as in CI)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nst_client import launcher, spawn
from nst_client.settings import Settings
from nst_client.transports import BridgeTransport

pytestmark = pytest.mark.e2e

PLANTED = """
import pathlib
pathlib.Path(__file__).with_name("planted-ran").write_text("the planted module ran")
raise SystemExit("planted")
"""


@pytest.fixture()
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The editor's current folder, with an argparse.py beside the artist's document."""
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "argparse.py").write_text(PLANTED)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir(mode=0o700)
    return folder


def test_the_bridge_does_not_run_a_module_planted_in_the_current_folder(planted: Path) -> None:
    bridge = BridgeTransport("tcp://127.0.0.1:9", [sys.executable], timeout_s=5.0)
    try:
        assert bridge._proc.poll() is None, "the bridge did not start"
    finally:
        bridge.close()
    assert not (planted / "planted-ran").exists()


def test_the_engine_on_demand_does_not_run_a_module_planted_there(planted: Path) -> None:
    """The engine's command imports argparse first thing, as nst-daemon does."""
    settings = Settings(
        endpoint="tcp://127.0.0.1:9", daemon=[sys.executable, "-c", "import argparse"]
    )
    started = launcher.start_engine(settings)
    assert started.process.wait(30) == 0, started.failure()
    assert not (planted / "planted-ran").exists()


# --- another user --------------------------------------------------------------------------

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="running the other user's side needs root (CI runs as root)",
)


NOBODY = "nobody"


def as_nobody(script: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    """SCRIPT run by the system's Python as `nobody` (who may not run this checkout's), from
    /, its stdout piped; and nobody's uid."""
    entry = pwd.getpwnam(NOBODY)

    def become_nobody() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    proc = subprocess.Popen(
        ["/usr/bin/python3", "-c", script, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
        preexec_fn=become_nobody,
    )
    return proc, entry.pw_uid


@pytest.fixture()
def shared_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp folder every user may write, as /tmp is (sticky, world-writable), used as the
    launchers' fallback when there is no XDG_RUNTIME_DIR."""
    folder = Path(tempfile.mkdtemp(prefix="nst-shared-tmp-"))
    folder.chmod(0o1777)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=False)


HOLD = """
import fcntl, os, sys, time
from pathlib import Path
held = []
for name in sys.argv[1:]:
    path = Path(name)
    path.parent.mkdir(mode=0o777, parents=True, exist_ok=True)
    handle = open(path, "a+b")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    held.append(handle)
print("held", flush=True)
time.sleep(60)
"""


@needs_root
def test_another_user_cannot_hold_the_launchers_lock(shared_tmp: Path) -> None:
    """`nobody` makes the names the launcher would use in the shared temp folder (the old
    fixed lock file, and the folder named for this user) and holds locks there; this user's
    launcher takes its own lock at once and never uses that folder."""
    endpoint = "tcp://127.0.0.1:5757"
    key = launcher.endpoint_key(endpoint)
    mine = shared_tmp / f"nst-{os.getuid()}"
    names = [shared_tmp / f"nst-engine-{key}.lock", mine / f"engine-{key}.lock"]
    other, uid = as_nobody(HOLD, *map(str, names))
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        assert mine.stat().st_uid == uid  # the folder named for this user is nobody's
        with pytest.raises(spawn.PrivateDirError, match="belongs to another user"):
            spawn.private_dir()
        assert spawn.start_folder() == Path.home()
        lock = launcher.EngineLock(endpoint)
        began = time.monotonic()
        assert lock.acquire() and not lock.held_elsewhere()
        assert time.monotonic() - began < 1.0
        assert lock.path is None or not str(lock.path).startswith(str(mine))
        lock.release()
    finally:
        other.kill()
        other.wait()


ROGUE = """
import socket, sys, threading
from pathlib import Path
record = Path(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("listening", flush=True)
def serve(conn):
    while data := conn.recv(65536):
        with record.open("ab") as out:
            out.write(data)
while True:
    threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()
"""


@needs_root
def test_another_users_listener_on_the_engines_address_gets_nothing(
    shared_tmp: Path, tmp_path: Path
) -> None:
    """`nobody` listens first on the address the artist's engine would use: `nst stylize`,
    `nst daemon stop|status` and the editors' job path (here GIMP's) refuse it, say why,
    and send it nothing."""
    import numpy as np
    import product
    from PIL import Image

    from nst_daemon.process import free_port

    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    received = shared_tmp / "rogue-received"
    rogue, uid = as_nobody(ROGUE, str(port), str(received))
    try:
        assert rogue.stdout is not None and rogue.stdout.readline().strip() == "listening"
        for name in ("content.png", "style.png"):
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / name)
        nst = product.bin_path("nst")
        words = f"nother user's process (uid {uid}) holds {endpoint}"  # "A..." or "a..."
        job = [nst, "stylize", str(tmp_path / "content.png"), str(tmp_path / "style.png")]
        for argv, code in (
            ([*job, "-o", str(tmp_path / "out.png"), "--daemon", endpoint], 2),
            ([nst, "daemon", "stop", "--endpoint", endpoint], 2),
            ([nst, "daemon", "status", "--endpoint", endpoint], 3),
        ):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            assert done.returncode == code, (argv, done.stdout, done.stderr)
            assert words in done.stdout + done.stderr, (argv, done.stdout, done.stderr)
        assert not (tmp_path / "out.png").exists()
        gimp_dir = Path(__file__).resolve().parents[2] / "plugins/gimp/plug-in-nst-stylize"
        sys.path.insert(0, str(gimp_dir))
        try:
            import nst_gimp_job as gimp
        finally:
            sys.path.remove(str(gimp_dir))
        content = ({"width": 2, "height": 2, "channels": 3, "dtype": "u8", "frame": 0}, bytes(12))
        with pytest.raises(gimp.PluginError, match=r"Another user's process \(uid"):
            gimp.run_job(
                Settings(endpoint=endpoint, daemon=["nst-daemon"]),
                content,  # type: ignore[arg-type]
                __file__,
                lambda path: content,  # type: ignore[arg-type,return-value]
                {},
            )
        time.sleep(0.5)
        assert not received.exists() or received.read_bytes() == b"", "the rogue got bytes"
    finally:
        rogue.kill()
        rogue.wait()
