"""Other people on the machine, with real processes: a module planted in the editor's current
folder does not run in the helpers the client starts, and another real user can neither hold
the launchers' lock, nor listen in the engine's place, nor stop, cancel or flood the artist's
engine (the tests run the hostile side as `nobody`; that needs root, as in CI)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from other_user import NOBODY, ROGUE, as_nobody, needs_root, system_python_speaks_zeromq

from nst_client import launcher, spawn
from nst_client.settings import Settings
from nst_client.transports import BridgeTransport

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

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


#: A job that runs until its artist cancels it (Adam does not stop early on convergence).
UNTIL_CANCELLED = {"optimizer": "adam", "iterations": 100000, "size": 64, "min_scale": 64}

ATTACK = r"""
import json, socket, sys, time
import zmq
from nst_client import launcher
from nst_client import protocol as P
from nst_client.client import Client
from nst_client.errors import DaemonUnavailable
from nst_client.settings import Settings

endpoint, job, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
said = {}
try:
    launcher.stop(Settings(endpoint=endpoint, timeout_s=1.0))  # `nst daemon stop`
    said["stop"] = "stopped"
except DaemonUnavailable as exc:
    said["stop"] = str(exc)
with Client(endpoint, timeout_s=1.0, client_name="other-user") as client:
    client.cancel(job)
    for name, call in (("status", client.status), ("cancel", client.ping)):
        try:
            call()
            said[name] = "answered"
        except DaemonUnavailable as exc:
            said[name] = str(exc)
# A flood: ZeroMQ peers with no keys, each sending junk, and raw TCP junk.
peers = []
for i in range(20):
    peer = zmq.Context.instance().socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    peer.setsockopt(zmq.SNDHWM, 100000)
    peer.connect(endpoint)
    peers.append(peer)
for i in range(4000):
    try:
        peers[i % 20].send_multipart([b"junk", b"x" * 1000], zmq.NOBLOCK)
    except zmq.Again:  # the engine refused the peer's handshake: nowhere to queue
        time.sleep(0.001)
for i in range(300):
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"\xff" + b"\0" * 8 + b"\x7f" + b"junk" * 256)
time.sleep(2)
print(json.dumps(said), flush=True)
"""


@needs_root
def test_another_user_cannot_stop_cancel_or_flood_the_engine(shared_tmp: Path) -> None:
    """The artist's engine on its loopback port, a job running: `nobody`, with the product's
    client and keys of their own, cannot stop it, cancel the job or ask its status, and a
    flood of junk from ZeroMQ peers and raw connections leaves the job running and the log
    as it was."""
    import threading

    import numpy as np
    from daemon_process import DaemonProc

    from nst_client import layouts
    from nst_client.client import Client, JobCancelled
    from nst_daemon.process import free_port

    system_python_speaks_zeromq()
    package = shared_tmp / "product"
    shutil.copytree(ROOT / "nst_client", package / "nst_client")
    home = shared_tmp / "nobody-home"
    home.mkdir(mode=0o700)
    os.chown(home, pwd.getpwnam(NOBODY).pw_uid, pwd.getpwnam(NOBODY).pw_gid)
    port = free_port()
    daemon = DaemonProc(f"tcp://127.0.0.1:{port}", "--device", "cpu", "--no-warmup")
    steps: list[int] = []
    stop = threading.Event()
    ended: list[BaseException] = []
    rng = np.random.default_rng(3)
    content = layouts.from_array(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), 0)
    style = layouts.from_array(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), 0)
    try:
        artist = Client(daemon.endpoint, timeout_s=10.0, client_name="artist")
        job = artist.submit(content, [(style, 1.0)], UNTIL_CANCELLED)

        def follow() -> None:
            try:
                artist.follow(job, lambda p: steps.append(1), stop.is_set, idle_timeout_s=60)
            except BaseException as exc:  # what ended it is the finding
                ended.append(exc)

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        deadline = time.monotonic() + 120
        while not steps and time.monotonic() < deadline:
            time.sleep(0.1)
        assert steps, "the artist's job never progressed"
        lines0 = len(daemon.log_text().splitlines())
        env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
        env["PYTHONPATH"] = str(package)
        attack, _ = as_nobody(ATTACK, daemon.endpoint, job, str(port), env=env)
        out, _ = attack.communicate(timeout=180)
        assert attack.returncode == 0, out
        said = json.loads(out.strip().splitlines()[-1])
        for name in ("stop", "status", "cancel"):
            assert "is not your style engine" in said[name], (name, said[name])
        # The artist's side: the job went on through all of it, and the engine answers.
        before = len(steps)
        time.sleep(2)
        assert len(steps) > before and not ended, (ended, len(steps), daemon.log_text()[-3000:])
        assert daemon.proc.poll() is None
        added = daemon.log_text().splitlines()[lines0:]
        assert len(added) <= 2, added
        stop.set()
        follower.join(30)
        assert ended and isinstance(ended[0], JobCancelled), ended  # cancelled by its artist
        artist.close()
    finally:
        stop.set()
        daemon.stop()
