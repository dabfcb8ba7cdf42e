"""Benchmark `nst-daemon --cluster` on a loopback Ray cluster against its two targets.

Prints (never asserts), on this machine:
  1. throughput scaling: one queue of small jobs from several clients on N = 1 and N = 2 CPU
     workers of one thread (a head with 0 CPUs + N nodes of 1 CPU); jobs/min for each and
     throughput(2) / throughput(1), target >= 0.8 x 2 = 1.6; which worker ran how many jobs;
  2. the front door's overhead per job: median wall time of sequential tiny jobs through the
     front door (one 1-thread worker) minus that of a single daemon (--worker-threads 1, no
     --cluster); target <= 20 ms. Both run at once beside the same live cluster and take
     turns job by job, so Ray's own processes load the machine alike for both.

    .venv/bin/python bench/bench_cluster.py [--jobs 8] [--overhead-jobs 30] [--size 64]
        [--iterations 30] [--clients 4] [--skip-overhead] [--skip-throughput] [--json PATH]

Every process is stopped on the way out (front door and daemon SIGTERM, cluster closed).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from nst_client import layouts
from nst_client import protocol as P
from nst_client.client import Client
from nst_daemon.cluster.loopback import LOOPBACK_ENV, LoopbackCluster
from nst_daemon.process import DaemonProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
#: A queued job costs nothing to the bench; a client may have at most this many queued.
PER_CLIENT = P.MAX_QUEUED_PER_CLIENT
Raw = tuple[P.ImageDesc, bytes]


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (Linux), else platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def start_daemon(args: list[str], env: dict[str, str]) -> DaemonProcess:
    """This venv's nst-daemon on a free loopback port, once ready (workers load VGG-19)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "nst_daemon"]
    return DaemonProcess(command, endpoint, *args, env=env, cwd=ROOT, ready_timeout_s=300.0)


def wait_idle(endpoint: str, n: int, timeout_s: float = 600.0) -> list[str]:
    """Block until status shows n idle workers (their models loaded), so start-up is not
    timed; returns their names."""
    deadline = time.monotonic() + timeout_s
    with Client(endpoint, timeout_s=30.0, client_name="bench-cluster") as client:
        while True:
            workers = client.status().get("workers", [])
            idle = [str(w["name"]) for w in workers if w["state"] == "idle"]
            if len(idle) >= n:
                return idle
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} idle worker(s) not there in {timeout_s:.0f} s: {workers}")
            time.sleep(0.5)


def random_job(rng: np.random.Generator, side: int) -> tuple[Raw, list[tuple[Raw, float]]]:
    """Random uint8 RGB content and style of side x side, as the wire wants them."""
    content = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    style = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    return layouts.from_array(content, 0), [(layouts.from_array(style, 0), 1.0)]


def throughput(
    endpoint: str, jobs: int, clients: int, side: int, params: dict[str, Any], seed: int
) -> dict[str, Any]:
    """All jobs submitted at once from `clients` threads (each keeps at most PER_CLIENT
    outstanding, the queue's limit per client), timed from the first submit to the last
    result. A fresh seed per run: new styles, so no worker holds them (cache, affinity)."""
    rng = np.random.default_rng(seed)
    work = [random_job(rng, side) for _ in range(jobs)]
    shares = [work[i::clients] for i in range(clients) if work[i::clients]]
    start = threading.Barrier(len(shares) + 1)  # the clients and this thread
    ends: list[float] = []
    stats: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client_thread(share: list[tuple[Raw, list[tuple[Raw, float]]]]) -> None:
        try:
            with Client(endpoint, timeout_s=30.0, client_name="bench-cluster") as client:
                start.wait()
                pending: collections.deque[str] = collections.deque()
                todo = list(share)
                while todo or pending:
                    while todo and len(pending) < PER_CLIENT:
                        content, styles = todo.pop(0)
                        pending.append(client.submit(content, styles, params))
                    done = client.follow(pending.popleft(), idle_timeout_s=300.0)
                    with lock:
                        ends.append(time.perf_counter())
                        stats.append(dict(done.stats))
        except BaseException as exc:
            start.abort()
            errors.append(exc)

    threads = [threading.Thread(target=client_thread, args=(s,)) for s in shares]
    for t in threads:
        t.start()
    try:
        start.wait()  # every client connected and its images encoded
    except threading.BrokenBarrierError:
        pass  # a client failed: its error is raised below
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    wall = max(ends) - t0
    return {
        "jobs": jobs,
        "clients": len(shares),
        "wall_s": round(wall, 3),
        "jobs_per_min": round(60.0 * jobs / wall, 2),
        "per_worker": dict(collections.Counter(str(s.get("worker", "?")) for s in stats)),
        "median_elapsed_s": round(statistics.median(s["elapsed_s"] for s in stats), 3),
        "median_queued_s": round(statistics.median(s["queued_s"] for s in stats), 3),
    }


