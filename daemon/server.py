"""The NST daemon: a warm VGG-19 behind a ZeroMQ ROUTER socket (protocol v1, docs/protocol.md).

Threads: the main thread owns the ROUTER socket and nothing else touches it, so status, cancel,
ping and new submissions are answered within milliseconds while a job runs. One worker thread
runs jobs in FIFO order; it hands its outgoing messages (progress, result, ...) to the main
thread over an inproc PAIR socket. Shared job state sits behind one lock.
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import logging
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import zmq

from nst_core import layouts
from nst_core.params import ParamError, StyleParams, make_params

from . import protocol as P

log = logging.getLogger("nst_daemon")

DEFAULT_CLIENT_TIMEOUT_S = 10.0
DEFAULT_STYLE_CACHE_MB = 512
MAX_STYLES = 16
#: Largest preview_every accepted (anything bigger means "no previews" anyway).
MAX_PREVIEW_EVERY = 1 << 20
_WAKE = b"\x00wake"


class SetupError(Exception):
    """The daemon cannot start with these options; the message says why."""


# --- endpoint policy ------------------------------------------------------------------------


def is_local_endpoint(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address (no CURVE needed)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    hostport = endpoint[len("tcp://") :]
    host = hostport.rsplit(":", 1)[0] if ":" in hostport else hostport
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a host name: may face the network


def check_endpoint(endpoint: str) -> None:
    """Reject endpoints ZeroMQ would take but the daemon does not serve (e.g. pgm://)."""
    if not endpoint.startswith(("tcp://", "ipc://", "inproc://")):
        raise SetupError(f"--endpoint {endpoint!r}: expected tcp://HOST:PORT or ipc://PATH")


# --- jobs -----------------------------------------------------------------------------------


@dataclass
class Job:
    """One accepted stylize request, from submission to its final reply."""

    client: bytes
    id: str
    content: dict[str, Any]
    styles: list[dict[str, Any]]
    frames: list[Any]
    params: StyleParams
    preview_every: int
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    iteration: int = 0
    iterations: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def key(self) -> tuple[bytes, str]:
        return (self.client, self.id)


class Scheduler:
    """FIFO queue + the running job, shared by the socket thread and the worker."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.queue: collections.deque[Job] = collections.deque()
        self.running: Job | None = None
        self.stopping = False
        self.done = 0
        self.failed = 0
        self.cancelled = 0

    def submit(self, job: Job) -> int:
        """Queue a job; returns its position (0 = runs next). Raises ProtocolError when full."""
        with self.lock:
            if any(j.key == job.key for j in self.queue) or (
                self.running is not None and self.running.key == job.key
            ):
                raise P.ProtocolError(
                    P.BAD_REQUEST, f"field 'id': job {job.id!r} is already queued or running"
                )
            mine = sum(1 for j in self.queue if j.client == job.client)
            if mine >= P.MAX_QUEUED_PER_CLIENT:
                raise P.ProtocolError(
                    P.QUEUE_FULL,
                    f"this client already has {mine} jobs queued "
                    f"(at most {P.MAX_QUEUED_PER_CLIENT}); wait or cancel one",
                )
            self.queue.append(job)
            self.ready.notify()
            return len(self.queue) - 1 + (1 if self.running is not None else 0)

    def take(self) -> Job | None:
        """Block until a job is due (it becomes the running one) or the daemon stops."""
        with self.lock:
            while not self.queue and not self.stopping:
                self.ready.wait()
            if self.stopping:
                return None
            self.running = self.queue.popleft()
            self.running.started = time.monotonic()
            return self.running

    def finish(self, job: Job, outcome: str) -> None:
        with self.lock:
            if self.running is job:
                self.running = None
            if outcome == P.RESULT:
                self.done += 1
            elif outcome == P.CANCELLED:
                self.cancelled += 1
            else:
                self.failed += 1

    def cancel(self, key: tuple[bytes, str]) -> str | None:
        """'queued' (removed, caller replies), 'running' (worker replies) or None (unknown)."""
        with self.lock:
            for job in self.queue:
                if job.key == key:
                    self.queue.remove(job)
                    job.cancel.set()
                    self.cancelled += 1
                    return "queued"
            if self.running is not None and self.running.key == key:
                self.running.cancel.set()
                return "running"
        return None

    def jobs_of(self, client: bytes) -> list[Job]:
        with self.lock:
            jobs = [j for j in self.queue if j.client == client]
            if self.running is not None and self.running.client == client:
                jobs.append(self.running)
            return jobs

    def clients(self) -> set[bytes]:
        with self.lock:
            out = {j.client for j in self.queue}
            if self.running is not None:
                out.add(self.running.client)
            return out

    def stop(self) -> list[Job]:
        """Stop taking jobs, cancel the running one; returns the queued jobs (now dropped)."""
        with self.lock:
            self.stopping = True
            dropped = list(self.queue)
            self.queue.clear()
            if self.running is not None:
                self.running.cancel.set()
            self.ready.notify_all()
            return dropped


# --- request validation (socket thread; cheap: no pixel is touched) ---------------------------


def _check_image(desc: Any, buffers: list[Any], field_name: str, max_pixels: int) -> dict:
    """Validate one descriptor against --max-pixels and its frame, before any allocation."""
    try:
        layouts.check_descriptor(desc, field_name)
    except layouts.LayoutError as exc:
        raise P.ProtocolError(P.BAD_REQUEST, str(exc)) from None
    pixels = desc["width"] * desc["height"]
    if pixels > max_pixels:
        raise P.ProtocolError(
            P.TOO_LARGE,
            f"{field_name}: {desc['width']}x{desc['height']} = {pixels} pixels is "
            f"over this daemon's limit of {max_pixels} (--max-pixels)",
        )
    frame = desc["frame"]
    if not 1 <= frame <= len(buffers):
        raise P.ProtocolError(
            P.BAD_REQUEST,
            f"{field_name}.frame: {frame} is out of range (this message has "
            f"{len(buffers)} image frame(s), numbered from 1)",
        )
    try:
        layouts.check_buffer(desc, buffers[frame - 1], field_name)
    except layouts.LayoutError as exc:
        raise P.ProtocolError(P.BAD_IMAGE, str(exc)) from None
    return desc


def parse_params(raw: Any, device_type: str) -> StyleParams:
    """Client params -> StyleParams; the daemon's device is fixed, so `device` may only agree."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise P.ProtocolError(
            P.BAD_REQUEST, f"field 'params' has the wrong type ({type(raw).__name__})"
        )
    device = raw.get("device", "auto")
    if device not in ("auto", device_type):
        raise P.ProtocolError(
            P.BAD_REQUEST,
            f"params.device: the daemon's device is fixed at start "
            f"({device_type}); send 'auto' or leave it out, not {device!r}",
        )
    try:
        params = make_params({k: v for k, v in raw.items() if k != "device"})
    except ParamError as exc:
        raise P.ProtocolError(P.BAD_REQUEST, f"params.{exc}") from None
    return params


