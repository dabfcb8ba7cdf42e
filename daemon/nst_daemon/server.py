"""The daemon's socket loop: requests in, replies out, workers running the jobs.

Threads: the main thread owns the ROUTER socket and nothing else touches it, so status, cancel,
ping and new submissions are answered within milliseconds while jobs run. Behind it an engine
runs the jobs in FIFO order (jobs.Scheduler, workers.serve_jobs): the warm model in this process
(local.LocalEngine, the default), or a Ray cluster's workers (cluster.front.ClusterEngine, with
--cluster). Each worker thread hands its outgoing messages to the main thread over an inproc
PUSH socket. The engine loads on a thread of its own while the socket already answers, so a
plug-in that started the engine can show how far the start-up is; jobs sent meanwhile wait in
the queue. With --idle-exit the daemon ends itself after that long without a job (an engine a
plug-in started on demand).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import zmq

from nst_client import __version__, endpoints
from nst_client import protocol as P
from nst_client.params import MIN_TILE_SIZE

from . import logs, requests
from .jobs import Scheduler
from .local import LocalEngine, ModelSettings, StepFn
from .transport import RouterSocket, SetupError
from .workers import Outbox, OutboxFactory

log = logging.getLogger("nst_daemon")

Handler = Callable[[bytes, P.Header, list[P.Buffer]], None]


class Engine(Protocol):
    """What runs the jobs behind the socket (local.LocalEngine, cluster.front.ClusterEngine)."""

    @property
    def device_type(self) -> str: ...
    @property
    def weights_name(self) -> str: ...
    def load(self, step: StepFn) -> None:
        """Blocking, on the loader thread: ready to start() when it returns."""

    def start(self, sched: Scheduler, outbox: OutboxFactory) -> None:
        """Start the worker threads, taking jobs from `sched`."""

    def describe(self) -> str: ...
    def profile(self) -> P.DeviceProfile | None: ...
    def memory(self) -> P.Memory: ...
    def cache_counts(self) -> P.CacheCounts: ...
    def workers(self, sched: Scheduler, client: bytes) -> list[P.WorkerStatus]: ...
    def alive(self) -> bool:
        """A worker thread is still running (after the scheduler stopped)."""

    def stop(self) -> None:
        """Release what the engine holds (threads end once the scheduler has stopped)."""


@dataclass
class DaemonConfig:
    """Everything the daemon is started with (nst-daemon's options)."""

    endpoint: str = P.DEFAULT_ENDPOINT
    device: str = "auto"
    weights: str = "caffe"
    max_pixels: int = P.DEFAULT_MAX_PIXELS
    max_tile_size: int = P.DEFAULT_MAX_TILE_SIZE
    client_timeout_s: float = 10.0
    style_cache_mb: int = 512
    memory_fraction: float = 0.0
    curve_secret_key: str | None = None
    curve_allow: str | None = None
    warmup: bool = True
    #: Exit after this many seconds without a job (0 = never: a daemon started by hand).
    idle_exit_s: float = 0.0
    #: Started by a plug-in or `nst daemon start` (shown in status), not by hand.
    on_demand: bool = False
    #: A Ray cluster's address (--cluster): the jobs run on its workers, not in this process.
    cluster: str | None = None
    #: CPU threads of a CPU worker (0 = every core; a cluster: one worker per GPU-less node).
    worker_threads: int = 0

    def check(self) -> None:
        """SetupError naming the first option out of range."""
        if self.max_pixels <= 0:
            raise SetupError("--max-pixels must be positive")
        if not MIN_TILE_SIZE <= self.max_tile_size <= 1 << 16:
            raise SetupError(f"--max-tile-size must be within {MIN_TILE_SIZE}..65536")
        if self.client_timeout_s <= 0:
            raise SetupError("--client-timeout must be positive")
        if self.style_cache_mb < 0:
            raise SetupError("--style-cache-mb must be 0 or more")
        if not 0.0 <= self.memory_fraction <= 1.0:
            raise SetupError("--memory-fraction must be within 0..1")
        if not self.idle_exit_s >= 0.0:
            raise SetupError("--idle-exit must be 0 (never) or more seconds")
        if self.worker_threads < 0:
            raise SetupError("--worker-threads must be 0 (every core) or more")
        if self.cluster is not None and self.idle_exit_s > 0:
            raise SetupError("--idle-exit is for an engine started on demand, not a cluster")

    @property
    def model(self) -> ModelSettings:
        """How each worker loads its model."""
        return ModelSettings(
            device=self.device,
            weights=self.weights,
            style_cache_mb=self.style_cache_mb,
            memory_fraction=self.memory_fraction,
            warmup=self.warmup,
            threads=self.worker_threads,
        )

    @property
    def limits(self) -> requests.Limits:
        return requests.Limits(self.max_pixels, self.max_tile_size)


def make_engine(config: DaemonConfig) -> Engine:
    """The warm model in this process, or (--cluster) a Ray cluster's workers: Ray is
    imported only then."""
    if config.cluster is None:
        return LocalEngine(config.model)
    try:
        from .cluster.front import ClusterEngine
    except ImportError as exc:
        raise SetupError(
            f"--cluster needs Ray ({exc}): pip install 'nst-studio[cluster]'"
        ) from None
    return ClusterEngine(config.cluster, config.model)


class Server:
    """Socket loop (main thread) + an engine's workers."""

    def __init__(self, config: DaemonConfig, engine: Engine | None = None) -> None:
        self.config = config
        self.engine = engine if engine is not None else make_engine(config)
        self.sched = Scheduler(
            max_held_bytes=P.max_held_bytes(config.max_pixels),
            affinity=getattr(self.engine, "affinity", None),
        )
        self.started = time.monotonic()
        self.last_seen: dict[bytes, float] = {}
        self.stop_requested = threading.Event()
        #: The pace of the lines clients' messages make (logs.Throttle).
        self.throttle = logs.Throttle()
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.router: RouterSocket | None = None
        self._inbox_addr = f"inproc://nst-worker-{id(self)}"
        self._inbox: zmq.Socket[Any] | None = None
        self._started = False
        #: Per client, the tracker of the last preview sent: one preview in flight at most.
        self._previews: dict[bytes, zmq.MessageTracker] = {}
        #: starting (the model loads; requests are answered, jobs wait) or ready.
        self.state = P.STARTING
        self.startup: P.Startup | None = {"step": "starting", "fraction": 0.0}
        #: Why the model could not load (the daemon then ends), set by the loader thread.
        self.load_error: str | None = None
        self._load_done = threading.Event()
        self._loader: threading.Thread | None = None
        #: When a job last arrived or ended, for --idle-exit.
        self.last_activity = time.monotonic()
        self.handlers: dict[str, Handler] = {
            P.HELLO: self.on_hello,
            P.PING: self.on_ping,
            P.STATUS: self.on_status,
            P.CANCEL: self.on_cancel,
            P.STYLIZE: self.on_stylize,
            P.SHUTDOWN: self.on_shutdown,
        }

    # -- setup ---------------------------------------------------------------------------------
    def bind(self) -> None:
        """Bind the ROUTER (with CURVE when keys are given); fails fast before the model loads."""
        c = self.config
        c.check()
        self.router = RouterSocket(
            self.ctx,
            c.endpoint,
            c.curve_secret_key,
            c.curve_allow,
            max_frame_bytes=P.max_frame_bytes(c.max_pixels),
        )
        self._inbox = self.ctx.socket(zmq.PULL)
        self._inbox.bind(self._inbox_addr)

    def _outbox(self) -> Outbox:
        """A worker thread's line to this socket thread."""
        return Outbox(self.ctx, self._inbox_addr)

    def _step(self, step: str, fraction: float) -> None:
        self.startup = {"step": step, "fraction": fraction}
        log.info("start-up: %s", step)

    def load(self) -> None:
        """The engine's start-up (model, or cluster workers), its steps shown in status."""
        self.engine.load(self._step)

    def start_loading(self, on_ready: Callable[[], None] | None = None) -> threading.Thread:
        """Load the model on a thread of its own; serve() answers meanwhile and starts the
        worker once it is done. on_ready runs on that thread when the model is ready."""

        def load() -> None:
            try:
                self.load()
            except BaseException as exc:
                log.debug("load failed", exc_info=True)
                self.load_error = f"{type(exc).__name__}: {exc}"
            else:
                self.state, self.startup = P.READY, None
                self.last_activity = time.monotonic()
                if on_ready is not None:
                    on_ready()
            finally:
                self._load_done.set()

        self._loader = threading.Thread(target=load, name="nst-loader", daemon=True)
        self._loader.start()
        return self._loader

    # -- messages ------------------------------------------------------------------------------
    def send(
        self, client: bytes, message: Mapping[str, Any], buffers: Sequence[P.Buffer] = ()
    ) -> None:
        """Send to one client (socket thread only); a vanished client gets its jobs cancelled."""
        assert self.router is not None
        if not self.router.send(client, message, buffers):
            self.client_gone(client, "disconnected")

    def client_log(self, kind: str, text: str, *args: object) -> None:
        """A line a client's message makes: held to the throttle's pace (logs.Throttle), so
        no flood of messages can fill the disk with the log."""
        allowed, held = self.throttle.allow(kind)
        if held:
            log.info("%d more '%s' lines in %g s not written", held, kind, self.throttle.window_s)
        if allowed:
            log.info(text, *args)

    def error(self, client: bytes, request_id: str | None, code: str, message: str) -> None:
        self.client_log(
            f"error {code}", "error %s to %s: %s", code, client.hex(), P.quote(message, 300)
        )
        self.send(client, P.error(request_id, code, message))

    def client_gone(self, client: bytes, why: str) -> None:
        """Cancel everything a vanished client queued or is running."""
        self.last_seen.pop(client, None)
        self._previews.pop(client, None)
        for job in self.sched.jobs_of(client):
            log.warning("client %s %s: cancelling its job %s", client.hex(), why, P.quote(job.id))
            self.sched.cancel(job.key)

    def handle(self, frames: Sequence[zmq.Frame]) -> None:
        """One incoming message: answer it or queue its job; never raises."""
        client = frames[0].bytes
        self.last_seen[client] = time.monotonic()
        request_id: str | None = None
        try:
            header, buffers = P.unpack([f.buffer for f in frames[1:]])
            request_id = requests.reply_id(header)
            kind, _ = requests.envelope(header)
            self.handlers[kind](client, header, buffers)
        except P.ProtocolError as exc:
            self.error(client, request_id, exc.code, exc.message)
        except Exception as exc:
            log.exception("internal error on a request")
            self.error(client, request_id, P.INTERNAL, f"{type(exc).__name__}: {P.quote(exc)}")

    def on_hello(self, client: bytes, header: P.Header, buffers: list[P.Buffer]) -> None:
        requests.require(header, "protocol", int)
        name = requests.require_name(header, "client")
        self.client_log("hello", "hello from %s (%s)", client.hex(), P.quote(name))
        defaults = self.config.limits.defaults().to_dict()
        self.send(
            client,
            P.welcome(
                header["id"],
                version=__version__,
                device=self.engine.describe(),
                weights=self.engine.weights_name,
                max_pixels=self.config.max_pixels,
                max_tile_size=self.config.max_tile_size,
                client_timeout_s=self.config.client_timeout_s,
                defaults=defaults,
                state=self.state,
                idle_exit_s=self.config.idle_exit_s,
                profile=self.engine.profile(),
            ),
        )

    def on_ping(self, client: bytes, header: P.Header, buffers: list[P.Buffer]) -> None:
        self.send(client, P.pong(header["id"]))

    def on_status(self, client: bytes, header: P.Header, buffers: list[P.Buffer]) -> None:
        running, queue = self.sched.snapshot(client)
        engine = self.engine
        self.send(
            client,
            P.status(
                header["id"],
                running=running,
                queue=queue,
                device=engine.describe(),
                memory=engine.memory(),
                uptime_s=round(time.monotonic() - self.started, 3),
                counts=self.sched.counts(),
                style_cache=engine.cache_counts(),
                version=__version__,
                state=self.state,
                startup=self.startup,
                pid=os.getpid(),
                on_demand=self.config.on_demand,
                idle_exit_s=self.config.idle_exit_s,
                idle_s=round(self.idle_seconds(), 3),
                profile=engine.profile(),
                workers=engine.workers(self.sched, client),
            ),
        )

    def idle_seconds(self) -> float:
        """Seconds since a job last arrived or ended; 0 while one runs or waits, or while
        the model loads."""
        if self.state != P.READY or self.sched.clients():
            return 0.0
        return time.monotonic() - self.last_activity

    def on_shutdown(self, client: bytes, header: P.Header, buffers: list[P.Buffer]) -> None:
        """End the daemon (`nst daemon stop`): only one on this machine's loopback or ipc, a
        shared daemon on a network address is stopped where it runs."""
        if not endpoints.is_local_endpoint(self.config.endpoint):
            raise P.ProtocolError(
                P.NOT_ALLOWED,
                f"this daemon serves the network address {self.config.endpoint}: stop it "
                "on its own machine",
            )
        log.info("shutdown asked by %s", client.hex())
        self.send(client, P.bye(header["id"]))
        self.stop_requested.set()

    def on_cancel(self, client: bytes, header: P.Header, buffers: list[P.Buffer]) -> None:
        job_id = requests.require(header, "job", str)
        where = self.sched.cancel((client, job_id))
        if where is None:
            raise P.ProtocolError(
                P.UNKNOWN_JOB,
                f"field 'job': no queued or running job {P.quote(job_id)} from this client",
            )
        self.client_log("cancel", "cancel %s (%s)", P.quote(job_id), where)
        if where == "queued":
            self.send(client, P.cancelled(job_id))
        # A running job's worker sends `cancelled` once the engine stops (within an iteration).

    def on_stylize(self, client: bytes, header: P.Header, buffers: list[P.Buffer]) -> None:
        job = requests.parse_stylize(
            header, buffers, client, self.config.limits, self.engine.device_type
        )
        position = self.sched.submit(job)
        self.last_activity = time.monotonic()
        log.info(
            "job %s from %s accepted at position %d (%dx%d, %d style(s))",
            P.quote(job.id),
            client.hex(),
            position,
            job.content["width"],
            job.content["height"],
            len(job.styles),
        )
        self.send(client, P.accepted(job.id, position))

    # -- liveness ------------------------------------------------------------------------------
    def reap(self) -> None:
        """Cancel the jobs of clients silent for longer than --client-timeout."""
        now = time.monotonic()
        timeout = self.config.client_timeout_s
        if self.sched.clients():
            self.last_activity = now
        for client in self.sched.clients():
            seen = self.last_seen.get(client)
            if seen is None or now - seen > timeout:
                self.client_gone(client, f"silent for over {timeout:g} s")
        # Forget idle clients with nothing queued so the table stays small.
        busy = self.sched.clients()
        for client in [
            c for c, t in self.last_seen.items() if c not in busy and now - t > 10 * timeout
        ]:
            del self.last_seen[client]
            self._previews.pop(client, None)

    # -- main loop -----------------------------------------------------------------------------
    def _after_load(self) -> bool:
        """Once the model is in: start the worker, or (it failed) refuse the waiting jobs and
        end. False when the daemon is to end."""
        if self.load_error is None:
            self.engine.start(self.sched, self._outbox)
            self._started = True
            return True
        for job in self.sched.stop():
            self.send(
                job.client,
                P.error(job.id, P.INTERNAL, f"the engine could not start: {self.load_error}"),
            )
        return False

    def _idle_too_long(self) -> bool:
        limit = self.config.idle_exit_s
        if limit > 0 and self.idle_seconds() > limit:
            log.info("no job for %g s (--idle-exit): exiting", limit)
            return True
        return False

    def serve(self) -> None:
        """The socket loop until a signal, `shutdown`, --idle-exit or a failed load.

        The model is loaded by start_loading(), or here first when nobody started it."""
        assert self.router is not None and self._inbox is not None
        if self._loader is None:
            self.start_loading()
        poller = zmq.Poller()
        poller.register(self.router.sock, zmq.POLLIN)
        poller.register(self._inbox, zmq.POLLIN)
        next_reap = time.monotonic() + 0.5
        while not self.stop_requested.is_set():
            if not self._started and self._load_done.is_set() and not self._after_load():
                break
            try:
                events = dict(poller.poll(100))
            except zmq.ZMQError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if self._inbox in events:
                self._forward_outbox()
            if self.router.sock in events:
                self._drain_router()
            if time.monotonic() >= next_reap:
                self.reap()
                next_reap = time.monotonic() + 0.5
                if self._idle_too_long():
                    break
        self.shutdown()

    def _drain_router(self) -> None:
        """Handle up to 100 waiting requests (bounded, so worker output is never starved).
        Each message's frames are let go as soon as it is answered: a refused 1 GB frame
        must not stay referenced until the next message."""
        assert self.router is not None
        for _ in range(100):
            frames = self.router.recv()
            if frames is None:
                return
            self.handle(frames)
            del frames

    def _forward_outbox(self) -> None:
        assert self._inbox is not None and self.router is not None
        while True:
            try:
                frames = self._inbox.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            client = frames[0].bytes
            try:
                header = P.unpack([frames[1].buffer])[0] if len(frames) > 2 else None
                if header is not None and header.get("type") == P.PROGRESS:
                    sent = self._send_preview(client, header, frames)
                else:
                    sent = self.router.send_frames(frames)
            except Exception:
                log.exception("cannot send a reply to %s", client.hex())
                sent = True
            if not sent:
                self.client_gone(client, "disconnected")
            del frames

    def _send_preview(self, client: bytes, header: P.Header, frames: list[zmq.Frame]) -> bool:
        """A progress message with a preview: sent whole only when the client's previous
        preview has left the socket, else without its preview. A client that does not read
        then holds one preview in the daemon, not one per iteration."""
        assert self.router is not None
        last = self._previews.get(client)
        if last is not None and not last.done:
            header.pop("preview", None)
            return self.router.send(client, header)
        tracked = [*frames[:-1], zmq.Frame(frames[-1].buffer, track=True)]
        sent, tracker = self.router.send_tracked(tracked)
        if tracker is not None:
            self._previews[client] = tracker
        return sent

    def shutdown(self) -> None:
        """Cancel the running job, tell queued clients, close the socket."""
        log.info("shutting down")
        for job in self.sched.stop():
            self.send(job.client, P.cancelled(job.id))
        if self._started:
            deadline = time.monotonic() + 10.0
            while self.engine.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
                self._forward_outbox()
            self._forward_outbox()
        self.engine.stop()
        self.close()

    def close(self) -> None:
        if self.router is not None:
            self.router.close()
            self.router = None
        if self._inbox is not None:
            self._inbox.close(0)
            self._inbox = None
        if not self.engine.alive():
            self.ctx.term()  # would block on a worker still inside a long iteration
