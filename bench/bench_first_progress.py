"""Seconds from "Stylize" to the first progress message, with a cold engine and a warm one.

What a plug-in does on a click: `launcher.ensure_running` (starts the engine when none
answers), hello, submit, wait for the first `progress`. Cold: no engine at the endpoint, so
the time includes starting nst-daemon and loading VGG-19; warm: the same engine again.
A job of the plug-ins' default shape (a 512x384 layer, working size 512) is sent each time.

    .venv/bin/python bench/bench_first_progress.py [--repeat 3] [--root DIR]

Each round runs in a child Python with a checkout's client and engine first on its path (the
engine on demand is `python -m nst_daemon` of that checkout), uses a fresh free port and stops
its engine afterwards; the figures are medians. `--root DIR` measures an older checkout (a
`git worktree`) too, its rounds alternating with this one's, so both see the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nst_client import launcher
from nst_client.client import Client, connect
from nst_client.settings import Settings
from nst_daemon.process import free_port

ROOT = Path(__file__).resolve().parents[1]


def first_progress(
    settings: Settings, content: np.ndarray, style: np.ndarray, started: float | None = None
) -> float:
    """Click (or started) to first progress, in seconds; the job is cancelled once it has
    reported."""
    from nst_client import layouts

    started = time.monotonic() if started is None else started
    if settings.start_on_demand:
        launcher.ensure_running(settings)
    client: Client
    with connect(settings, "bench-first-progress") as client:
        client.hello()
        job = client.submit(
            (layouts.from_array(content, 0)), [(layouts.from_array(style, 0), 1.0)], {}
        )
        while True:
            item = client.receive(job, 120.0)
            assert item is not None, "no progress within 120 s"
            if item[0].get("type") == "progress":
                took = time.monotonic() - started
                client.cancel(job)
                while item is not None and item[0].get("type") not in ("cancelled", "result"):
                    item = client.receive(job, 60.0)
                return took


def one_round(daemon: list[str], device: str) -> tuple[float, float]:
    """A cold engine's click to first progress, then the same engine warm, on a fresh port."""
    rng = np.random.default_rng(0)
    content = rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)
    style = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    settings = Settings(
        endpoint=f"tcp://127.0.0.1:{free_port()}",
        daemon=[*daemon, "--device", device],
        idle_exit_s=60.0,
    )
    try:
        cold = first_progress(settings, content, style)
        warm = first_progress(settings, content, style)
    finally:
        launcher.stop(settings)
    return cold, warm


def round_of(root: str, device: str) -> tuple[float, float]:
    """one_round with ROOT's client and engine: a child Python with that checkout first on
    its path (so an older checkout is measured with its own code, not this one's)."""
    env = {**os.environ, "PYTHONPATH": f"{root}:{root}/daemon"}
    done = subprocess.run(
        [sys.executable, __file__, "--one-round", "--device", device],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"a round of {root} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["cold"], figures["warm"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", help="an older checkout, measured in the same run")
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="nst-bench-"))
    if args.one_round:
        cold, warm = one_round([sys.executable, "-m", "nst_daemon"], args.device)
        print(json.dumps({"cold": cold, "warm": warm}))
        return 0
    roots = {"this checkout": str(ROOT)}
    if args.root:
        roots = {f"older ({args.root})": args.root, **roots}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in roots}
    for _ in range(args.repeat):
        for name, root in roots.items():  # alternating, so that both see the same machine
            figures[name].append(round_of(root, args.device))
            cold, warm = figures[name][-1]
            print(f"{name}: cold {cold:.2f} s  warm {warm:.3f} s", flush=True)
    print(f"click to first progress, median of {args.repeat}:")
    for name, rounds in figures.items():
        cold = statistics.median(c for c, _ in rounds)
        warm = statistics.median(w for _, w in rounds)
        print(f"  {name}: cold engine {cold:.2f} s, warm engine {warm:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
