"""One Ray actor of a cluster: a warm VGG-19 with its own style cache, running one job at a
time and streaming the job's progress back as it goes.

A plain class (Ray wraps it in cluster.front), so it can be tested without Ray. Its methods
run on the actor's threads: `run` streams one job, `cancel` and `ping` answer meanwhile.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nst_client import __version__
from nst_client import protocol as P
from nst_core.params import StyleParams

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

    def run(self, spec: JobSpec) -> Iterator[Item]:
        """Run one job on a thread of its own; yield its progress as it comes, then its reply."""
        runner = self.warm.runner
        assert runner is not None, "the model is loaded in __init__"
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
        items: queue.Queue[Item] = queue.Queue()

        def work() -> None:
            try:
                reply, buffers = runner.run(
                    job, lambda message, data: items.put(("progress", dict(message), data))
                )
                items.put(("reply", dict(reply), buffers))
            except Exception as exc:  # noqa: BLE001 - reported to the front door
                items.put(("crash", {"error": f"{type(exc).__name__}: {P.quote(exc)}"}, []))

        thread = threading.Thread(target=work, name=f"nst-job-{spec.id}", daemon=True)
        thread.start()
        try:
            while True:
                item = items.get()
                yield item
                if item[0] != "progress":
                    return
        finally:
            job.cancel.set()  # the stream was dropped (front door gone): stop the job too
            thread.join()
            with self._lock:
                self._cancels.pop(spec.id, None)
