"""One Ray actor of a cluster: a warm VGG-19 with its own style cache, running one job at a
time and streaming the job's progress back as it goes.

A plain class (Ray wraps it in cluster.front), so it can be tested without Ray. Its methods
run on the actor's threads: `run` hands one job to the worker's job thread and streams what
it reports, `cancel` and `ping` answer meanwhile.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from nst_client import __version__
from nst_client import protocol as P
from nst_client.params import StyleParams

from ..jobs import Job
from ..local import ModelSettings, WarmModel

#: What the actor yields for a job: ("progress" | "reply", message, buffers), or
#: ("crash", "Type: message", []) when the job raised something the runner does not sort.
Item = tuple[str, dict[str, Any], list[bytes]]


@dataclass
class JobSpec:
    """What of a job crosses to a worker: its images and parameters, not its client."""

    id: str
    worker: str
    content: P.ImageDesc
    styles: list[P.StyleDesc]
    frames: list[bytes]
    params: StyleParams
    preview_every: int

    @classmethod
    def of(cls, job: Job, worker: str) -> JobSpec:
        return cls(
            id=job.id,
            worker=worker,
            content=job.content,
            styles=job.styles,
            frames=[bytes(memoryview(f).cast("B")) for f in job.frames],
            params=job.params,
            preview_every=job.preview_every,
        )


class StyleWorker:
    """The body of one cluster worker (Ray actor)."""

    def __init__(self, settings: ModelSettings) -> None:
        self.warm = WarmModel(settings)
        self.warm.load()
        self._cancels: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._tasks: queue.Queue[_Task] = queue.Queue()
        threading.Thread(target=self._serve, name="nst-jobs", daemon=True).start()

    def _serve(self) -> None:
        """Run the jobs one by one on this one long-lived thread, as a single daemon's worker
        thread does. A fresh thread per job made a 32 px job 22-38 ms slower than in a single
        daemon on a 2-core CPU (the subnormal flag set, bench/bench_cluster.py); this: ~0."""
        runner = self.warm.runner
        assert runner is not None, "the model is loaded in __init__"
        while True:
            task = self._tasks.get()
            try:
                reply, buffers = runner.run(task.job, task.post)
                task.items.put(("reply", dict(reply), buffers))
            except Exception as exc:
                task.items.put(("crash", {"error": f"{type(exc).__name__}: {P.quote(exc)}"}, []))
            finally:
                task.done.set()

    def describe(self) -> dict[str, Any]:
        """Who this worker is; answered once the model is loaded (the front door waits on it)."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": self.warm.describe(),
            "device_type": self.warm.device_type,
            "weights": self.warm.weights_name,
            "version": __version__,
            "profile": self.warm.profile(),
        }

    def ping(self) -> P.CacheCounts:
        return self.warm.cache_counts()

    def _cancel_event(self, job_id: str) -> threading.Event:
        with self._lock:
            return self._cancels.setdefault(job_id, threading.Event())

    def cancel(self, job_id: str) -> None:
        """Stop the job within an iteration (its stream then ends with `cancelled`)."""
        self._cancel_event(job_id).set()

    def run(self, spec: JobSpec) -> Generator[Item, None, None]:
        """Hand one job to the job thread; yield its progress as it comes, then its reply."""
        job = Job(
            client=b"",
            id=spec.id,
            content=spec.content,
            styles=spec.styles,
            frames=list(spec.frames),
            params=spec.params,
            preview_every=spec.preview_every,
            cancel=self._cancel_event(spec.id),
            worker=spec.worker,
        )
        task = _Task(job)
        self._tasks.put(task)
        try:
            while True:
                item = task.items.get()
                yield item
                if item[0] != "progress":
                    return
        finally:
            job.cancel.set()  # the stream was dropped (front door gone): stop the job too
            task.done.wait()
            with self._lock:
                self._cancels.pop(spec.id, None)


@dataclass
class _Task:
    """A job handed to the job thread, with the queue its items come back on."""

    job: Job
    items: queue.Queue[Item] = field(default_factory=queue.Queue)
    done: threading.Event = field(default_factory=threading.Event)

    def post(self, message: Mapping[str, Any], data: list[bytes]) -> None:
        """The runner's progress callback: one progress item for the stream."""
        self.items.put(("progress", dict(message), data))
