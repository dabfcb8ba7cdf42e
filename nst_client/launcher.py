"""The local style engine, started on demand, and its state in plain words.

An artist never opens a terminal: when no engine answers at a local endpoint, a plug-in starts
the installed `nst-daemon` (settings.daemon, recorded by `nst install-plugin`) detached, with
--idle-exit so that it ends itself when unused, and follows its start-up through the
protocol's `status` (the daemon answers while VGG-19 loads). Two editors pressing Stylize at
once start one engine: a lock file serialises the launchers on this machine, and the daemon's
own bind refuses a second daemon on the same endpoint.

Standard library only: this runs in the editors' own Python.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from . import endpoints
from . import protocol as P
from .client import Client, DaemonUnavailable, JobCancelled, connect
from .engine_words import MAX_OWN_SHOWN, device_words, number, plain, precision_words
from .errors import ForeignListener
from .progress import duration_words
from .settings import Settings
from .spawn import clean_env, private_dir, start_folder

STOPPED, STARTING, READY, BUSY, UNREACHABLE = "stopped", "starting", "ready", "busy", "unreachable"
#: Whether an endpoint is on this machine (an engine there may be started on demand).
is_local = endpoints.is_local_endpoint
#: How long one look at the engine may take.
PROBE_TIMEOUT_S = 1.0
#: How often a start-up is looked at.
POLL_S = 0.25
#: The longest wait for a started engine to load (a cold disk can make PyTorch slow).
START_TIMEOUT_S = 300.0
#: Lines of a failed engine's log quoted to the user.
LOG_TAIL_LINES = 3
#: An engine's log past this size is moved aside (one older log is kept) when the next
#: engine starts; while one runs, the daemon holds the lines clients make to a slow pace.
LOG_ROTATE_BYTES = 1 << 20


@dataclass(frozen=True)
class EngineState:
    """What an editor shows about the engine: a summary in plain words, the rest in details."""

    phase: str
    summary: str
    details: str
    #: Start-up progress (0..1) while STARTING, when the engine says it.
    fraction: float | None = None
    device: str = ""
    running: int = 0
    queued: int = 0
    #: The engine's version, for the stale-plug-in note ("" when unknown).
    version: str = ""
    #: Why nothing answered (the connection's own words), when nothing did.
    problem: str = ""

    def usable(self) -> bool:
        return self.phase in (READY, BUSY)

    def down(self) -> bool:
        """Nothing answers (not running, or not reachable)."""
        return self.phase in (STOPPED, UNREACHABLE)


def _details(settings: Settings, *extra: str) -> str:
    parts = [f"endpoint {settings.endpoint}", f"transport {settings.resolved_transport()}"]
    return "; ".join([*parts, *[e for e in extra if e]])


def _jobs(count: int, word: str) -> str:
    return f"{count} job{'s' if count != 1 else ''} {word}"


def state_from_status(status: Mapping[str, Any], settings: Settings) -> EngineState:
    """The state an engine's `status` reply describes (an engine older than the `state`
    field counts as ready). Never raises: a field of the wrong type or value is left out,
    and every text the engine sent is made plain (engine_words.plain) before it is shown."""
    if not isinstance(status, Mapping):
        return unreachable(settings, ValueError("the engine's status is not a map"))
    device = plain(status.get("device") or "", 100)
    version = plain(status.get("version") or "", 40)
    precision = precision_words(status.get("profile"))
    pid = number(status.get("pid"), 0)
    extra = [
        f"device {device}" if device else "",
        f"precision {precision}" if precision else "",
        f"pid {pid:.0f}" if pid is not None else "",
    ]
    idle_exit = number(status.get("idle_exit_s"), 0)
    if idle_exit:
        extra.append(f"exits after {duration_words(idle_exit)} without a job")
    if status.get("state") == P.STARTING:
        startup = status.get("startup")
        startup = startup if isinstance(startup, Mapping) else {}
        step = plain(startup.get("step") or "starting", 80)
        fraction = number(startup.get("fraction"), 0.0, 1.0)
        percent = f" ({fraction:.0%})" if fraction is not None else ""
        return EngineState(
            STARTING,
            f"Starting the style engine… {step}{percent}",
            _details(settings, *extra),
            fraction,
            device,
            version=version,
        )
    running = 1 if status.get("running") else 0
    queue = status.get("queue")
    queued = len(queue) if isinstance(queue, list) else 0
    where = device_words(device)
    if running or queued:
        busy = _jobs(running, "running") + (f", {queued} waiting" if queued else "")
        return EngineState(
            BUSY,
            f"Style engine busy ({where}): {busy}",
            _details(settings, *extra),
            None,
            device,
            running,
            queued,
            version,
        )
    summary = f"Style engine ready ({where})"
    return EngineState(READY, summary, _details(settings, *extra), None, device, version=version)


def cannot_start(settings: Settings) -> str | None:
    """Why this launcher may not start an engine for these settings, or None when it may."""
    if not endpoints.is_local_endpoint(settings.endpoint):
        return (
            f"the style engine at {settings.endpoint} is on another machine: it is started "
            "there, not by this plug-in"
        )
    if not settings.start_on_demand:
        return (
            "starting the engine when needed is turned off in the engine settings: turn it on, "
            "or start it with `nst daemon start`"
        )
    if not settings.daemon:
        return (
            "this plug-in does not know where the engine is installed: reinstall it with "
            "`nst install-plugin`, or start the engine with `nst daemon start`"
        )
    if settings.curve_server_key:
        return "an engine with CURVE keys is started by its administrator, not on demand"
    return None


def not_answering(settings: Settings, reason: str, see_lock: bool = True) -> EngineState:
    """The state when nothing answered: stopped (a local engine that can be started, or
    being started by another program: see_lock), or unreachable."""
    details = _details(settings, reason)
    if see_lock and EngineLock(settings.endpoint).held_elsewhere():
        return EngineState(STARTING, "Starting the style engine…", details, problem=reason)
    why = cannot_start(settings)
    if why is None:
        summary = "Style engine not running: it starts with the first job"
        return EngineState(STOPPED, summary, details, problem=reason)
    if endpoints.is_local_endpoint(settings.endpoint):
        return EngineState(STOPPED, f"Style engine not running: {why}", details, problem=reason)
    return EngineState(UNREACHABLE, f"Style engine unreachable: {reason}", details, problem=reason)


def unreachable(settings: Settings, exc: BaseException) -> EngineState:
    """The state when not even a connection can be made (a key file, pyzmq missing, ...)."""
    summary = f"Style engine unreachable: {plain(str(exc), MAX_OWN_SHOWN)}"
    return EngineState(UNREACHABLE, summary, _details(settings))


def foreign_listener(endpoint: str) -> str | None:
    """Why what listens at a local endpoint is not this user's engine (another user's process
    holds the address), or None: it is the user's own, root's, or cannot be told. A client
    sends such a listener nothing, not even a look."""
    if not endpoints.is_local_endpoint(endpoint) or not hasattr(os, "getuid"):
        return None
    uid = endpoints.listener_uid(endpoint)
    if uid is None or uid in (os.getuid(), 0):
        return None
    return (
        f"another user's process (uid {uid}) holds {endpoint}: it is not your style engine, "
        "and nothing was sent to it. Stop that program, or give your engine another address"
    )


def nobody_listens(endpoint: str) -> bool:
    """True when a local endpoint plainly has no listener (the connection is refused at
    once), so a look need not wait out a ZeroMQ send timeout; False when unsure."""
    import socket

    address: str | tuple[str, int] | None
    tcp = endpoints.tcp_host_port(endpoint)
    if endpoint.startswith("ipc://"):
        family, address = getattr(socket, "AF_UNIX", -1), endpoints.ipc_path(endpoint)
    elif tcp is not None and endpoints.is_local_endpoint(endpoint):
        host, port = tcp
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        address = (host, int(port)) if port.isdigit() else None
    else:
        return False
    if address is None or family == -1:
        return False
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            sock.connect(address)
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    except OSError:
        return False
    return False


def probe(
    settings: Settings, timeout_s: float = PROBE_TIMEOUT_S, see_lock: bool = True
) -> EngineState:
    """One look at the engine (a `status` request); never raises. see_lock: a held start-up
    lock means STARTING (False for the lock's own holder)."""
    monitor = EngineMonitor(settings, "nst-probe", timeout_s, see_lock)
    try:
        return monitor.poll()
    finally:
        monitor.close()


class EngineMonitor:
    """Live state for an editor: one Client kept between polls (a bridge is not restarted
    every few seconds), made anew after a failure. Use from one thread. Each poll waits at
    most timeout_s (default: the settings' timeout, at most PROBE_TIMEOUT_S)."""

    def __init__(
        self,
        settings: Settings,
        client_name: str,
        timeout_s: float | None = None,
        see_lock: bool = True,
    ) -> None:
        timeout = min(settings.timeout_s, PROBE_TIMEOUT_S) if timeout_s is None else timeout_s
        self.settings = replace(settings, timeout_s=timeout)
        self.client_name = client_name
        self.see_lock = see_lock
        self._client: Client | None = None

    def poll(self) -> EngineState:
        """The engine's state now; never raises."""
        foreign = foreign_listener(self.settings.endpoint)
        if foreign is not None:
            self.close()
            return unreachable(self.settings, ForeignListener(foreign))
        try:
            if self._client is None:
                if nobody_listens(self.settings.endpoint):
                    reason = f"nothing listens at {self.settings.endpoint}"
                    return not_answering(self.settings, reason, self.see_lock)
                self._client = connect(self.settings, self.client_name)
            return state_from_status(self._client.status(), self.settings)
        except DaemonUnavailable as exc:
            self.close()
            return not_answering(self.settings, str(exc), self.see_lock)
        except Exception as exc:  # a key file, no pyzmq, a reply that is not one: never raised
            self.close()
            return unreachable(self.settings, exc)

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None


# --- the lock ---------------------------------------------------------------------------------


def log_dir() -> Path:
    """Where an engine started on demand writes its log."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "nst" / "logs"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Logs" / "nst"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "nst"


def endpoint_key(endpoint: str) -> str:
    return hashlib.sha1(endpoint.encode()).hexdigest()[:16]


class EngineLock:
    """An exclusive lock per endpoint, held by the one launcher that is starting its engine.

    flock (POSIX) or msvcrt (Windows) on a file in the user's private folder (spawn.private_dir:
    no other user can hold it): the OS drops it when its holder dies, so a crashed editor
    never leaves the engine unstartable.
    """

    def __init__(self, endpoint: str) -> None:
        try:
            folder: Path | None = private_dir()
        except OSError:
            folder = None  # no place for a lock: the daemon's bind still refuses a second one
        self.path = folder / f"engine-{endpoint_key(endpoint)}.lock" if folder else None
        self._file: IO[bytes] | None = None

    def acquire(self) -> bool:
        """Take the lock if free (no wait); True when this object now holds it."""
        if self.path is None:
            return True
        try:
            handle = open(self.path, "a+b")
        except OSError:
            return True
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the lock
            self._file = None

    def held_elsewhere(self) -> bool:
        """True while another launcher holds the lock (it is starting the engine)."""
        if self.path is None or not self.path.exists():
            return False
        if self.acquire():
            self.release()
            return False
        return True


# --- starting ---------------------------------------------------------------------------------


@dataclass
class Started:
    """An engine this launcher started: its process and its log."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def failure(self) -> str:
        """Why it ended, from the last lines of its log."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        tail = " / ".join(line.strip() for line in lines[-LOG_TAIL_LINES:]) or "no output"
        return (
            f"the style engine could not start (exit code {self.process.returncode}): {tail}. "
            f"Its log: {self.log_path}"
        )


def engine_command(settings: Settings) -> list[str]:
    """The command line of an engine started on demand."""
    command = settings.daemon_command()
    if command is None:
        raise DaemonUnavailable(cannot_start(settings) or "no engine command")
    idle = f"{settings.idle_exit_s:g}"
    return [*command, "--endpoint", settings.endpoint, "--idle-exit", idle, "--on-demand"]


def rotate_log(path: Path, limit: int = LOG_ROTATE_BYTES) -> None:
    """Move a log past `limit` bytes to PATH.1 (replacing the older one)."""
    try:
        if path.stat().st_size > limit:
            path.replace(path.with_name(path.name + ".1"))
    except OSError:
        pass  # no log yet, or none to move: the engine appends to what is there


def start_engine(settings: Settings) -> Started:
    """Start the engine detached (its own session, no window, output to its log), so it
    outlives the editor that started it; DaemonUnavailable when the program cannot run."""
    command = engine_command(settings)
    folder = log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"engine-{endpoint_key(settings.endpoint)}.log"
    rotate_log(log_path)
    options: dict[str, Any] = {}
    if sys.platform == "win32":
        flags = ("DETACHED_PROCESS", "CREATE_NEW_PROCESS_GROUP", "CREATE_NO_WINDOW")
        options["creationflags"] = sum(getattr(subprocess, f, 0) for f in flags)
    else:
        options["start_new_session"] = True
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
        log.flush()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=start_folder(),  # nothing imported from the editor's current folder
                env=clean_env(),
                **options,
            )
        except OSError as exc:
            raise DaemonUnavailable(
                f"the style engine {command[0]!r} cannot be run ({exc.strerror or exc}): "
                "reinstall the plug-in with `nst install-plugin`"
            ) from None
    # Reap it when it ends while this process lives (no zombie in a long-running editor).
    threading.Thread(target=process.wait, name="nst-engine-reaper", daemon=True).start()
    return Started(process, log_path)


def ensure_running(
    settings: Settings,
    on_state: Callable[[EngineState], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> EngineState:
    """A usable engine: the one that answers, or one started now (see the module's doc).

    on_state gets each new state while it starts (STARTING, with the load fraction);
    DaemonUnavailable says in plain words why there is none, JobCancelled when should_cancel()
    turned true (an engine already starting goes on, and ends itself when idle).
    """
    last: list[EngineState] = []

    def report(state: EngineState) -> EngineState:
        if on_state is not None and (not last or last[-1] != state):
            on_state(state)
        last[:] = [state]
        return state

    def check_cancel() -> None:
        if should_cancel is not None and should_cancel():
            raise JobCancelled("cancelled while the style engine was starting")

    deadline = time.monotonic() + timeout_s
    foreign = foreign_listener(settings.endpoint)
    if foreign is not None:  # said, and nothing sent: not even the look probe() would take
        error = ForeignListener(foreign)
        report(unreachable(settings, error))
        raise error
    state = report(probe(settings))
    started: Started | None = None
    if state.down():
        why = cannot_start(settings)
        if why is not None:
            remote = not endpoints.is_local_endpoint(settings.endpoint)
            raise DaemonUnavailable(
                state.problem
                if remote and state.problem
                else f"the style engine is not running: {why}"
            )
        started = _start_once(settings, report, check_cancel, deadline)
    while True:
        if state.usable():
            return state
        check_cancel()
        if started is not None and started.process.poll() is not None:
            state = probe(settings)
            if not state.usable() and state.phase != STARTING:
                raise DaemonUnavailable(started.failure())
        if time.monotonic() > deadline:
            raise DaemonUnavailable(
                f"the style engine did not get ready within {timeout_s:g} s "
                f"({state.summary}); its log is in {log_dir()}"
            )
        time.sleep(POLL_S)
        state = probe(settings)
        if state.phase == STOPPED and started is None:
            raise DaemonUnavailable("the style engine stopped while it was starting")
        report(state)


def _start_once(
    settings: Settings,
    report: Callable[[EngineState], EngineState],
    check_cancel: Callable[[], None],
    deadline: float,
) -> Started | None:
    """Start the engine unless another launcher is doing it (then wait for that one): the
    lock is held from the last look until the new engine answers."""
    lock = EngineLock(settings.endpoint)
    waiting = EngineState(
        STARTING, "Starting the style engine… (another program is starting it)", ""
    )
    while not lock.acquire():
        report(waiting)
        check_cancel()
        if time.monotonic() > deadline:
            raise DaemonUnavailable(f"another program holds {lock.path} and no engine started")
        time.sleep(POLL_S)
    try:
        if not probe(settings, see_lock=False).down():
            return None  # another launcher started it meanwhile
        report(EngineState(STARTING, "Starting the style engine…", _details(settings), 0.0))
        started = start_engine(settings)
        while True:  # until it answers (then others see it) or ends
            state = probe(settings, see_lock=False)
            if not state.down():
                report(state)
                return started
            if started.process.poll() is not None:
                answered = not probe(settings, see_lock=False).down()
                if started.process.returncode == 2 and answered:
                    return None  # its bind found another engine there: that one serves
                raise DaemonUnavailable(started.failure())
            check_cancel()
            if time.monotonic() > deadline:
                raise DaemonUnavailable(f"the style engine did not answer: {started.failure()}")
            time.sleep(POLL_S)
    finally:
        lock.release()


def stop(settings: Settings, timeout_s: float = 5.0) -> bool:
    """Ask the engine to exit (`shutdown`); False when none was running. DaemonError when it
    refuses (an engine on a network address is stopped on its own machine); ForeignListener
    when another user's process holds the address (it is sent nothing); DaemonUnavailable
    when what listens does not answer this user (another user's engine refuses the keys)."""
    quick = replace(settings, timeout_s=timeout_s)
    if nobody_listens(settings.endpoint):
        return False
    foreign = foreign_listener(settings.endpoint)
    if foreign is not None:
        raise ForeignListener(foreign)
    with connect(quick, "nst-stop") as client:
        try:
            client.status()
        except DaemonUnavailable:
            if nobody_listens(settings.endpoint):
                return False
            raise  # something listens that is not this user's engine: the reason says why
        try:
            client.request(P.shutdown(client.new_id()))
        except DaemonUnavailable:
            # No `bye` came back: it stopped all the same if nothing answers any more.
            return probe(settings, see_lock=False).down()
    return True