def alternated(
    endpoints: list[str], n: int, warmup: int, side: int, params: dict[str, Any]
) -> list[tuple[list[float], list[float]]]:
    """n tiny jobs per endpoint after `warmup` untimed ones, the endpoints taking turns job by
    job; per endpoint the wall times (submit -> result) and the part of each spent outside the
    engine (wall - stats.elapsed_s: sockets, queue, Ray). The same content and style each time
    (a warm cache, as a repeated click has)."""
    content, styles = random_job(np.random.default_rng(1), side)
    figures: list[tuple[list[float], list[float]]] = [([], []) for _ in endpoints]
    clients = [Client(e, timeout_s=30.0, client_name="bench-cluster") for e in endpoints]
    try:
        for i in range(warmup + n):
            for client, (walls, outside) in zip(clients, figures, strict=True):
                t0 = time.perf_counter()
                done = client.stylize_raw(content, styles, params, idle_timeout_s=300.0)
                if i >= warmup:
                    walls.append(time.perf_counter() - t0)
                    outside.append(walls[-1] - float(done.stats["elapsed_s"]))
    finally:
        for client in clients:
            client.close()
    return figures


def ms(values: list[float]) -> str:
    return (
        f"median {1000 * statistics.median(values):.1f} ms "
        f"(min {1000 * min(values):.1f}, max {1000 * max(values):.1f}, n={len(values)})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=8, help="jobs in the throughput queue")
    ap.add_argument("--clients", type=int, default=4, help="client threads submitting them")
    ap.add_argument("--size", type=int, default=64, help="side of a throughput job's images")
    ap.add_argument("--iterations", type=int, default=30, help="iterations of a throughput job")
    ap.add_argument("--overhead-jobs", type=int, default=30, help="timed sequential tiny jobs")
    ap.add_argument("--overhead-warmup", type=int, default=2)
    ap.add_argument("--overhead-size", type=int, default=32)
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = ap.parse_args()

    import torch

    print(
        f"machine: {cpu_model()}, {os.cpu_count()} CPU cores; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads by default, 1 per worker here (--worker-threads 1)",
        flush=True,
    )
    env = {**os.environ, **LOOPBACK_ENV}
    common = ["--device", "cpu", "--worker-threads", "1", "--no-warmup", "--log-level", "warning"]
    big = {"iterations": args.iterations, "size": args.size, "min_scale": args.size}
    small_side = args.overhead_size
    tiny = {"iterations": 2, "size": small_side, "min_scale": small_side}
    figures: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count()}

    cluster = LoopbackCluster(sys.executable, head_cpus=0)
    front: DaemonProcess | None = None
    try:
        cluster.add(1)
        front = start_daemon(["--cluster", cluster.address, *common], env)
        print(f"cluster at {cluster.address}", flush=True)
        wait_idle(front.endpoint, 1)
        if not args.skip_overhead:
            direct = start_daemon(common, env)
            try:
                wait_idle(direct.endpoint, 1)
                (direct_walls, direct_outside), (front_walls, front_outside) = alternated(
                    [direct.endpoint, front.endpoint],
                    args.overhead_jobs,
                    args.overhead_warmup,
                    small_side,
                    tiny,
                )
            finally:
                direct.stop()
            diff_ms = 1000 * (statistics.median(front_walls) - statistics.median(direct_walls))
            outside_ms = 1000 * (
                statistics.median(front_outside) - statistics.median(direct_outside)
            )
            print(
                f"\n[overhead] {args.overhead_jobs} jobs each after {args.overhead_warmup} "
                f"warm-up, taking turns, {small_side}x{small_side}, {tiny}"
            )
            print(f"    single daemon, --worker-threads 1: {ms(direct_walls)}")
            print(f"    front door, one 1-thread worker:   {ms(front_walls)}")
            print(f"    overhead per job: {diff_ms:+.1f} ms (target <= 20 ms)")
            print(f"    outside the engine, single daemon: {ms(direct_outside)}")
            print(f"    outside the engine, front door:    {ms(front_outside)}")
            print(
                f"    overhead outside the engine: {outside_ms:+.1f} ms (the wall figure above "
                "also carries the engine's own run-to-run noise)",
                flush=True,
            )
            figures["overhead"] = {
                "direct_ms": [round(1000 * w, 2) for w in direct_walls],
                "front_ms": [round(1000 * w, 2) for w in front_walls],
                "diff_median_ms": round(diff_ms, 2),
                "outside_engine_diff_median_ms": round(outside_ms, 2),
            }
        if not args.skip_throughput:
            print(
                f"\n[throughput] {args.jobs} jobs, {args.size}x{args.size} random RGB, {big}, "
                f"from {min(args.clients, args.jobs)} clients"
            )
            runs: dict[int, dict[str, Any]] = {}
            for n in (1, 2):
                if n > 1:
                    cluster.add(1)
                    wait_idle(front.endpoint, n)
                runs[n] = throughput(front.endpoint, args.jobs, args.clients, args.size, big, n)
                r = runs[n]
                print(
                    f"    N={n}: {r['jobs_per_min']:.1f} jobs/min ({r['wall_s']:.2f} s; per job "
                    f"median run {r['median_elapsed_s']:.2f} s, queued "
                    f"{r['median_queued_s']:.2f} s); jobs per worker: {r['per_worker']}",
                    flush=True,
                )
            ratio = runs[2]["jobs_per_min"] / runs[1]["jobs_per_min"]
            print(f"    throughput(2) / throughput(1) = {ratio:.2f} (target >= 1.6)")
            figures["throughput"] = {"runs": runs, "ratio": round(ratio, 3)}
    finally:
        if front is not None:
            front.stop()
        cluster.close()

    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
