"""The launcher's rules (nst_client.launcher): states in plain words, when it may start an
engine, the start-up lock, and ensure_running's course with a scripted engine. The real
daemon processes are in tests/e2e/test_on_demand.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nst_client import launcher
from nst_client import protocol as P
from nst_client.client import DaemonUnavailable, JobCancelled
from nst_client.launcher import EngineLock, EngineState
from nst_client.settings import Settings, SettingsError, load

LOCAL = "tcp://127.0.0.1:5999"


@pytest.fixture(autouse=True)
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Lock files and logs in a folder of this test."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path


def _settings(**kw: Any) -> Settings:
    return Settings(**{"endpoint": LOCAL, "daemon": ["/opt/nst/bin/nst-daemon"], **kw})


def _status(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "device": "cpu",
        "running": None,
        "queue": [],
        "state": P.READY,
        "pid": 42,
    }
    return {**base, **kw}


def test_states_in_plain_words() -> None:
    s = _settings(idle_exit_s=1800)
    ready = launcher.state_from_status(_status(idle_exit_s=1800.0, version="1.2"), s)
    assert (ready.phase, ready.summary) == (launcher.READY, "Style engine ready (CPU)")
    assert ready.usable() and ready.version == "1.2"
    assert (
        "endpoint tcp://127.0.0.1:5999" in ready.details
        and "exits after 30 minutes without a job" in ready.details
    )
    assert LOCAL not in ready.summary, "the endpoint belongs in the details"
    starting = launcher.state_from_status(
        _status(state=P.STARTING, startup={"step": "loading PyTorch", "fraction": 0.02}), s
    )
    assert starting.phase == launcher.STARTING and not starting.usable()
    assert starting.summary == "Starting the style engine… loading PyTorch (2%)"
    assert starting.fraction == 0.02
    busy = launcher.state_from_status(
        _status(device="cuda:0 (NVIDIA H200)", running={"id": "j"}, queue=[{}, {}]), s
    )
    assert busy.phase == launcher.BUSY and busy.usable()
    assert busy.summary == "Style engine busy (GPU: NVIDIA H200): 1 job running, 2 waiting"
    assert (busy.running, busy.queued) == (1, 2)
    old = launcher.state_from_status({"device": "mps", "running": None, "queue": []}, s)
    assert old.phase == launcher.READY and old.summary == "Style engine ready (Apple GPU)"


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (_settings(endpoint="tcp://10.0.0.5:5757"), "on another machine"),
        (_settings(start_on_demand=False), "turned off in the engine settings"),
        (_settings(daemon=None), "does not know where the engine is installed"),
        (_settings(curve_server_key="k" * 40), "started by its administrator"),
    ],
)
def test_when_an_engine_may_not_be_started(settings: Settings, words: str) -> None:
    why = launcher.cannot_start(settings)
    assert why is not None and words in why


def test_a_local_engine_may_be_started() -> None:
    assert launcher.cannot_start(_settings()) is None
    assert launcher.cannot_start(_settings(endpoint="ipc:///tmp/nst.sock")) is None


def test_nothing_answering() -> None:
    stopped = launcher.not_answering(_settings(), "no answer")
    assert stopped.phase == launcher.STOPPED
    assert stopped.summary == "Style engine not running: it starts with the first job"
    assert stopped.problem == "no answer" and "no answer" in stopped.details
    off = launcher.not_answering(_settings(start_on_demand=False), "no answer")
    assert off.phase == launcher.STOPPED and "turned off" in off.summary
    remote = launcher.not_answering(_settings(endpoint="tcp://10.0.0.5:5757"), "timed out")
    assert remote.phase == launcher.UNREACHABLE
    assert remote.summary == "Style engine unreachable: timed out"


def test_engine_command_carries_endpoint_idle_exit_and_sandbox_prefix() -> None:
    s = _settings(idle_exit_s=90, host_command=["flatpak-spawn", "--host"])
    assert launcher.engine_command(s) == [
        "flatpak-spawn",
        "--host",
        "/opt/nst/bin/nst-daemon",
        "--endpoint",
        LOCAL,
        "--idle-exit",
        "90",
        "--on-demand",
    ]
    assert s.bridge_command()[:2] == ["flatpak-spawn", "--host"]


def test_lock_is_exclusive_and_shows_as_starting() -> None:
    first, second = EngineLock(LOCAL), EngineLock(LOCAL)
    assert first.acquire()
    try:
        assert not second.acquire()
        assert second.held_elsewhere()
        state = launcher.not_answering(_settings(), "no answer")
        assert state.phase == launcher.STARTING, "another launcher is starting it"
        assert EngineLock("tcp://127.0.0.1:6000").acquire(), "one lock per endpoint"
    finally:
        first.release()
    assert not second.held_elsewhere() and second.acquire()
    second.release()


def test_lock_of_a_dead_holder_is_free(runtime: Path) -> None:
    """A crashed editor never leaves the engine unstartable: the OS drops its lock."""
    code = (
        "import sys, time; from nst_client.launcher import EngineLock\n"
        f"lock = EngineLock({LOCAL!r}); assert lock.acquire(); print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    root = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=root
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert EngineLock(LOCAL).held_elsewhere()
    finally:
        holder.kill()
        holder.wait()
    assert not EngineLock(LOCAL).held_elsewhere()


class ScriptedEngine:
    """probe() answers from a script of states; start_engine() records the start."""

    def __init__(self, states: list[EngineState], monkeypatch: pytest.MonkeyPatch) -> None:
        self.states = states
        self.starts = 0
        self.process = FakeProcess()
        monkeypatch.setattr(launcher, "probe", self.probe)
        monkeypatch.setattr(launcher, "start_engine", self.start)
        monkeypatch.setattr(launcher, "POLL_S", 0.001)

    def probe(self, settings: Settings, timeout_s: float = 1.0, see_lock: bool = True) -> Any:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def start(self, settings: Settings) -> launcher.Started:
        self.starts += 1
        log = Path(launcher.log_dir()) / "engine.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("loading\nnst-daemon: cannot load the model: WeightsError: gone\n")
        return launcher.Started(self.process, log)  # type: ignore[arg-type]


class FakeProcess:
    returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


def _state(phase: str, fraction: float | None = None) -> EngineState:
    return EngineState(phase, phase, "", fraction, problem="no answer")


def test_starts_a_stopped_engine_and_reports_its_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = ScriptedEngine(
        [
            _state(launcher.STOPPED),  # the first look
            _state(launcher.STOPPED),  # the look under the lock
            _state(launcher.STARTING, 0.02),  # it answers: the lock is let go
            _state(launcher.STARTING, 0.7),
            _state(launcher.READY),
        ],
        monkeypatch,
    )
    seen: list[EngineState] = []
    state = launcher.ensure_running(_settings(), seen.append)
    assert state.phase == launcher.READY and engine.starts == 1
    phases = [(s.phase, s.fraction) for s in seen]
    assert phases[0] == (launcher.STOPPED, None)
    assert (launcher.STARTING, 0.02) in phases and (launcher.STARTING, 0.7) in phases
    assert phases[-1] == (launcher.READY, None)
    assert not EngineLock(LOCAL).held_elsewhere(), "the lock is let go"


def test_a_running_engine_is_not_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = ScriptedEngine([_state(launcher.BUSY)], monkeypatch)
    assert launcher.ensure_running(_settings()).phase == launcher.BUSY
    assert engine.starts == 0


def test_an_engine_that_exits_is_reported_with_its_log(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = ScriptedEngine([_state(launcher.STOPPED)], monkeypatch)
    engine.process.returncode = 1
    with pytest.raises(DaemonUnavailable) as caught:
        launcher.ensure_running(_settings())
    message = str(caught.value)
    assert "could not start (exit code 1)" in message
    assert "cannot load the model: WeightsError: gone" in message
    assert "engine.log" in message


def test_cancel_while_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    ScriptedEngine([_state(launcher.STARTING, 0.1)], monkeypatch)
    with pytest.raises(JobCancelled):
        launcher.ensure_running(_settings(), should_cancel=lambda: True)


def test_no_start_where_it_may_not(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = ScriptedEngine([_state(launcher.STOPPED)], monkeypatch)
    with pytest.raises(DaemonUnavailable, match="turned off in the engine settings"):
        launcher.ensure_running(_settings(start_on_demand=False))
    remote = EngineState(launcher.UNREACHABLE, "x", "", problem="refused this client's key")
    engine.states = [remote]
    with pytest.raises(DaemonUnavailable, match="refused this client's key"):
        launcher.ensure_running(_settings(endpoint="tcp://10.0.0.5:5757"))
    assert engine.starts == 0


def test_gives_up_after_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    ScriptedEngine([_state(launcher.STARTING, 0.5)], monkeypatch)
    with pytest.raises(DaemonUnavailable, match="did not get ready within 0.05 s"):
        launcher.ensure_running(_settings(), timeout_s=0.05)


# --- the settings behind it -----------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "nst_config.json"
    path.write_text(
        json.dumps(
            {
                "endpoint": LOCAL,
                "daemon": ["/opt/nst/bin/nst-daemon"],
                "start_on_demand": True,
                "idle_exit_s": 600,
                "host_command": ["flatpak-spawn", "--host"],
            }
        )
    )
    yield path


def test_settings_file_environment_and_editor_overrides(config: Path) -> None:
    s = load(config, {})
    assert s.daemon == ["/opt/nst/bin/nst-daemon"] and s.idle_exit_s == 600
    assert s.host_command == ["flatpak-spawn", "--host"] and s.start_on_demand
    env = {"NST_START_ON_DEMAND": "0", "NST_DAEMON": "/x/nst-daemon --device cpu"}
    s = load(config, env)
    assert not s.start_on_demand and s.daemon == ["/x/nst-daemon", "--device", "cpu"]
    ui = {"start_on_demand": True, "idle_exit_s": 60, "endpoint": "tcp://127.0.0.1:6001"}
    s = load(config, env, overrides=ui)
    assert s.start_on_demand and s.idle_exit_s == 60 and s.endpoint == "tcp://127.0.0.1:6001"
    s = load(config, {}, overrides={"endpoint": "", "idle_exit_s": None})
    assert s.endpoint == LOCAL and s.idle_exit_s == 600, "blank overrides are not set"


@pytest.mark.parametrize(
    ("data", "env", "overrides", "words"),
    [
        ({"idle_exit_s": -1}, {}, {}, "idle_exit_s in nst_config.json: must be 0 (never) or more"),
        ({"start_on_demand": "maybe"}, {}, {}, "start_on_demand in nst_config.json: expected"),
        ({"daemon": [1, 2]}, {}, {}, "daemon in nst_config.json: expected a command"),
        ({}, {"NST_IDLE_EXIT": "soon"}, {}, "NST_IDLE_EXIT: expected seconds"),
        ({}, {}, {"idle_exit_s": "nan"}, "the idle_exit_s given: must be 0 (never) or more"),
        ({}, {}, {"colour": "red"}, "unknown settings colour"),
    ],
)
def test_bad_new_settings_are_named(
    tmp_path: Path, data: dict[str, Any], env: dict[str, str], overrides: dict[str, Any], words: str
) -> None:
    path = tmp_path / "nst_config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load(path, env, overrides=overrides)


def test_probe_of_nothing_is_quick_and_stopped(tmp_path: Path) -> None:
    """A real probe of a port and an ipc path nobody serves: stopped at once (a refused
    connection), not after a ZeroMQ send timeout."""
    for endpoint in ("tcp://127.0.0.1:1", f"ipc://{tmp_path}/none.sock"):
        started = time.monotonic()
        state = launcher.probe(_settings(endpoint=endpoint), timeout_s=5.0)
        assert time.monotonic() - started < 1.0, endpoint
        assert state.phase == launcher.STOPPED
        assert state.problem == f"nothing listens at {endpoint}"
    assert launcher.nobody_listens("tcp://127.0.0.1:1")
    assert not launcher.nobody_listens("tcp://10.0.0.5:5757"), "remote: never guessed"
