"""End-to-end tests of `nst-daemon --cluster`: a real Ray cluster on this machine's loopback
(a head and worker nodes, each its own raylet; nst_daemon.cluster.loopback), the product's
front door as a process, Ray actors with the real VGG-19, clients over real sockets.

Two worker nodes of one CPU each give two one-thread workers; a third node joins later.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import product
import pytest
from daemon_process import DaemonProc, free_port

from nst_client import layouts
from nst_client import protocol as P
from nst_client.client import Client, JobCancelled, JobResult, RawImage, RawStyle
from nst_client.progress import Progress
from nst_daemon.cluster.loopback import LOOPBACK_ENV, LoopbackCluster

pytestmark = pytest.mark.e2e

QUICK = {"iterations": 3, "size": 64, "min_scale": 64}
#: Seconds on one thread: long enough to kill its worker mid-way, short enough to run again.
MEDIUM = {"iterations": 60, "size": 64, "min_scale": 64}
#: A job that runs until cancelled.
LONG = {"iterations": 5000, "size": 64, "min_scale": 64}
RNG = np.random.default_rng(7)
CONTENT = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
STYLE_A = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
STYLE_B = RNG.integers(0, 256, (40, 56, 3), dtype=np.uint8)


def raw(array: np.ndarray) -> RawImage:
    return layouts.from_array(array, 0)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LoopbackCluster]:
    nodes = LoopbackCluster(product.python())
    try:
        for _ in range(2):
            nodes.add(1)
        yield nodes
    finally:
        nodes.close()


@pytest.fixture(scope="module")
def front(cluster: LoopbackCluster) -> Iterator[DaemonProc]:
    d = DaemonProc(
        f"tcp://127.0.0.1:{free_port()}",
        *("--cluster", cluster.address, "--worker-threads", "1", "--no-warmup"),
        *("--client-timeout", "5"),
        env=LOOPBACK_ENV,
    )
    try:
        yield d
    finally:
        log = d.log_text()
        code = d.stop()
        assert code == 0, log[-3000:]


def client(front: DaemonProc) -> Client:
    return Client(front.endpoint, timeout_s=10.0)


def until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def idle_workers(front: DaemonProc, count: int, timeout_s: float = 180.0) -> list[P.WorkerStatus]:
    """The workers once `count` of them are idle (they load VGG-19 first)."""
    with client(front) as c:

        def ready() -> list[P.WorkerStatus]:
            workers = c.status()["workers"]
            return workers if sum(w["state"] == "idle" for w in workers) >= count else []

        return until(ready, timeout_s, f"{count} idle workers")


def run_at_once(front: DaemonProc, jobs: list[tuple[np.ndarray, dict[str, Any]]]) -> list[Any]:
    """One client per job, all submitted together; each entry a JobResult or an exception."""
    out: list[Any] = [None] * len(jobs)

    def one(i: int, style: np.ndarray, params: dict[str, Any]) -> None:
        try:
            with client(front) as c:
                out[i] = c.stylize_raw(raw(CONTENT), [(raw(style), 1.0)], params)
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return out


def test_status_shows_every_worker(front: DaemonProc) -> None:
    workers = idle_workers(front, 2)
    assert len(workers) == 2
    assert len({w["name"] for w in workers}) == len({w["pid"] for w in workers}) == 2
    for w in workers:
        assert w["host"] and w["device"] == "cpu" and w["pid"] > 0 and w["job"] is None
    with client(front) as c:
        status = c.status()
        welcome = c.hello()
    assert status["device"].startswith("ray cluster 127.0.0.1:")
    assert "2 worker(s)" in status["device"] and status["state"] == P.READY
    assert welcome["device"] == status["device"] and welcome["protocol"] == P.PROTOCOL_VERSION


def test_clients_at_once_spread_over_the_workers_and_a_repeated_style_hits_a_cache(
    front: DaemonProc,
) -> None:
    idle_workers(front, 2)
    results = run_at_once(front, [(s, QUICK) for s in (STYLE_A, STYLE_B, STYLE_A, STYLE_B)])
    for r in results:
        assert isinstance(r, JobResult), r
        assert (r.image["width"], r.image["height"], r.image["channels"]) == (64, 48, 3)
    assert len({r.stats["worker"] for r in results}) == 2, [r.stats for r in results]
    ran_a = {r.stats["worker"] for r in results[::2]}
    idle_workers(front, 2)
    progress: list[Progress] = []
    with client(front) as c:
        again = c.stylize_raw(
            raw(CONTENT),
            [(raw(STYLE_A), 1.0)],
            QUICK,
            on_progress=progress.append,
            preview_every=1,
        )
    assert again.stats["worker"] in ran_a, "the job went to a worker that had its style"
    assert again.stats["style_cache"]["hits"] >= 1, again.stats
    assert progress and progress[-1].iterations > 0, "progress streams from the worker"
    assert any(p.preview is not None for p in progress), "previews stream too"


def test_masks_reach_the_workers(front: DaemonProc) -> None:
    """A region job through the front door: the worker styles only where the mask is."""
    idle_workers(front, 1)
    mask = np.zeros(CONTENT.shape[:2], np.uint8)
    mask[:, :32] = 255
    with client(front) as c:
        assert P.MASKS in c.hello()["features"]
        done = c.stylize_raw(raw(CONTENT), [RawStyle(raw(STYLE_A), 1.0, raw(mask))], QUICK)
    out = layouts.to_array(done.image, done.data)
    assert np.array_equal(out[:, 32:], CONTENT[:, 32:])
    assert not np.array_equal(out[:, :32], CONTENT[:, :32])


def test_cancel_reaches_the_worker_within_a_second(front: DaemonProc) -> None:
    idle_workers(front, 2)
    started = threading.Event()
    asked: list[float] = []

    def should_cancel() -> bool:
        if started.is_set() and not asked:
            asked.append(time.monotonic())
        return bool(asked)

    with client(front) as c:
        with pytest.raises(JobCancelled):
            c.stylize_raw(
                raw(CONTENT),
                [(raw(STYLE_B), 1.0)],
                LONG,
                on_progress=lambda p: started.set(),
                should_cancel=should_cancel,
            )
        took = time.monotonic() - asked[0]
    # The engine stops within an iteration (tens of ms here); the rest is sockets and polls.
    assert took < 1.0, f"cancelled {took:.2f} s after asking"
    idle_workers(front, 2, timeout_s=10)


def job_under_way(
    front: DaemonProc, style: np.ndarray
) -> tuple[threading.Thread, dict[str, Any], P.WorkerStatus]:
    """A MEDIUM job on a client thread (its outcome lands in box["out"]) and, once it reports
    progress, the one busy worker running it."""
    started = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            with client(front) as c:
                box["out"] = c.stylize_raw(
                    raw(CONTENT), [(raw(style), 1.0)], MEDIUM, on_progress=lambda p: started.set()
                )
        except Exception as exc:
            box["out"] = exc

    job = threading.Thread(target=run)
    job.start()
    assert started.wait(120), "no progress from the job"
    with client(front) as c:
        (busy,) = [w for w in c.status()["workers"] if w["state"] == "busy"]
    return job, box, busy


def test_a_worker_killed_mid_job_means_a_retry_and_the_front_door_keeps_serving(
    front: DaemonProc,
) -> None:
    before = idle_workers(front, 2)
    job, box, victim = job_under_way(front, STYLE_A)
    os.kill(victim["pid"], signal.SIGKILL)
    job.join(300)
    out = box["out"]
    # Run again by the other worker (a second loss would be `worker_lost`: tests/unit).
    assert isinstance(out, JobResult), out
    assert out.stats["worker"] != victim["name"]
    # The front door goes on: status answers, a job runs, the lost worker is replaced.
    with client(front) as c:
        names = {w["name"] for w in c.status()["workers"]}
        assert victim["name"] not in names
        done = c.stylize_raw(raw(CONTENT), [(raw(STYLE_B), 1.0)], QUICK)
        assert done.stats["worker"] != victim["name"]
    after = idle_workers(front, 2)
    assert victim["pid"] not in {w["pid"] for w in after}
    assert len(after) == len(before) == 2


def test_an_idle_worker_killed_leaves_the_pool_and_is_replaced(front: DaemonProc) -> None:
    """The front door pings idle workers: a dead one is dropped before a job finds out."""
    victim = idle_workers(front, 2)[0]
    os.kill(victim["pid"], signal.SIGKILL)
    with client(front) as c:
        until(
            lambda: victim["name"] not in {w["name"] for w in c.status()["workers"]},
            30,
            "the dead worker to leave",
        )
    after = idle_workers(front, 2)
    assert victim["pid"] not in {w["pid"] for w in after}
    (done,) = run_at_once(front, [(STYLE_B, QUICK)])
    assert isinstance(done, JobResult), done


def test_a_node_joining_takes_jobs_without_a_restart(
    front: DaemonProc, cluster: LoopbackCluster
) -> None:
    idle_workers(front, 2)
    cluster.add(1)
    workers = idle_workers(front, 3)
    assert len(workers) == 3
    results = run_at_once(front, [(STYLE_A, MEDIUM), (STYLE_B, MEDIUM), (STYLE_A, MEDIUM)])
    for r in results:
        assert isinstance(r, JobResult), r
    assert {r.stats["worker"] for r in results} == {w["name"] for w in workers}
    assert front.proc.poll() is None


def _parent(pid: int) -> tuple[int, str]:
    for line in open(f"/proc/{pid}/status").read().splitlines():
        if line.startswith("PPid:"):
            ppid = int(line.split()[1])
            return ppid, open(f"/proc/{ppid}/comm").read().strip()
    raise AssertionError(f"no parent for {pid}")


def test_a_host_gone_mid_job_means_a_retry_on_another(front: DaemonProc) -> None:
    """A node's raylet and its worker killed at once (its host gone): the job runs again on
    another node's worker, the dead node's worker leaves the pool and is not replaced."""
    before = idle_workers(front, 3)
    job, box, victim = job_under_way(front, STYLE_B)
    raylet, name = _parent(victim["pid"])
    assert name == "raylet", name
    for pid in (raylet, victim["pid"]):
        os.kill(pid, signal.SIGKILL)
    job.join(300)
    out = box["out"]
    assert isinstance(out, JobResult), out
    assert out.stats["worker"] != victim["name"]
    with client(front) as c:
        until(
            lambda: victim["name"] not in {w["name"] for w in c.status()["workers"]},
            60,
            "the lost node's worker to leave",
        )
    idle = [w for w in idle_workers(front, 2) if w["state"] == "idle"]
    assert len(idle) == len(before) - 1 == 2 and victim["pid"] not in {w["pid"] for w in idle}
