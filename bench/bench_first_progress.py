"""Seconds from "Stylize" to the first progress message, with a cold engine and a warm one.

What a plug-in does on a click: `launcher.ensure_running` (starts the engine when none
answers), hello, submit, wait for the first `progress`. Cold: no engine at the endpoint, so
the time includes starting nst-daemon and loading VGG-19; warm: the same engine again.
A job of the plug-ins' default shape (a 512x384 layer, working size 512) is sent each time.

    .venv/bin/python bench/bench_first_progress.py [--repeat 3] [--daemon PATH] [--root DIR]

Each round uses a fresh free port and stops its engine afterwards; the figures are medians.
`--root DIR` adds the way it was before the engine started on demand, in the same run: the
daemon of an older checkout (a `git worktree`) started by hand, timed from its start to the
first progress of the same job (the time to type the command not counted).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nst_client import launcher
from nst_client.client import Client, connect
from nst_client.settings import Settings
from nst_daemon.process import DaemonProcess, free_port


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


def by_hand(root: str, device: str, content: np.ndarray, style: np.ndarray) -> float:
    """The old way: nst-daemon of ROOT started by hand, its ready line, then the job."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    env = {"PYTHONPATH": f"{root}/daemon:{root}"}
    started = time.monotonic()
    daemon = DaemonProcess(
        [sys.executable, "-m", "nst_daemon"], endpoint, "--device", device, env=env, cwd=root
    )
    try:
        settings = Settings(endpoint=endpoint, start_on_demand=False)
        return first_progress(settings, content, style, started)
    finally:
        daemon.stop(30.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    default_daemon = str(Path(sys.executable).with_name("nst-daemon"))
    parser.add_argument("--daemon", default=default_daemon, help="the nst-daemon to start")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", help="an older checkout whose daemon is started by hand")
    args = parser.parse_args()
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="nst-bench-"))
    rng = np.random.default_rng(0)
    content = rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)
    style = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    cold, warm, hand = [], [], []
    for _ in range(args.repeat):
        if args.root:
            hand.append(by_hand(args.root, args.device, content, style))
            print(f"by hand (old) {hand[-1]:.2f} s", flush=True)
        settings = Settings(
            endpoint=f"tcp://127.0.0.1:{free_port()}",
            daemon=[args.daemon, "--device", args.device],
            idle_exit_s=60.0,
        )
        try:
            cold.append(first_progress(settings, content, style))
            warm.append(first_progress(settings, content, style))
        finally:
            launcher.stop(settings)
        print(f"cold {cold[-1]:.2f} s  warm {warm[-1]:.2f} s", flush=True)
    print(
        f"click to first progress, median of {args.repeat}: "
        f"cold engine {statistics.median(cold):.2f} s, warm engine {statistics.median(warm):.2f} s"
    )
    if hand:
        print(
            f"daemon started by hand (old checkout) to first progress, median: "
            f"{statistics.median(hand):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
