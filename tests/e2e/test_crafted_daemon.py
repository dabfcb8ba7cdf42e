"""A daemon that is not ours (tests/e2e/crafted_daemon.py, a real process on a real socket):
crafted replies leave every client standing with plain words, and a job it will not cancel
frees the client within the cancel's bound."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import product
import pytest
from PIL import Image

from nst_client import launcher
from nst_client.client import CANCEL_GRACE_S
from nst_client.settings import Settings
from nst_daemon.process import DaemonProcess, free_port

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def crafted() -> Iterator[str]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    daemon = DaemonProcess([sys.executable, str(HERE / "crafted_daemon.py")], endpoint)
    try:
        yield endpoint
    finally:
        daemon.stop(5.0)


def _plain(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x00" not in text, repr(text)
    assert "Traceback" not in text, text


def test_nst_status_and_daemon_status_stand(crafted: str) -> None:
    for argv in (["status", "--endpoint", crafted], ["daemon", "status", "--endpoint", crafted]):
        done = subprocess.run(
            [product.bin_path("nst"), *argv], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        _plain(done.stdout + done.stderr)
        assert "RED" in done.stdout  # its words, made plain


def test_the_editors_engine_watch_stands(crafted: str) -> None:
    """GIMP's state line and Krita's engine line poll through EngineMonitor."""
    monitor = launcher.EngineMonitor(Settings(endpoint=crafted, transport="zmq"), "test")
    try:
        for _ in range(3):
            state = monitor.poll()
            assert state.phase == launcher.READY and state.fraction is None
            _plain(state.summary + state.details)
    finally:
        monitor.close()


def test_a_job_it_will_not_cancel_frees_the_cli_in_time(crafted: str, tmp_path: Path) -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    for name in ("content.png", "style.png"):
        Image.fromarray(image).save(tmp_path / name)
    out = tmp_path / "out.png"
    command = [product.bin_path("nst"), "stylize", str(tmp_path / "content.png")]
    command += [str(tmp_path / "style.png"), "-o", str(out), "--daemon", crafted, "--no-start"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)  # connected, submitted, progress flowing
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGINT)
    began = time.monotonic()
    try:
        proc.wait(CANCEL_GRACE_S + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the client still waits for a job the daemon would not cancel")
    took = time.monotonic() - began
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 130, stderr
    assert "it was abandoned" in stderr and "nothing written" in stderr, stderr
    assert CANCEL_GRACE_S <= took <= CANCEL_GRACE_S + 5, (took, stderr)
    assert not out.exists()
