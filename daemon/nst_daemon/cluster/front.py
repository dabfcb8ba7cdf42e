"""The front door's engine over a Ray cluster: one actor per GPU (or CPU worker slot), each a
warm model; the daemon's one queue feeds them, a job's progress streams back from its actor.

Why Ray Core actors and not Ray Serve: a job here is a long, stateful, cancellable stream (one
job per worker at a time, progress and previews, cancel within an iteration), the socket and
the queue already exist (protocol v1), and status must show each worker. Actors give exactly
that: Ray places them on the nodes' GPUs/CPUs, detects their death and streams their generators;
Serve would add an HTTP proxy, a controller and its own queue and router in front of ours,
with replicas we could neither list nor address.

Threads: one per worker (workers.serve_jobs with `_run` below), one per running job that
passes a cancel on, and one `nst-cluster` thread that every RECONCILE_S adds workers for new
nodes and lost ones and pings idle workers, so a dead one leaves the pool before a job finds
out. Nothing polls Ray faster than that: on a 2-core machine a 50 ms ray.wait loop per job
made the jobs themselves 1.8x slower (249 ms against 139 ms for a 32 px job).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import ray
import ray.exceptions
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from nst_client import __version__
from nst_client import protocol as P

from ..jobs import Job, Scheduler
from ..local import ModelSettings, StepFn, rss_bytes
from ..runner import PostFn, Reply
from ..workers import OutboxFactory, WorkerLost, serve_jobs
from .worker import JobSpec, StyleWorker

log = logging.getLogger("nst_daemon")

#: How often the pool is matched to the cluster's nodes and idle workers are pinged.
RECONCILE_S = 2.0
#: How often a running job's cancel flag is looked at (no Ray call until it is set).
CANCEL_POLL_S = 0.05
#: A node where a worker failed to start gets no new worker for this long.
RETRY_NODE_S = 30.0
#: Style keys remembered per worker (the cache affinity).
STYLES_REMEMBERED = 64
#: run + cancel + ping at once.
ACTOR_THREADS = 3

StyleActor = ray.remote(StyleWorker)
#: What says a worker's process or host is gone (as opposed to a job's own error).
LOST = (
    ray.exceptions.RayActorError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OwnerDiedError,
    ray.exceptions.NodeDiedError,
)


@dataclass
class RemoteWorker:
    """One actor as the front door sees it."""

    name: str
    node_id: str
    host: str
    device: str
    handle: Any
    ready: bool = False
    lost: bool = False
    pid: int = 0
    jobs_done: int = 0
    cache: P.CacheCounts = field(default_factory=lambda: P.CacheCounts(hits=0, misses=0))
    #: Style keys of the jobs it finished, most recent last.
    styles: collections.OrderedDict[str, None] = field(default_factory=collections.OrderedDict)
    ping: Any = None


class ClusterEngine:
    """Jobs run by Ray actors on the cluster at `address`."""

    device_type = "auto"

    def __init__(self, address: str, settings: ModelSettings) -> None:
        self.address = address
        self.settings = settings
        self.weights_name = settings.weights
        self.pool: dict[str, RemoteWorker] = {}
        self._lock = threading.Lock()
        self._count = 0
        self._failed_nodes: dict[str, float] = {}
        self._threads: list[threading.Thread] = []
        self._sched: Scheduler | None = None
        self._outbox: OutboxFactory | None = None
        self._started = threading.Event()
        self._first_ready = threading.Event()
        self._stopping = threading.Event()
        self._reconciler: threading.Thread | None = None
        self._cache_total: P.CacheCounts = {"hits": 0, "misses": 0}

    # -- start-up ------------------------------------------------------------------------------
    def load(self, step: StepFn) -> None:
        """Connect to the cluster, start a worker per slot, return once the first is ready."""
        step(f"connecting to the Ray cluster at {self.address}", 0.02)
        ray.init(
            address=self.address,
            namespace="nst-studio",
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        # `auto` (or a ray:// address) named: status shows where the head really is.
        self.address = ray.get_runtime_context().gcs_address or self.address
        self._reconcile()
        self._reconciler = threading.Thread(
            target=self._reconcile_loop, name="nst-cluster", daemon=True
        )
        self._reconciler.start()
        step("waiting for the first Ray worker to load VGG-19", 0.2)
        while not self._first_ready.wait(0.5):
            if self._stopping.is_set():
                return

    def start(self, sched: Scheduler, outbox: OutboxFactory) -> None:
        self._sched, self._outbox = sched, outbox
        self._started.set()

    # -- the pool ------------------------------------------------------------------------------
    def _slots(self, resources: dict[str, float]) -> tuple[int, str, dict[str, Any]]:
        """Workers a node takes: (count, device, actor options): one per GPU, else C // N
        CPU workers of N threads (N = --worker-threads, 0 = all C)."""
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        if gpus and self.settings.device != "cpu":
            return gpus, "cuda", {"num_gpus": 1, "num_cpus": 0}
        threads = self.settings.threads or cpus
        if threads <= 0:
            return 0, "cpu", {}
        return cpus // threads, "cpu", {"num_cpus": threads}

    def _reconcile_loop(self) -> None:
        while not self._stopping.wait(RECONCILE_S):
            try:
                self._reconcile()
            except Exception:
                log.exception("cannot look at the Ray cluster")

    def _reconcile(self) -> None:
        """Add workers where the nodes have free slots; drop idle workers that stopped
        answering."""
        if self._ending():
            return
        now = time.monotonic()
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            node_id = node["NodeID"]
            if now - self._failed_nodes.get(node_id, -RETRY_NODE_S) < RETRY_NODE_S:
                continue
            count, device, options = self._slots(node.get("Resources", {}))
            with self._lock:
                have = sum(1 for w in self.pool.values() if w.node_id == node_id)
            for _ in range(count - have):
                self._add(node_id, node.get("NodeManagerHostname", "?"), device, options)
        self._check_idle()

    def _add(self, node_id: str, host: str, device: str, options: dict[str, Any]) -> None:
        settings = ModelSettings(**{**vars(self.settings), "device": device})
        if device == "cuda":
            settings.threads = 0
        handle = StyleActor.options(
            **options,
            max_concurrency=ACTOR_THREADS,
            max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(settings)
        with self._lock:
            self._count += 1
            name = f"{host}/{device}-{self._count}"
            worker = RemoteWorker(name, node_id, host, device, handle)
            self.pool[name] = worker
        log.info("worker %s starting on node %s", name, node_id[:12])
        thread = threading.Thread(target=self._work, args=(worker,), name=f"nst-{name}")
        thread.daemon = True
        self._threads.append(thread)
        thread.start()

    def _check_idle(self) -> None:
        """Ping each idle worker; one whose ping fails has died while idle (a busy one's
        death ends its job's stream)."""
        running = self._sched.running if self._sched is not None else {}
        with self._lock:
            idle = [
                w for w in self.pool.values() if w.ready and not w.lost and w.name not in running
            ]
        for w in idle:
            if w.ping is None:
                w.ping = w.handle.ping.remote()
                continue
            done, _ = ray.wait([w.ping], timeout=0)
            if not done:
                continue
            try:
                w.cache = ray.get(done[0])
            except LOST as exc:
                self._lose(w, f"stopped answering ({type(exc).__name__})")
            w.ping = None

    def _ending(self) -> bool:
        """The daemon is shutting down (its scheduler stopped) or the engine was stopped."""
        return self._stopping.is_set() or (self._sched is not None and self._sched.stopping)

    def _lose(self, w: RemoteWorker, why: str) -> None:
        if not w.lost:
            log.warning("worker %s on %s %s", w.name, w.host, why)
        w.lost = True
        if self._sched is not None:
            self._sched.leave(w.name)

    def _drop(self, w: RemoteWorker) -> None:
        with self._lock:
            self.pool.pop(w.name, None)

    def _work(self, w: RemoteWorker) -> None:
        """A worker's thread: wait for its model, then run jobs until it is lost or the
        daemon stops; then it leaves the pool (the reconciler replaces it)."""
        try:
            info = self._wait_ready(w)
            if info is None:
                return
            if info["version"] != __version__:
                log.error(
                    "worker %s runs nst-studio %s, this front door %s: not used (install the "
                    "same version on every host)",
                    w.name,
                    info["version"],
                    __version__,
                )
                self._failed_nodes[w.node_id] = time.monotonic()
                ray.kill(w.handle)
                return
            w.pid, w.device, w.ready = int(info["pid"]), str(info["device"]), True
            log.info("worker %s ready: %s, pid %d", w.name, w.device, w.pid)
            self._first_ready.set()
            while not self._started.wait(0.5):
                if self._ending():
                    return
            sched, outbox_factory = self._sched, self._outbox
            assert sched is not None and outbox_factory is not None
            outbox = outbox_factory()
            sched.join(w.name)
            try:
                serve_jobs(sched, w.name, outbox, lambda job, post: self._run(w, job, post))
            finally:
                sched.leave(w.name)
                outbox.close()
        finally:
            self._drop(w)
            if w.lost:
                ray.kill(w.handle)

    def _wait_ready(self, w: RemoteWorker) -> dict[str, Any] | None:
        """The worker's description once its model is in; None when it failed to start (the
        node gets no new worker for RETRY_NODE_S) or the daemon stops meanwhile."""
        ref = w.handle.describe.remote()
        while not self._ending():
            done, _ = ray.wait([ref], timeout=0.5)
            if not done:
                continue
            try:
                info: dict[str, Any] = ray.get(done[0])
                return info
            except ray.exceptions.RayError as exc:
                log.error("worker %s could not start: %s", w.name, _first_line(exc))
                self._failed_nodes[w.node_id] = time.monotonic()
                w.lost = True
                return None
        return None

    # -- a job ---------------------------------------------------------------------------------
    def _run(self, w: RemoteWorker, job: Job, post: PostFn) -> Reply:
        """One job on one actor: its stream forwarded, a cancel passed on; WorkerLost when the
        actor dies meanwhile."""
        stream = w.handle.run.options(num_returns="streaming").remote(JobSpec.of(job, w.name))
        ended = threading.Event()

        def pass_cancel_on() -> None:
            while not ended.is_set():
                if job.cancel.wait(CANCEL_POLL_S):
                    w.handle.cancel.remote(job.id)
                    return

        threading.Thread(target=pass_cancel_on, name=f"nst-cancel-{w.name}", daemon=True).start()
        try:
            for ref in stream:
                kind, message, buffers = ray.get(ref)
                if kind == "progress":
                    job.iteration, job.iterations = message["iteration"], message["iterations"]
                    post(message, buffers)
                elif kind == "crash":
                    raise RuntimeError(f"on worker {w.name}: {message['error']}")
                else:
                    return self._finished(w, job, message), buffers
            raise WorkerLost(f"worker {w.name} on {w.host} ended a job without a reply")
        except LOST as exc:
            self._lose(w, f"was lost mid-job ({type(exc).__name__})")
            raise WorkerLost(
                f"worker {w.name} on {w.host} was lost while running this job "
                f"({type(exc).__name__})"
            ) from None
        finally:
            ended.set()

    def _finished(self, w: RemoteWorker, job: Job, reply: dict[str, Any]) -> Any:
        """The front door's view of a finished job: its queue time, the worker's cache."""
        if reply.get("type") == P.RESULT:
            stats = reply["stats"]
            stats["queued_s"] = round(job.queued_s, 4)
            hits, misses = stats["style_cache"]["hits"], stats["style_cache"]["misses"]
            with self._lock:
                for counts in (w.cache, self._cache_total):
                    counts["hits"] += hits
                    counts["misses"] += misses
                w.jobs_done += 1
                w.styles[job.style_key] = None
                w.styles.move_to_end(job.style_key)
                while len(w.styles) > STYLES_REMEMBERED:
                    w.styles.popitem(last=False)
        return reply

    def affinity(self, job: Job, worker: str) -> bool:
        """The worker ran a job with these styles (so its cache likely holds their targets)."""
        w = self.pool.get(worker)
        return w is not None and job.style_key in w.styles

    # -- what status shows ---------------------------------------------------------------------
    def describe(self) -> str:
        with self._lock:
            workers = [w for w in self.pool.values() if w.ready]
        kinds = collections.Counter(w.device.split(" ")[0] for w in workers)
        return f"ray cluster {self.address}: {len(workers)} worker(s)" + (
            f" ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if kinds else ""
        )

    def profile(self) -> P.DeviceProfile | None:
        return None

    def memory(self) -> P.Memory:
        return {"rss_bytes": rss_bytes()}

    def cache_counts(self) -> P.CacheCounts:
        with self._lock:
            return {"hits": self._cache_total["hits"], "misses": self._cache_total["misses"]}

    def workers(self, sched: Scheduler, client: bytes) -> list[P.WorkerStatus]:
        with self._lock:
            pool = list(self.pool.values())
        out: list[P.WorkerStatus] = []
        for w in pool:
            job = sched.running_job(w.name, client)
            state = P.STARTING if not w.ready else ("busy" if job is not None else "idle")
            out.append(
                {
                    "name": w.name,
                    "host": w.host,
                    "device": w.device,
                    "state": state,
                    "job": job,
                    "jobs_done": w.jobs_done,
                    "style_cache": {"hits": w.cache["hits"], "misses": w.cache["misses"]},
                    "pid": w.pid,
                }
            )
        return out

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def stop(self) -> None:
        """Stop the pool; the actors end with this driver."""
        self._stopping.set()
        if ray.is_initialized():
            ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
