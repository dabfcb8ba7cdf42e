"""The engine on demand with real processes: the product's nst-daemon started by the launcher
(as the plug-ins do) and by `nst daemon start`, one engine for concurrent starts, its state
while VGG-19 loads, its exit when idle, `nst daemon stop`, and a start that fails.

Every engine here is the wheel-installed product's (tests/e2e/product.py), on a free port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import product
import pytest
from daemon_process import free_port

from nst_client import launcher
from nst_client.client import DaemonError, DaemonUnavailable, connect
from nst_client.settings import Settings

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A free local endpoint; lock files and engine logs in this test's folder; any engine
    left there is stopped afterwards."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    address = f"tcp://127.0.0.1:{free_port()}"
    yield address
    for pid in _engine_pids(address):
        os.kill(pid, signal.SIGKILL)


def _engine_pids(endpoint: str) -> list[int]:
    """The nst-daemon processes serving endpoint (from /proc, so none is missed)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"nst-daemon" in a or b"nst_daemon" in a for a in args[:3]) and (
            endpoint.encode() in args
        ):
            pids.append(int(cmdline.parent.name))
    return pids


def _settings(endpoint: str, idle_exit_s: float = 1800.0) -> Settings:
    return Settings(
        endpoint=endpoint,
        daemon=[product.bin_path("nst-daemon"), "--device", "cpu"],
        idle_exit_s=idle_exit_s,
    )


def _wait_gone(endpoint: str, timeout_s: float) -> float:
    started = time.monotonic()
    while _engine_pids(endpoint):
        assert time.monotonic() - started < timeout_s, f"the engine is still running: {endpoint}"
        time.sleep(0.2)
    return time.monotonic() - started


