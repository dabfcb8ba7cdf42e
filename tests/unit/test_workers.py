"""A worker's loop (nst_daemon.workers) and a cluster's slots per node, without processes:
a worker lost mid-job means one retry elsewhere, then `worker_lost`."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from nst_client import protocol as P
from nst_client.layouts import describe
from nst_client.params import make_params
from nst_daemon.jobs import Job, Scheduler
from nst_daemon.local import ModelSettings
from nst_daemon.runner import PostFn, Reply
from nst_daemon.workers import Outbox, WorkerLost, serve_jobs


class RecordingOutbox(Outbox):
    """Keeps what a worker would hand to the socket thread."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, dict[str, Any]]] = []

    def post(self, client: bytes, message: Mapping[str, Any], buffers: Sequence[P.Buffer]) -> None:
        self.sent.append((client, dict(message)))

    def close(self) -> None:
        pass


def _job(job_id: str) -> Job:
    return Job(b"c", job_id, describe(1, 1, 3, "u8", 1), [], [], make_params({}), 0)


def _lose(job: Job, post: PostFn) -> Reply:
    raise WorkerLost(f"worker w on host was lost while running {job.id}")


def test_a_job_whose_worker_is_lost_runs_again_elsewhere_then_fails_clearly() -> None:
    s = Scheduler()
    s.join("w1")
    s.submit(_job("j"))
    box = RecordingOutbox()
    serve_jobs(s, "w1", box, _lose)  # returns: this worker is gone
    assert box.sent == [] and [j.id for j in s.queue] == ["j"], "back at the head of the queue"
    s.leave("w1")
    s.join("w2")
    serve_jobs(s, "w2", box, _lose)
    ((client, reply),) = box.sent
    assert client == b"c" and reply["type"] == P.ERROR and reply["code"] == P.WORKER_LOST
    assert "lost while running j" in reply["message"] and "2 workers" in reply["message"]
    assert s.counts() == (0, 1, 0) and s.running == {}


def test_a_cancelled_job_whose_worker_is_lost_is_cancelled_not_retried() -> None:
    s = Scheduler()
    s.join("w1")
    job = _job("j")
    s.submit(job)
    job_started = threading.Event()

    def lose_after_cancel(job: Job, post: PostFn) -> Reply:
        job_started.set()
        job.cancel.set()
        raise WorkerLost("gone")

    box = RecordingOutbox()
    serve_jobs(s, "w1", box, lose_after_cancel)
    assert job_started.is_set() and box.sent == [(b"c", P.cancelled("j"))]
    assert not s.queue and s.counts() == (0, 0, 1)


def test_cluster_slots_one_per_gpu_else_cpu_workers_of_n_threads() -> None:
    pytest.importorskip("ray")
    from nst_daemon.cluster.front import ClusterEngine

    def slots(threads: int, resources: dict[str, float], device: str = "auto") -> Any:
        engine = ClusterEngine("127.0.0.1:1", ModelSettings(device=device, threads=threads))
        count, kind, options = engine._slots(resources)
        return count, kind, options

    assert slots(0, {"CPU": 16.0, "GPU": 4.0}) == (4, "cuda", {"num_gpus": 1, "num_cpus": 0})
    assert slots(0, {"CPU": 8.0}) == (1, "cpu", {"num_cpus": 8})
    assert slots(2, {"CPU": 7.0}) == (3, "cpu", {"num_cpus": 2})
    assert slots(1, {"CPU": 0.0}) == (0, "cpu", {"num_cpus": 1}), "a head with --num-cpus=0"
    assert slots(0, {"CPU": 0.0})[0] == 0
    assert slots(4, {"CPU": 8.0, "GPU": 1.0}, device="cpu") == (2, "cpu", {"num_cpus": 4})
