"""Benchmark the daemon: warm vs. cold start, image transport, and the style-target cache.

Prints, on this machine:
  1. submit -> first progress on a warm daemon, vs. a cold `nst stylize` process (wall time
     of the whole process with --iterations 1: an upper bound of its time to first progress);
  2. a 4096x4096 RGBA u8 layer to the daemon and back (0-iteration job: transport, checks and
     the 8-bit round trip, no optimisation);
  3. the style cache: the same job with a new style (miss) and again with the same (hit).

    .venv/bin/python bench/bench_daemon.py [--device cpu] [--size 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nst_client import layouts
from nst_client.client import Client
from nst_daemon.process import DaemonProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def demo_images() -> tuple[np.ndarray, np.ndarray]:
    """A photo and a texture from scikit-image's bundled data (no network)."""
    from skimage import data

    return data.astronaut(), data.rocket()


def timed_job(
    client: Client, content: np.ndarray, style: np.ndarray, params: dict[str, Any]
) -> tuple[float, float, dict[str, Any]]:
    """(submit -> first progress, submit -> result, stats) in seconds."""
    t0 = time.perf_counter()
    job = client.submit(
        layouts.from_array(content, 1), [(layouts.from_array(style, 2), 1.0)], params
    )
    first: list[float] = []
    done = client.follow(
        job,
        on_progress=lambda p: None if first else first.append(time.perf_counter() - t0),
        idle_timeout_s=600,
    )
    total = time.perf_counter() - t0
    return (first[0] if first else float("nan")), total, dict(done.stats)


def med(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s" + (
        f" (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"
        if len(values) > 1
        else ""
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", type=int, default=256, help="working size of the timed jobs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--transport-side", type=int, default=4096)
    args = ap.parse_args()

    content, style = demo_images()
    tmp = Path(tempfile.mkdtemp(prefix="nst-bench-"))
    from PIL import Image

    Image.fromarray(content).save(tmp / "content.png")
    Image.fromarray(style).save(tmp / "style.png")
    endpoint = f"tcp://127.0.0.1:{free_port()}"

    t0 = time.perf_counter()
    try:
        daemon = DaemonProcess(
            [sys.executable, "-m", "nst_daemon"],
            endpoint,
            "--device",
            args.device,
            "--log-level",
            "warning",
            cwd=ROOT,
            ready_timeout_s=300.0,
        )
    except RuntimeError as exc:
        print(f"daemon did not start: {exc}", file=sys.stderr)
        return 1
    start_s = time.perf_counter() - t0
    try:
        print(f"machine: {os.cpu_count()} CPU cores; {daemon.ready_line.strip()}")
        print(f"daemon start to ready (imports, weights, warm-up job): {start_s:.2f} s")
        rng = np.random.default_rng(0)
        with Client(endpoint, timeout_s=30.0) as client:
            device = client.hello()["device"]
            params = {"iterations": 1, "size": args.size}

            # 1. warm first progress (a fresh style each time, so no cache help) vs. cold CLI
            warm_first, warm_total = [], []
            for _ in range(args.repeats):
                fresh = np.clip(
                    style.astype(np.int16) + rng.integers(-3, 4, style.shape), 0, 255
                ).astype(np.uint8)
                first, total, _ = timed_job(client, content, fresh, params)
                warm_first.append(first)
                warm_total.append(total)
            cold = []
            for _ in range(max(1, args.repeats - 1)):
                t0 = time.perf_counter()
                subprocess.run(
                    [
                        str(BIN / "nst"),
                        "stylize",
                        str(tmp / "content.png"),
                        str(tmp / "style.png"),
                        "-o",
                        str(tmp / "out.png"),
                        "--iterations",
                        "1",
                        "--size",
                        str(args.size),
                        "--device",
                        args.device,
                    ],
                    check=True,
                    capture_output=True,
                    cwd=ROOT,
                )
                cold.append(time.perf_counter() - t0)
            print(
                f"\n[1] first progress, {content.shape[1]}x{content.shape[0]} content, "
                f"size {args.size}, 1 iteration/scale, device {device}"
            )
            print(f"    warm daemon, submit -> first progress: {med(warm_first)}")
            print(f"    warm daemon, submit -> result:         {med(warm_total)}")
            print(f"    cold `nst stylize` process, start -> exit: {med(cold)}")
            print(
                f"    speed-up to first progress: "
                f"{statistics.median(cold) / statistics.median(warm_first):.1f}x"
            )

            # 2. transport of a big layer
            side = args.transport_side
            layer = rng.integers(0, 256, (side, side, 4), dtype=np.uint8)
            small_style = style[:64, :64]
            trips = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = client.stylize(layer, [small_style], {"iterations": 0}, idle_timeout_s=600)
                trips.append(time.perf_counter() - t0)
                assert np.array_equal(out, layer)
            mib = layer.nbytes / (1 << 20)
            print(
                f"\n[2] {side}x{side} RGBA u8 ({mib:.0f} MiB) to the daemon and back, "
                f"0 iterations (bit-exact): {med(trips)}; "
                f"{2 * mib / statistics.median(trips):.0f} MiB/s both ways"
            )

            # 3. style cache
            misses, hits = [], []
            for i in range(args.repeats):
                new = np.clip(style.astype(np.int16) + (i + 10), 0, 255).astype(np.uint8)
                misses.append(timed_job(client, content, new, params))
                hits.append(timed_job(client, content, new, params))
            assert all(h[2]["style_cache"]["misses"] == 0 for h in hits)
            print(
                f"\n[3] style cache, same job twice (size {args.size}, 1 iteration/scale, "
                f"{style.shape[1]}x{style.shape[0]} style)"
            )
            print(
                f"    new style:      first progress {med([m[0] for m in misses])}, "
                f"result {med([m[1] for m in misses])}"
            )
            print(
                f"    repeated style: first progress {med([h[0] for h in hits])}, "
                f"result {med([h[1] for h in hits])}"
            )
            miss_first = statistics.median([m[0] for m in misses])
            hit_first = statistics.median([h[0] for h in hits])
            miss_total = statistics.median([m[1] for m in misses])
            hit_total = statistics.median([h[1] for h in hits])
            print(
                f"    speed-up: first progress {miss_first / hit_first:.2f}x, "
                f"whole job {miss_total / hit_total:.2f}x"
            )
    finally:
        daemon.stop(30.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
