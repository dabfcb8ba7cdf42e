"""A worker's loop: take a job from the scheduler, run it, hand its reply to the socket thread.

The same loop serves the daemon's own model (local.LocalEngine) and every Ray actor of a
cluster front door (cluster.front): only `run` differs. Replies travel to the socket thread,
the only one that touches the ROUTER, over an inproc PUSH socket per worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import zmq

from nst_client import protocol as P

from .jobs import Job, Scheduler
from .runner import PostFn, Reply

log = logging.getLogger("nst_daemon")

#: A job is run by at most this many workers: one lost mid-job means one retry elsewhere.
MAX_ATTEMPTS = 2

RunFn = Callable[[Job, PostFn], Reply]


class WorkerLost(Exception):
    """The worker's process or host went away while it ran a job."""


class Outbox:
    """One worker thread's line to the socket thread (zmq sockets are one thread's each)."""

    def __init__(self, ctx: zmq.Context[Any], address: str) -> None:
        self.sock: zmq.Socket[Any] = ctx.socket(zmq.PUSH)
        self.sock.connect(address)

    def post(self, client: bytes, message: Mapping[str, Any], buffers: Sequence[P.Buffer]) -> None:
        """[client, header, *buffers] to the socket thread, which sends them on."""
        self.sock.send_multipart([client, *P.pack(message, buffers)], copy=False)

    def close(self) -> None:
        self.sock.close(0)


class OutboxFactory(Protocol):
    def __call__(self) -> Outbox: ...


def serve_jobs(sched: Scheduler, worker: str, outbox: Outbox, run: RunFn) -> None:
    """Run jobs on `worker` until the daemon stops or the worker is lost (then its job goes
    back to the queue once, or fails with `worker_lost`). The caller has join()ed it."""
    while True:
        job = sched.take(worker)
        if job is None:
            return

        def post_progress(message: P.Progress, data: list[bytes], job: Job = job) -> None:
            outbox.post(job.client, message, data)

        reply: Mapping[str, Any]
        buffers: list[bytes]
        lost: WorkerLost | None = None
        try:
            reply, buffers = run(job, post_progress)
        except WorkerLost as exc:
            lost = exc
            job.attempts += 1
            if job.attempts < MAX_ATTEMPTS and sched.requeue(job):
                log.warning("%s; job %s goes to another worker", exc, P.quote(job.id))
                return
            if job.cancel.is_set():
                reply = P.cancelled(job.id)
            else:
                reply = P.error(
                    job.id,
                    P.WORKER_LOST,
                    f"{exc} (the job was lost by {job.attempts} workers; try again)",
                )
            buffers = []
        except Exception as exc:
            log.exception("job %s crashed", P.quote(job.id))
            reply = P.error(job.id, P.INTERNAL, f"{type(exc).__name__}: {P.quote(exc)}")
            buffers = []
        job.frames = []
        # Bookkeeping first, so a status right after the reply already shows it done.
        sched.finish(job, reply["type"])
        outbox.post(job.client, reply, buffers)
        if lost is not None:
            return