def _launch_in_process(endpoint: str, idle_exit_s: float) -> subprocess.Popen[str]:
    """A second program (its own Python process, as a second editor is) that ensures the
    engine and prints the states it saw as JSON."""
    code = (
        "import json, sys, time\n"
        "from nst_client import launcher\n"
        "from nst_client.settings import Settings\n"
        f"s = Settings(endpoint={endpoint!r}, daemon={_settings(endpoint).daemon!r}, "
        f"idle_exit_s={idle_exit_s!r})\n"
        "seen = []\n"
        "state = launcher.ensure_running(s, lambda st: seen.append([st.phase, st.summary]))\n"
        "print(json.dumps({'final': state.phase, 'seen': seen}))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )


def test_two_programs_starting_at_once_get_one_engine(endpoint: str) -> None:
    """Two editors pressing Stylize at the same moment: one engine is started, both use it,
    and both saw it start in plain words (with the load's steps)."""
    programs = [_launch_in_process(endpoint, 1800.0) for _ in range(2)]
    reports = []
    for program in programs:
        out, _ = program.communicate(timeout=180)
        assert program.returncode == 0, out
        reports.append(json.loads(out))
    assert [r["final"] for r in reports] == ["ready", "ready"]
    assert len(_engine_pids(endpoint)) == 1, "two engines were started"
    summaries = [summary for r in reports for _, summary in r["seen"]]
    assert any(s.startswith("Starting the style engine…") for s in summaries), summaries
    assert any("loading" in s for s in summaries), summaries
    assert all(endpoint not in s for s in summaries), "the endpoint belongs in the details"


def test_engine_on_demand_serves_then_exits_when_idle(endpoint: str) -> None:
    """Started by the launcher with a 4 s idle exit: a job sent at once waits for the load
    and is done; the engine then says it is idle, and exits after the idle time."""
    settings = _settings(endpoint, idle_exit_s=4.0)
    started = time.monotonic()
    seen: list[launcher.EngineState] = []
    state = launcher.ensure_running(settings, seen.append)
    cold_s = time.monotonic() - started
    assert state.phase == launcher.READY and state.summary == "Style engine ready (CPU)"
    fractions = [s.fraction for s in seen if s.fraction is not None]
    assert fractions == sorted(fractions) and fractions, "start-up progress must only grow"
    rng = np.random.default_rng(0)
    content = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    style = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    with connect(settings, "on-demand-test") as client:
        welcome = client.hello()
        assert welcome["state"] == "ready" and welcome["idle_exit_s"] == 4.0
        out = client.stylize(content, [style], {"iterations": 2, "size": 32})
        assert out.shape == content.shape
        status = client.status()
    assert status["on_demand"] is True and status["idle_exit_s"] == 4.0
    assert status["jobs_done"] == 1
    later = launcher.probe(settings)
    assert later.phase == launcher.READY and "exits after 4 seconds without a job" in later.details
    gone_after = _wait_gone(endpoint, 30.0)
    assert launcher.probe(settings).phase == launcher.STOPPED
    log = next((Path(os.environ["XDG_STATE_HOME"]) / "nst").glob("engine-*.log")).read_text()
    assert "no job for 4 s (--idle-exit): exiting" in log
    print(f"\n[on demand] cold start to ready {cold_s:.1f} s; exited {gone_after:.1f} s later")


def test_a_job_sent_while_the_engine_loads_waits_for_it(endpoint: str) -> None:
    """The daemon answers while VGG-19 loads: status says starting, a job queues and runs."""
    engine = launcher.start_engine(_settings(endpoint))
    try:
        settings = _settings(endpoint)
        deadline = time.monotonic() + 30
        state = launcher.probe(settings, see_lock=False)
        while state.phase == launcher.STOPPED and time.monotonic() < deadline:
            state = launcher.probe(settings, see_lock=False)
        assert state.phase == launcher.STARTING, state
        with connect(settings, "early-test") as client:
            rng = np.random.default_rng(1)
            content = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            out = client.stylize(content, [content], {"iterations": 1, "size": 16})
        assert out.shape == content.shape
    finally:
        engine.process.terminate()
        engine.process.wait(30)


def _nst(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [product.bin_path("nst"), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def test_nst_daemon_start_status_stop(endpoint: str) -> None:
    status = _nst("daemon", "status", "--endpoint", endpoint)
    assert status.returncode == 3
    assert status.stdout.startswith("Style engine not running: start it with `nst daemon start`")
    start = _nst("daemon", "start", "--endpoint", endpoint, "--device", "cpu")
    assert start.returncode == 0, start.stderr
    assert start.stdout.startswith("Style engine ready (CPU)"), start.stdout
    assert "Starting the style engine…" in start.stderr
    (pid,) = _engine_pids(endpoint)
    again = _nst("daemon", "start", "--endpoint", endpoint)
    assert again.stdout.startswith("already running: Style engine ready"), again.stdout
    assert _engine_pids(endpoint) == [pid]
    status = _nst("daemon", "status", "--endpoint", endpoint)
    assert status.returncode == 0 and f"pid {pid}" in status.stdout
    assert "exits after" not in status.stdout, "one started by `nst daemon start` stays"
    stop = _nst("daemon", "stop", "--endpoint", endpoint)
    assert stop.returncode == 0 and "stopped the engine" in stop.stdout
    _wait_gone(endpoint, 20.0)
    assert "no engine was running" in _nst("daemon", "stop", "--endpoint", endpoint).stdout


def test_cli_stylize_starts_the_engine(endpoint: str, tmp_path: Path) -> None:
    """`nst stylize --daemon` shares the plug-ins' engine: it starts one when none answers."""
    from PIL import Image

    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "s.png")
    out = tmp_path / "out.png"
    env = {"NST_DAEMON": f"{product.bin_path('nst-daemon')} --device cpu"}
    args = ["stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(out)]
    args += ["--daemon", endpoint, "--iterations", "2", "--size", "20"]
    refused = _nst(*args, "--no-start", env=env)
    assert refused.returncode == 2 and "not running" in refused.stderr, refused.stderr
    done = _nst(*args, env=env)
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (20, 20)
    assert len(_engine_pids(endpoint)) == 1


def test_a_start_that_fails_says_why(endpoint: str) -> None:
    settings = _settings(endpoint)
    settings.daemon = [product.bin_path("nst-daemon"), "--weights", "/nonexistent/vgg19.pth"]
    with pytest.raises(DaemonUnavailable) as caught:
        launcher.ensure_running(settings)
    message = str(caught.value)
    assert "the style engine could not start (exit code 1)" in message, message
    assert "cannot load the model" in message and "engine-" in message
    assert not _engine_pids(endpoint)


def test_shutdown_refused_on_a_network_address() -> None:
    """Nobody stops a shared engine from afar: with CURVE on a non-loopback address the
    daemon answers `not_allowed` (the unit test checks the rule; this the wire)."""
    pytest.importorskip("zmq")
    from daemon_process import DaemonProc

    from nst_app.keys import make_keys

    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"nst-curve-{os.getpid()}"
    (tmp / "allow").mkdir(parents=True, exist_ok=True)
    for name in ("server", "client"):
        for made in tmp.glob(f"{name}.key*"):
            made.unlink()  # a key is never replaced: a rerun starts from none
    server_public, server_secret = (str(path) for path in make_keys(tmp, "server"))
    client_public, client_secret = (str(path) for path in make_keys(tmp, "client"))
    os.replace(client_public, tmp / "allow" / "client.key")
    port = free_port()
    daemon = DaemonProc(
        f"tcp://0.0.0.0:{port}",
        "--device",
        "cpu",
        "--no-warmup",
        "--curve-secret-key",
        server_secret,
        "--curve-allow",
        str(tmp / "allow"),
    )
    try:
        settings = Settings(
            endpoint=f"tcp://127.0.0.2:{port}",
            curve_server_key=server_public,
            curve_client_cert=client_secret,
        )
        with pytest.raises(DaemonError) as caught:
            launcher.stop(settings)
        assert caught.value.code == "not_allowed"
        assert daemon.proc.poll() is None, "the daemon must still run"
    finally:
        daemon.stop()
