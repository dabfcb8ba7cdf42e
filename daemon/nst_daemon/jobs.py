"""Accepted stylize requests and the one FIFO that hands them to the workers.

A worker is a named slot that runs one job at a time: the single daemon has one (its own
model), a cluster front door one per Ray actor. Shared by the socket thread (submit, cancel,
status) and the workers' threads (take, finish, requeue); every change goes through the
scheduler's one lock.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from nst_client import protocol as P
from nst_client.params import StyleParams

JobKey = tuple[bytes, str]


@dataclass
class Job:
    """One accepted stylize request, from submission to its final reply."""

    client: bytes
    id: str
    content: P.ImageDesc
    styles: list[P.StyleDesc]
    #: The request's image frames until the runner has read them (then emptied).
    frames: list[P.Buffer]
    params: StyleParams
    preview_every: int
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    iteration: int = 0
    iterations: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    #: The worker running it, and how many workers were lost while running it.
    worker: str | None = None
    attempts: int = 0

    @property
    def key(self) -> JobKey:
        return (self.client, self.id)

    @property
    def queued_s(self) -> float:
        return (self.started or time.monotonic()) - self.submitted

    @cached_property
    def style_key(self) -> str:
        """The styles' identity (their pixels, layouts and weights; not their masks, which the
        Gram targets do not depend on): a worker that ran it holds their targets, so the next
        job with the same styles is sent there."""
        digest = hashlib.blake2b(digest_size=16)
        for desc in self.styles:
            kept = {k: v for k, v in desc.items() if k not in ("mask", "strength")}
            digest.update(repr(sorted(kept.items())).encode())
            digest.update(memoryview(self.frames[desc["frame"] - 1]).cast("B"))
        return digest.hexdigest()

    @property
    def nbytes(self) -> int:
        """Bytes of image frames this job holds until the runner has read them."""
        return sum(len(memoryview(f).cast("B")) for f in self.frames)


#: Whether a worker already holds a job's styles (the cluster's cache affinity).
Affinity = Callable[[Job, str], bool]


class Scheduler:
    """One FIFO queue for every worker; a job goes to an idle worker as soon as there is one,
    preferring an idle worker that already holds its styles (`affinity`)."""

    def __init__(
        self,
        max_queued_per_client: int = P.MAX_QUEUED_PER_CLIENT,
        max_held_bytes: int = P.max_held_bytes(P.DEFAULT_MAX_PIXELS),
        affinity: Affinity | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.max_held_bytes = max_held_bytes
        self.ready = threading.Condition(self.lock)
        self.queue: collections.deque[Job] = collections.deque()
        #: Per worker, the job it runs.
        self.running: dict[str, Job] = {}
        #: Workers able to take jobs, and those waiting for one (longest-waiting first).
        self.workers: set[str] = set()
        self.idle: list[str] = []
        self.affinity = affinity
        self.stopping = False
        self.max_queued_per_client = max_queued_per_client
        self.done = 0
        self.failed = 0
        self.cancelled = 0

    def submit(self, job: Job) -> int:
        """Queue a job; returns its position: how many jobs must end before a worker takes it
        (0 = a worker is free). Raises ProtocolError when full."""
        if self.affinity is not None:
            _ = job.style_key  # hashed here, not under the lock status and take() wait on
        with self.lock:
            if any(j.key == job.key for j in self._jobs()):
                raise P.ProtocolError(
                    P.BAD_REQUEST, f"field 'id': job {P.quote(job.id)} is already queued or running"
                )
            mine = sum(1 for j in self.queue if j.client == job.client)
            if mine >= self.max_queued_per_client:
                raise P.ProtocolError(
                    P.QUEUE_FULL,
                    f"this client already has {mine} jobs queued "
                    f"(at most {self.max_queued_per_client}); wait or cancel one",
                )
            self._check_held_bytes(job.nbytes)
            ahead = len(self.queue) + len(self.running)
            self.queue.append(job)
            self.ready.notify_all()
            return max(0, ahead - max(0, len(self.workers) - 1))

    def _jobs(self) -> list[Job]:
        return [*self.queue, *self.running.values()]

    def _check_held_bytes(self, nbytes: int) -> None:
        """The queue's images stay within max_held_bytes, whoever sends them (lock held)."""
        mb = 1 << 20
        if nbytes > self.max_held_bytes:
            raise P.ProtocolError(
                P.TOO_LARGE,
                f"this request carries {nbytes / mb:.0f} MB of images; this daemon holds at "
                f"most {self.max_held_bytes / mb:.0f} MB ({P.HELD_LAYERS} f32 RGBA layers "
                f"of --max-pixels)",
            )
        held = sum(j.nbytes for j in self._jobs())
        if held + nbytes > self.max_held_bytes:
            raise P.ProtocolError(
                P.QUEUE_FULL,
                f"the queue already holds {held / mb:.0f} MB of images and this request "
                f"carries {nbytes / mb:.0f} MB (at most {self.max_held_bytes / mb:.0f} MB in "
                f"all); try again when the queue is shorter",
            )

    # -- workers -------------------------------------------------------------------------------
    def join(self, worker: str) -> None:
        """A worker is ready to take jobs (its model is loaded)."""
        with self.lock:
            self.workers.add(worker)
            self.ready.notify_all()

    def leave(self, worker: str) -> None:
        """A worker is gone: it takes nothing more (its take() returns None)."""
        with self.lock:
            self.workers.discard(worker)
            self.ready.notify_all()

    def _chosen(self, job: Job) -> str:
        """The idle worker the job goes to (lock held, self.idle not empty)."""
        if self.affinity is not None and len(self.idle) > 1:
            for worker in self.idle:
                if self.affinity(job, worker):
                    return worker
        return self.idle[0]

    def take(self, worker: str) -> Job | None:
        """Block until a job is due on this worker (it becomes the worker's running job), or
        the daemon stops, or the worker has left (None). The worker has join()ed."""
        with self.lock:
            self.idle.append(worker)
            try:
                while True:
                    if self.stopping or worker not in self.workers:
                        return None
                    if self.queue and self._chosen(self.queue[0]) == worker:
                        job = self.queue.popleft()
                        job.started, job.worker = time.monotonic(), worker
                        self.running[worker] = job
                        self.ready.notify_all()  # the next job may be another worker's
                        return job
                    self.ready.wait()
            finally:
                self.idle.remove(worker)

    def finish(self, job: Job, outcome: str) -> None:
        """The job's final reply type (result, error or cancelled) goes into the counts."""
        with self.lock:
            if job.worker is not None and self.running.get(job.worker) is job:
                del self.running[job.worker]
            if outcome == P.RESULT:
                self.done += 1
            elif outcome == P.CANCELLED:
                self.cancelled += 1
            else:
                self.failed += 1

    def requeue(self, job: Job) -> bool:
        """Its worker was lost mid-job: the job goes back to the head of the queue for the next
        free worker. False (not queued) when it was cancelled meanwhile or the daemon stops."""
        with self.lock:
            if job.worker is not None and self.running.get(job.worker) is job:
                del self.running[job.worker]
            if job.cancel.is_set() or self.stopping:
                return False
            job.started, job.worker, job.iteration = None, None, 0
            self.queue.appendleft(job)
            self.ready.notify_all()
            return True

    def cancel(self, key: JobKey) -> str | None:
        """'queued' (removed, caller replies), 'running' (worker replies) or None (unknown)."""
        with self.lock:
            for job in self.queue:
                if job.key == key:
                    self.queue.remove(job)
                    job.cancel.set()
                    self.cancelled += 1
                    return "queued"
            for job in self.running.values():
                if job.key == key:
                    job.cancel.set()
                    return "running"
        return None

    def jobs_of(self, client: bytes) -> list[Job]:
        with self.lock:
            return [j for j in self._jobs() if j.client == client]

    def clients(self) -> set[bytes]:
        with self.lock:
            return {j.client for j in self._jobs()}

    def queued(self) -> int:
        with self.lock:
            return len(self.queue)

    def running_job(self, worker: str, client: bytes) -> P.RunningJob | None:
        """The job `worker` runs, as `client` may see it (others' ids hidden)."""
        with self.lock:
            job = self.running.get(worker)
            return _seen_by(job, client) if job is not None else None

    def snapshot(self, client: bytes) -> tuple[P.RunningJob | None, list[P.QueuedJob]]:
        """A running job (the client's own first) and the queue, as `client` may see them."""
        with self.lock:
            jobs = sorted(self.running.values(), key=lambda j: (j.client != client, j.started))
            running = _seen_by(jobs[0], client) if jobs else None
            queue: list[P.QueuedJob] = [
                {"id": j.id if j.client == client else None, "mine": j.client == client}
                for j in self.queue
            ]
            return running, queue

    def counts(self) -> tuple[int, int, int]:
        """Jobs (done, failed, cancelled) so far."""
        with self.lock:
            return self.done, self.failed, self.cancelled

    def stop(self) -> list[Job]:
        """Stop taking jobs, cancel the running ones; returns the queued jobs (now dropped)."""
        with self.lock:
            self.stopping = True
            dropped = list(self.queue)
            self.queue.clear()
            for job in self.running.values():
                job.cancel.set()
            self.ready.notify_all()
            return dropped


def _seen_by(job: Job, client: bytes) -> P.RunningJob:
    mine = job.client == client
    return {
        "id": job.id if mine else None,
        "mine": mine,
        "iteration": job.iteration,
        "iterations": job.iterations,
        "elapsed_s": round(time.monotonic() - (job.started or job.submitted), 3),
    }