def parse_stylize(
    header: dict[str, Any], buffers: list[Any], client: bytes, max_pixels: int, device_type: str
) -> Job:
    """A stylize request -> a Job (frames kept as-is; the worker converts them)."""
    request_id = P.require(header, "id", str)
    content = _check_image(P.require(header, "content", dict), buffers, "content", max_pixels)
    raw_styles = P.require(header, "styles", list)
    if not raw_styles:
        raise P.ProtocolError(P.BAD_REQUEST, "field 'styles' is empty: send at least one style")
    if len(raw_styles) > MAX_STYLES:
        raise P.ProtocolError(
            P.BAD_REQUEST, f"field 'styles' has {len(raw_styles)} entries (at most {MAX_STYLES})"
        )
    styles = []
    for i, desc in enumerate(raw_styles):
        name = f"styles[{i}]"
        _check_image(desc, buffers, name, max_pixels)
        weight = desc.get("weight", 1.0)
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not (weight >= 0 and weight < float("inf"))
        ):
            raise P.ProtocolError(
                P.BAD_REQUEST, f"{name}.weight: expected a number >= 0, got {weight!r}"
            )
        styles.append({**desc, "weight": float(weight)})
    params = parse_params(header.get("params"), device_type)
    preview_every = header.get("preview_every", 0)
    if preview_every is None:
        preview_every = 0
    if (
        isinstance(preview_every, bool)
        or not isinstance(preview_every, int)
        or not (0 <= preview_every <= MAX_PREVIEW_EVERY)
    ):
        raise P.ProtocolError(
            P.BAD_REQUEST,
            f"field 'preview_every': expected an integer "
            f"0..{MAX_PREVIEW_EVERY}, got {preview_every!r}",
        )
    return Job(
        client=client,
        id=request_id,
        content=content,
        styles=styles,
        frames=buffers,
        params=params,
        preview_every=preview_every,
    )


