"""The FIFO of jobs (nst_daemon.jobs): limits, cancel, what a client may see."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from nst_client import protocol as P
from nst_client.layouts import describe
from nst_client.params import make_params
from nst_daemon.jobs import Job, Scheduler

# --- scheduler --------------------------------------------------------------------------------


def _job(client: bytes, job_id: str) -> Job:
    return Job(
        client=client,
        id=job_id,
        content=describe(1, 1, 3, "u8", 1),
        styles=[],
        frames=[],
        params=make_params({}),
        preview_every=0,
    )


def test_scheduler_fifo_limits_and_cancel() -> None:
    s = Scheduler()
    positions = [s.submit(_job(b"a", f"j{i}")) for i in range(P.MAX_QUEUED_PER_CLIENT)]
    assert positions == list(range(P.MAX_QUEUED_PER_CLIENT))
    with pytest.raises(P.ProtocolError) as info:
        s.submit(_job(b"a", "extra"))
    assert info.value.code == P.QUEUE_FULL
    assert s.submit(_job(b"b", "j0")) == P.MAX_QUEUED_PER_CLIENT  # limit is per client
    with pytest.raises(P.ProtocolError, match="already queued"):
        s.submit(_job(b"b", "j0"))
    s.join("w")
    first = s.take("w")
    assert first is not None and first.id == "j0" and first.client == b"a"
    assert s.cancel((b"a", "j0")) == "running" and first.cancel.is_set()
    assert s.cancel((b"a", "j2")) == "queued"
    assert s.cancel((b"a", "zzz")) is None
    assert [j.id for j in s.jobs_of(b"a")] == ["j1", "j3", "j0"]
    s.finish(first, P.CANCELLED)
    assert s.running == {} and s.cancelled == 2
    dropped = s.stop()
    assert len(dropped) == 3 and s.take("w") is None


def _taken(s: Scheduler, worker: str, box: dict[str, Job | None]) -> threading.Thread:
    """take() on a thread of its own, as a worker does (it blocks)."""
    thread = threading.Thread(target=lambda: box.__setitem__(worker, s.take(worker)))
    thread.start()
    return thread


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_jobs_go_to_idle_workers_preferring_the_one_holding_their_styles() -> None:
    """Two idle workers: the job goes to the one whose affinity holds, not the longest idle;
    without affinity the longest idle takes it; positions count the other workers."""
    held = {"b": {"styleX"}}
    s = Scheduler(affinity=lambda job, worker: job.id in held.get(worker, set()))
    s.join("a")
    s.join("b")
    box: dict[str, Job | None] = {}
    threads = [_taken(s, "a", box)]
    _until(lambda: s.idle == ["a"])
    threads.append(_taken(s, "b", box))
    _until(lambda: s.idle == ["a", "b"])
    assert s.submit(_job(b"c", "styleX")) == 0
    _until(lambda: "b" in box)
    assert box["b"] is not None and box["b"].id == "styleX" and box["b"].worker == "b"
    assert s.submit(_job(b"c", "other")) == 0, "worker a is free"
    threads[0].join(5)
    assert box["a"] is not None and box["a"].id == "other"
    # Both busy: the next job waits behind the two running ones minus the other worker.
    assert s.submit(_job(b"c", "third")) == 1
    assert s.queued() == 1 and s.running_job("a", b"c") is not None


def test_a_lost_workers_job_goes_back_to_the_head_of_the_queue() -> None:
    s = Scheduler()
    s.join("a")
    s.submit(_job(b"c", "j1"))
    s.submit(_job(b"c", "j2"))
    job = s.take("a")
    assert job is not None and job.id == "j1"
    job.iteration = 7
    s.leave("a")
    assert s.requeue(job) is True
    assert [j.id for j in s.queue] == ["j1", "j2"] and job.iteration == 0 and job.worker is None
    assert s.take("a") is None, "a worker that left takes nothing"
    s.join("b")
    again = s.take("b")
    assert again is job and s.running == {"b": job}
    job.cancel.set()
    assert s.requeue(job) is False, "a cancelled job is not run again"
    assert s.running == {}
