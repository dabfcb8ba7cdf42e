"""Accepted stylize requests and the FIFO that runs them one at a time.

Shared by the socket thread (submit, cancel, status) and the worker thread (take, finish);
every change goes through the scheduler's one lock.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

from nst_client import protocol as P
from nst_core.params import StyleParams

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

    @property
    def key(self) -> JobKey:
        return (self.client, self.id)

    @property
    def queued_s(self) -> float:
        return (self.started or time.monotonic()) - self.submitted

    @property
    def nbytes(self) -> int:
        """Bytes of image frames this job holds until the runner has read them."""
        return sum(len(memoryview(f).cast("B")) for f in self.frames)


class Scheduler:
    """FIFO queue + the running job, shared by the socket thread and the worker."""

    def __init__(
        self,
        max_queued_per_client: int = P.MAX_QUEUED_PER_CLIENT,
        max_held_bytes: int = P.max_held_bytes(P.DEFAULT_MAX_PIXELS),
    ) -> None:
        self.lock = threading.Lock()
        self.max_held_bytes = max_held_bytes
        self.ready = threading.Condition(self.lock)
        self.queue: collections.deque[Job] = collections.deque()
        self.running: Job | None = None
        self.stopping = False
        self.max_queued_per_client = max_queued_per_client
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
            self.queue.append(job)
            self.ready.notify()
            return len(self.queue) - 1 + (1 if self.running is not None else 0)

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
        jobs = [*self.queue, *([self.running] if self.running is not None else [])]
        held = sum(j.nbytes for j in jobs)
        if held + nbytes > self.max_held_bytes:
            raise P.ProtocolError(
                P.QUEUE_FULL,
                f"the queue already holds {held / mb:.0f} MB of images and this request "
                f"carries {nbytes / mb:.0f} MB (at most {self.max_held_bytes / mb:.0f} MB in "
                f"all); try again when the queue is shorter",
            )

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
        """The job's final reply type (result, error or cancelled) goes into the counts."""
        with self.lock:
            if self.running is job:
                self.running = None
            if outcome == P.RESULT:
                self.done += 1
            elif outcome == P.CANCELLED:
                self.cancelled += 1
            else:
                self.failed += 1

    def cancel(self, key: JobKey) -> str | None:
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

    def snapshot(self, client: bytes) -> tuple[P.RunningJob | None, list[P.QueuedJob]]:
        """The running job and the queue as `client` may see them (others' ids hidden)."""
        with self.lock:
            job = self.running
            running: P.RunningJob | None = None
            if job is not None:
                running = {
                    "id": job.id if job.client == client else None,
                    "mine": job.client == client,
                    "iteration": job.iteration,
                    "iterations": job.iterations,
                    "elapsed_s": round(time.monotonic() - (job.started or job.submitted), 3),
                }
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
        """Stop taking jobs, cancel the running one; returns the queued jobs (now dropped)."""
        with self.lock:
            self.stopping = True
            dropped = list(self.queue)
            self.queue.clear()
            if self.running is not None:
                self.running.cancel.set()
            self.ready.notify_all()
            return dropped