# --- memory figures ---------------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


# --- the daemon -----------------------------------------------------------------------------


class Daemon:
    """Socket loop (main thread) + worker thread around one warm model."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.endpoint: str = args.endpoint
        self.max_pixels: int = args.max_pixels
        self.client_timeout_s: float = args.client_timeout
        self.sched = Scheduler()
        self.started = time.monotonic()
        self.last_seen: dict[bytes, float] = {}
        self.stop_requested = threading.Event()
        self.ctx = zmq.Context()
        self.sock: zmq.Socket | None = None
        self.auth: Any = None
        self.engine: Any = None
        self.model: Any = None
        self.device_name = "?"
        self.device_type = "cpu"
        self.style_cache: Any = None
        self._inbox_addr = f"inproc://nst-worker-{id(self)}"
        self._inbox: zmq.Socket | None = None
        self._worker: threading.Thread | None = None
        self._worker_ready = threading.Event()
        self._torch: Any = None

    # -- setup ---------------------------------------------------------------------------------
    def bind(self) -> None:
        """Bind the ROUTER (with CURVE when keys are given); fails fast before the model loads."""
        a = self.args
        check_endpoint(self.endpoint)
        curve = bool(a.curve_secret_key or a.curve_allow)
        if curve and not (a.curve_secret_key and a.curve_allow):
            raise SetupError("CURVE needs both --curve-secret-key and --curve-allow")
        if not is_local_endpoint(self.endpoint) and not curve:
            raise SetupError(
                f"refusing to bind {self.endpoint}: it is not a loopback or ipc endpoint, and "
                f"serving the network needs CURVE encryption. Give --curve-secret-key "
                f"SERVER.key_secret and --curve-allow DIR (client public .key files, made with "
                f"zmq.auth.create_certificates), or bind tcp://127.0.0.1:PORT / ipc://PATH"
            )
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 500)
        sock.setsockopt(zmq.MAXMSGSIZE, P.MAX_MESSAGE_BYTES)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a vanished peer shows as EHOSTUNREACH
        sock.setsockopt(zmq.SNDHWM, 10000)
        sock.setsockopt(zmq.RCVHWM, 1000)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        if curve:
            self._setup_curve(sock)
        try:
            sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise SetupError(f"cannot bind {self.endpoint}: {exc}") from None
        self.sock = sock
        self._inbox = self.ctx.socket(zmq.PAIR)
        self._inbox.bind(self._inbox_addr)

    def _setup_curve(self, sock: zmq.Socket) -> None:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        a = self.args
        if not os.path.isdir(a.curve_allow):
            raise SetupError(
                f"--curve-allow {a.curve_allow!r}: expected a directory of client "
                f"public key files (*.key)"
            )
        try:
            public, secret = zmq.auth.load_certificate(a.curve_secret_key)
        except (OSError, ValueError) as exc:
            raise SetupError(f"--curve-secret-key {a.curve_secret_key!r}: {exc}") from None
        if not secret:
            raise SetupError(
                f"--curve-secret-key {a.curve_secret_key!r} holds no secret key "
                f"(give the .key_secret file)"
            )
        self.auth = ThreadAuthenticator(self.ctx)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=a.curve_allow)
        sock.curve_server = True
        sock.curve_publickey = public
        sock.curve_secretkey = secret

    def load(self) -> None:
        """Import the engine, load the model and run one tiny job so the first real one is fast."""
        import numpy as np

        from nst_core import engine

        self.engine = engine
        self.model = engine.load_model(weights=self.args.weights, device=self.args.device)
        device = self.model.device
        self.device_type = getattr(device, "type", str(device))
        self.device_name = str(device)
        self.style_cache = engine.StyleTargetCache(max_bytes=self.args.style_cache_mb << 20)
        import torch

        self._torch = torch
        if self.args.memory_fraction and self.device_type == "cuda":
            torch.cuda.set_per_process_memory_fraction(self.args.memory_fraction, device)
        if not self.args.no_warmup:
            rng = np.random.default_rng(0)
            img, style = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
            engine.stylize(
                img, [style], {"iterations": 1, "size": 32, "min_scale": 32}, model=self.model
            )

    def describe_device(self) -> str:
        if self.device_type == "cuda" and self._torch is not None:
            try:
                return f"{self.device_name} ({self._torch.cuda.get_device_name(self.model.device)})"
            except Exception:  # noqa: BLE001 - only cosmetic
                pass
        return self.device_name

    # -- messages ------------------------------------------------------------------------------
    def send(self, client: bytes, header: dict[str, Any], buffers: list[Any] = ()) -> None:
        """Send to one client (socket thread only); a vanished client gets its jobs cancelled."""
        assert self.sock is not None
        try:
            self.sock.send_multipart(
                [client, *P.pack(header, list(buffers))], flags=zmq.NOBLOCK, copy=False
            )
        except zmq.Again:
            log.warning(
                "client %s is not reading; dropped a %s message", client.hex(), header.get("type")
            )
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                self.client_gone(client, "disconnected")
            else:
                log.error("send to %s failed: %s", client.hex(), exc)

    def error(self, client: bytes, request_id: Any, code: str, message: str) -> None:
        log.info("error %s to %s: %s", code, client.hex(), message)
        self.send(
            client,
            {
                "type": P.ERROR,
                "id": request_id if isinstance(request_id, str) else None,
                "code": code,
                "message": message,
            },
        )

    def client_gone(self, client: bytes, why: str) -> None:
        """Cancel everything a vanished client queued or is running."""
        self.last_seen.pop(client, None)
        for job in self.sched.jobs_of(client):
            log.warning("client %s %s: cancelling its job %r", client.hex(), why, job.id)
            self.sched.cancel(job.key)

    def handle(self, frames: list[Any]) -> None:
        """One incoming message: answer it or queue its job; never raises."""
        client = bytes(frames[0])
        self.last_seen[client] = time.monotonic()
        request_id: Any = None
        try:
            header, buffers = P.unpack([f.buffer for f in frames[1:]])
            request_id = header.get("id")
            kind = P.require(header, "type", str)
            P.require(header, "id", str)
            if kind not in P.REQUESTS:
                raise P.ProtocolError(
                    P.BAD_REQUEST,
                    f"field 'type': unknown request type {kind!r} (known: {', '.join(P.REQUESTS)})",
                )
            protocol = header.get("protocol", P.PROTOCOL_VERSION)
            if protocol != P.PROTOCOL_VERSION or isinstance(protocol, bool):
                raise P.ProtocolError(
                    P.UNSUPPORTED_PROTOCOL,
                    f"field 'protocol': this daemon speaks protocol "
                    f"{P.PROTOCOL_VERSION}, not {protocol!r}",
                )
            getattr(self, f"on_{kind}")(client, header, buffers)
        except P.ProtocolError as exc:
            self.error(client, request_id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - the daemon must outlive any request
            log.error("internal error on a request: %s", traceback.format_exc())
            self.error(client, request_id, P.INTERNAL, f"{type(exc).__name__}: {exc}")

    def on_hello(self, client: bytes, header: dict[str, Any], buffers: list[Any]) -> None:
        P.require(header, "protocol", int)
        name = header.get("client")
        log.info("hello from %s (%s)", client.hex(), name if isinstance(name, str) else "?")
        from importlib.metadata import PackageNotFoundError, version

        try:
            product = version("nst-studio")
        except PackageNotFoundError:
            product = "unknown"
        self.send(
            client,
            {
                "type": P.WELCOME,
                "id": header["id"],
                "protocol": P.PROTOCOL_VERSION,
                "version": product,
                "device": self.device_name,
                "weights": getattr(self.model, "weights_name", self.args.weights),
                "max_pixels": self.max_pixels,
                "max_queued": P.MAX_QUEUED_PER_CLIENT,
                "client_timeout_s": self.client_timeout_s,
                "defaults": StyleParams().to_dict(),
            },
        )

    def on_ping(self, client: bytes, header: dict[str, Any], buffers: list[Any]) -> None:
        self.send(client, {"type": P.PONG, "id": header["id"]})

    def on_status(self, client: bytes, header: dict[str, Any], buffers: list[Any]) -> None:
        with self.sched.lock:
            job = self.sched.running
            # Other clients' job ids are not shown: they are theirs to know.
            running = (
                None
                if job is None
                else {
                    "id": job.id if job.client == client else None,
                    "mine": job.client == client,
                    "iteration": job.iteration,
                    "iterations": job.iterations,
                    "elapsed_s": round(time.monotonic() - (job.started or job.submitted), 3),
                }
            )
            queue = [
                {"id": j.id if j.client == client else None, "mine": j.client == client}
                for j in self.sched.queue
            ]
            counts = (self.sched.done, self.sched.failed, self.sched.cancelled)
        memory: dict[str, Any] = {"rss_bytes": rss_bytes()}
        if self.device_type == "cuda" and self._torch is not None:
            cuda = self._torch.cuda
            memory.update(
                device_allocated_bytes=cuda.memory_allocated(self.model.device),
                device_reserved_bytes=cuda.memory_reserved(self.model.device),
                device_total_bytes=cuda.get_device_properties(self.model.device).total_memory,
            )
        cache = self.style_cache
        self.send(
            client,
            {
                "type": P.STATUS,
                "id": header["id"],
                "running": running,
                "queue": queue,
                "device": self.device_name,
                "memory": memory,
                "uptime_s": round(time.monotonic() - self.started, 3),
                "jobs_done": counts[0],
                "jobs_failed": counts[1],
                "jobs_cancelled": counts[2],
                "style_cache": {
                    "hits": getattr(cache, "hits", 0),
                    "misses": getattr(cache, "misses", 0),
                },
            },
        )

    def on_cancel(self, client: bytes, header: dict[str, Any], buffers: list[Any]) -> None:
        job_id = P.require(header, "job", str)
        where = self.sched.cancel((client, job_id))
        if where is None:
            raise P.ProtocolError(
                P.UNKNOWN_JOB, f"field 'job': no queued or running job {job_id!r} from this client"
            )
        log.info("cancel %r (%s)", job_id, where)
        if where == "queued":
            self.send(client, {"type": P.CANCELLED, "id": job_id})
        # A running job's worker sends `cancelled` once the engine stops (within an iteration).

    def on_stylize(self, client: bytes, header: dict[str, Any], buffers: list[Any]) -> None:
        job = parse_stylize(header, buffers, client, self.max_pixels, self.device_type)
        position = self.sched.submit(job)
        log.info(
            "job %r from %s accepted at position %d (%dx%d, %d style(s))",
            job.id,
            client.hex(),
            position,
            job.content["width"],
            job.content["height"],
            len(job.styles),
        )
        self.send(client, {"type": P.ACCEPTED, "id": job.id, "queue_position": position})

    # -- liveness ------------------------------------------------------------------------------
    def reap(self) -> None:
        """Cancel the jobs of clients silent for longer than --client-timeout."""
        now = time.monotonic()
        for client in self.sched.clients():
            seen = self.last_seen.get(client)
            if seen is None or now - seen > self.client_timeout_s:
                self.client_gone(client, f"silent for over {self.client_timeout_s:g} s")
        # Forget idle clients with nothing queued so the table stays small.
        busy = self.sched.clients()
        for client in [
            c
            for c, t in self.last_seen.items()
            if c not in busy and now - t > 10 * self.client_timeout_s
        ]:
            del self.last_seen[client]

    # -- worker --------------------------------------------------------------------------------
    def _worker_main(self) -> None:
        out = self.ctx.socket(zmq.PAIR)
        out.connect(self._inbox_addr)
        self._worker_ready.set()
        try:
            while True:
                job = self.sched.take()
                if job is None:
                    return
                try:
                    outcome, header, buffers = self.run_job(job, out)
                except Exception as exc:  # noqa: BLE001 - the worker must outlive any job
                    log.error("job %r crashed: %s", job.id, traceback.format_exc())
                    outcome, buffers = P.ERROR, []
                    header = {
                        "type": P.ERROR,
                        "id": job.id,
                        "code": P.INTERNAL,
                        "message": f"{type(exc).__name__}: {exc}",
                    }
                job.frames = []
                # Bookkeeping first, so a status right after the reply already shows it done.
                self.sched.finish(job, outcome)
                self._post(out, job.client, header, buffers)
        finally:
            out.close(0)

    @staticmethod
    def _post(
        out: zmq.Socket, client: bytes, header: dict[str, Any], buffers: list[Any] = ()
    ) -> None:
        """Worker -> socket thread: [client, header, *buffers] over the inproc PAIR."""
        out.send_multipart([client, *P.pack(header, list(buffers))], copy=False)

    def _is_oom(self, exc: BaseException) -> bool:
        torch = self._torch
        if isinstance(exc, MemoryError):
            return True
        if torch is not None and isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
            return True
        text = str(exc).lower()
        # CUDA: "CUDA out of memory"; CPU: "DefaultCPUAllocator: can't allocate memory", or
        # oneDNN's "could not create a primitive" when its scratch buffers cannot be had.
        return isinstance(exc, RuntimeError) and (
            "out of memory" in text
            or "can't allocate memory" in text
            or "could not create a primitive" in text
        )

    def run_job(self, job: Job, out: zmq.Socket) -> tuple[str, dict[str, Any], list[Any]]:
        """Run one job on the worker thread; posts its progress, returns its final reply."""
        engine = self.engine
        if job.cancel.is_set():
            return P.CANCELLED, {"type": P.CANCELLED, "id": job.id}, []
        if job.params.iterations == 0:
            # Nothing to optimise: the content comes back as sent (pure transport), bit-exact.
            desc = layouts.describe(
                job.content["width"],
                job.content["height"],
                job.content["channels"],
                job.content["dtype"],
                1,
            )
            stats = {
                "elapsed_s": 0.0,
                "queued_s": round((job.started or job.submitted) - job.submitted, 4),
                "iterations": 0,
                "scales": 0,
                "loss": None,
                "device": self.device_name,
                "style_cache": {"hits": 0, "misses": 0},
                "oom_retries": 0,
            }
            return (
                P.RESULT,
                {"type": P.RESULT, "id": job.id, "image": desc, "stats": stats},
                [job.frames[job.content["frame"] - 1]],
            )
        content = layouts.to_array(job.content, job.frames[job.content["frame"] - 1])
        styles = [
            (layouts.to_array(d, job.frames[d["frame"] - 1]), d["weight"]) for d in job.styles
        ]
        job.frames = []  # the arrays are copies; let the wire buffers go
        last: dict[str, Any] = {}

        def on_progress(p: Any) -> None:
            job.iteration, job.iterations = p.iteration, p.iterations
            header: dict[str, Any] = {
                "type": P.PROGRESS,
                "id": job.id,
                "iteration": int(p.iteration),
                "iterations": int(p.iterations),
                "scale": int(p.scale),
                "scales": int(p.scales),
                "loss": {
                    "total": float(p.loss_total),
                    "content": float(p.loss_content),
                    "style": float(p.loss_style),
                },
                "elapsed_s": float(p.elapsed_s),
                "eta_s": float(p.eta_s),
            }
            last.update(header)
            buffers: list[Any] = []
            if getattr(p, "preview", None) is not None:
                desc, data = layouts.from_array(p.preview, 1)
                header["preview"] = desc
                buffers.append(data)
            self._post(out, job.client, header, buffers)

        params = job.params
        model = self.model
        if params.pooling != getattr(model, "pooling", params.pooling):
            model = engine.load_model(
                weights=self.args.weights, device=self.device_name, pooling=params.pooling
            )
        params.device = self.device_type
        hits0, misses0 = self.style_cache.hits, self.style_cache.misses
        t0 = time.monotonic()
        oom_retries = 0
        while True:
            try:
                result = engine.stylize(
                    content,
                    styles,
                    params,
                    on_progress,
                    job.cancel.is_set,
                    preview_every=job.preview_every,
                    model=model,
                    style_cache=self.style_cache,
                )
                break
            except engine.StylizeCancelled:
                log.info("job %r cancelled", job.id)
                return P.CANCELLED, {"type": P.CANCELLED, "id": job.id}, []
            except ParamError as exc:
                return (
                    P.ERROR,
                    {
                        "type": P.ERROR,
                        "id": job.id,
                        "code": P.BAD_REQUEST,
                        "message": f"params.{exc}",
                    },
                    [],
                )
            except engine.OptimisationFailed as exc:
                log.warning("job %r: optimisation failed: %s", job.id, exc)
                return (
                    P.ERROR,
                    {
                        "type": P.ERROR,
                        "id": job.id,
                        "code": P.OPTIMISATION_FAILED,
                        "message": str(exc),
                    },
                    [],
                )
            except ValueError as exc:  # the engine's checks name the field at fault
                return (
                    P.ERROR,
                    {"type": P.ERROR, "id": job.id, "code": P.BAD_REQUEST, "message": str(exc)},
                    [],
                )
            except Exception as exc:  # noqa: BLE001 - sorted below
                if not self._is_oom(exc):
                    raise
                self._free_device_memory()
                smaller = max(256, params.tile_size // 2)
                if oom_retries == 0 and smaller < params.tile_size and not job.cancel.is_set():
                    log.warning(
                        "job %r ran out of memory; retrying with tile_size %d", job.id, smaller
                    )
                    oom_retries += 1
                    params.tile_size = smaller
                    continue
                log.error("job %r ran out of memory: %s", job.id, exc)
                return (
                    P.ERROR,
                    {
                        "type": P.ERROR,
                        "id": job.id,
                        "code": P.OUT_OF_MEMORY,
                        "message": f"out of memory on {self.device_name} for "
                        f"{job.content['width']}x{job.content['height']} at size "
                        f"{params.size}: lower params.size or params.tile_size",
                    },
                    [],
                )
        result = self._restore_alpha(content, result)
        desc, data = layouts.from_array(result, 1)
        if (desc["width"], desc["height"], desc["channels"], desc["dtype"]) != (
            job.content["width"],
            job.content["height"],
            job.content["channels"],
            job.content["dtype"],
        ):
            raise RuntimeError(f"engine returned {desc}, expected the content's layout")
        stats = {
            "elapsed_s": round(time.monotonic() - t0, 4),
            "queued_s": round((job.started or t0) - job.submitted, 4),
            "iterations": last.get("iterations", 0),
            "scales": last.get("scales", 0),
            "loss": last.get("loss"),
            "device": self.device_name,
            "style_cache": {
                "hits": self.style_cache.hits - hits0,
                "misses": self.style_cache.misses - misses0,
            },
            "oom_retries": oom_retries,
        }
        log.info("job %r done in %.2f s", job.id, stats["elapsed_s"])
        return P.RESULT, {"type": P.RESULT, "id": job.id, "image": desc, "stats": stats}, [data]

    @staticmethod
    def _restore_alpha(content: Any, result: Any) -> Any:
        """Alpha is returned exactly as sent, whatever the engine did with it."""
        if (
            result.shape == content.shape
            and result.dtype == content.dtype
            and content.shape[2] in (2, 4)
        ):
            result = result.copy() if not result.flags.writeable else result
            result[:, :, -1] = content[:, :, -1]
        return result

    def _free_device_memory(self) -> None:
        torch = self._torch
        if torch is not None and self.device_type == "cuda":
            torch.cuda.empty_cache()

    # -- main loop -----------------------------------------------------------------------------
    def serve(self) -> None:
        assert self.sock is not None and self._inbox is not None
        self._worker = threading.Thread(target=self._worker_main, name="nst-worker", daemon=True)
        self._worker.start()
        self._worker_ready.wait()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self._inbox, zmq.POLLIN)
        next_reap = time.monotonic() + 0.5
        while not self.stop_requested.is_set():
            try:
                events = dict(poller.poll(100))
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EINTR:
                    continue
                raise
            if self._inbox in events:
                self._forward_outbox()
            if self.sock in events:
                for _ in range(100):  # bounded, so worker output is never starved
                    try:
                        frames = self.sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self.handle(frames)
            if time.monotonic() >= next_reap:
                self.reap()
                next_reap = time.monotonic() + 0.5
        self.shutdown()

    def _forward_outbox(self) -> None:
        assert self._inbox is not None
        while True:
            try:
                frames = self._inbox.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            client = bytes(frames[0])
            try:
                self.sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)  # type: ignore
            except zmq.Again:
                log.warning("client %s is not reading; dropped a message", client.hex())
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EHOSTUNREACH:
                    self.client_gone(client, "disconnected")
                else:
                    log.error("send to %s failed: %s", client.hex(), exc)

    def shutdown(self) -> None:
        """Cancel the running job, tell queued clients, close the socket."""
        log.info("shutting down")
        for job in self.sched.stop():
            self.send(job.client, {"type": P.CANCELLED, "id": job.id})
        if self._worker is not None:
            deadline = time.monotonic() + 10.0
            while self._worker.is_alive() and time.monotonic() < deadline:
                self._worker.join(0.05)
                self._forward_outbox()
            self._forward_outbox()
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(500)
            self.sock = None
        if self._inbox is not None:
            self._inbox.close(0)
            self._inbox = None
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
        if self._worker is None or not self._worker.is_alive():
            self.ctx.term()  # would block on a worker still inside a long iteration


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nst-daemon",
        description="Serve neural style transfer from a warm VGG-19 over ZeroMQ "
        "(protocol v1, see docs/protocol.md).",
    )
    p.add_argument(
        "--endpoint",
        default=P.DEFAULT_ENDPOINT,
        help="tcp://HOST:PORT or ipc://PATH (default %(default)s); a non-loopback "
        "address needs --curve-secret-key and --curve-allow",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--weights", default="caffe", help="VGG-19 weights (default %(default)s)")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=P.DEFAULT_MAX_PIXELS,
        help="largest image (width x height) accepted (default %(default)s)",
    )
    p.add_argument(
        "--client-timeout",
        type=float,
        default=DEFAULT_CLIENT_TIMEOUT_S,
        help="seconds of silence after which a client's jobs are cancelled "
        "(clients ping every second while waiting; default %(default)s)",
    )
    p.add_argument(
        "--style-cache-mb",
        type=int,
        default=DEFAULT_STYLE_CACHE_MB,
        help="memory bound of the style-target cache (default %(default)s)",
    )
    p.add_argument(
        "--memory-fraction",
        type=float,
        default=0.0,
        help="cap this process at this fraction of the GPU's memory (0 = no cap)",
    )
    p.add_argument(
        "--curve-secret-key",
        metavar="FILE",
        help="server certificate with its secret key (zmq.auth .key_secret file)",
    )
    p.add_argument(
        "--curve-allow",
        metavar="DIR",
        help="directory of allowed client public certificates (*.key)",
    )
    p.add_argument(
        "--no-warmup", action="store_true", help="skip the tiny warm-up job after loading the model"
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s nst-daemon %(levelname)s %(message)s",
    )
    if args.max_pixels <= 0:
        print("nst-daemon: --max-pixels must be positive", file=sys.stderr)
        return 2
    if args.client_timeout <= 0:
        print("nst-daemon: --client-timeout must be positive", file=sys.stderr)
        return 2
    if not 0.0 <= args.memory_fraction <= 1.0:
        print("nst-daemon: --memory-fraction must be within 0..1", file=sys.stderr)
        return 2
    daemon = Daemon(args)

    def on_signal(signum: int, frame: Any) -> None:
        # Only set a flag: the handler runs on the main thread, which may hold the job lock.
        daemon.stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        daemon.bind()
    except SetupError as exc:
        print(f"nst-daemon: {exc}", file=sys.stderr)
        daemon.close()
        return 2
    try:
        daemon.load()
    except Exception as exc:  # noqa: BLE001 - a clear message instead of a traceback
        log.debug("load failed", exc_info=True)
        print(f"nst-daemon: cannot load the model: {type(exc).__name__}: {exc}", file=sys.stderr)
        daemon.close()
        return 1
    if daemon.stop_requested.is_set():
        daemon.close()
        return 0
    print(
        f"ready endpoint={daemon.endpoint} device={daemon.describe_device()} "
        f"weights={getattr(daemon.model, 'weights_name', args.weights)} "
        f"max_pixels={daemon.max_pixels} pid={os.getpid()}",
        flush=True,
    )
    daemon.serve()
    log.info("bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
