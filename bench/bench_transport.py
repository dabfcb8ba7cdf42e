"""A big layer to the engine and back, over a loopback port (CURVE with the user's local
keys, the default) and over an ipc:// socket in a private folder (no keys), in one run: what
the keys cost a layer. Each job has 0 iterations, so the time is the transport, the checks
and the pixel layout, and the layer must come back bit for bit.

    .venv/bin/python bench/bench_transport.py [--side 4096] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nst_client.client import Client
from nst_daemon.process import DaemonProcess, free_port

ROOT = Path(__file__).resolve().parents[1]


def round_trips(endpoint: str, layer: np.ndarray, repeats: int) -> list[float]:
    """Seconds of each 0-iteration job of LAYER through a daemon served at ENDPOINT."""
    daemon = DaemonProcess(
        [sys.executable, "-m", "nst_daemon"],
        endpoint,
        *("--device", "cpu", "--no-warmup", "--log-level", "warning"),
        cwd=ROOT,
        ready_timeout_s=300.0,
    )
    style = layer[:64, :64, :3].copy()
    took = []
    try:
        with Client(endpoint, timeout_s=30.0) as client:
            client.stylize(layer[:64, :64], [style], {"iterations": 0})  # connected, warm
            for _ in range(repeats):
                began = time.perf_counter()
                out = client.stylize(layer, [style], {"iterations": 0}, idle_timeout_s=600)
                took.append(time.perf_counter() - began)
                assert np.array_equal(out, layer), "the layer did not come back bit for bit"
    finally:
        daemon.stop()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    layer = np.random.default_rng(0).integers(0, 256, (args.side, args.side, 4), dtype=np.uint8)
    folder = Path(tempfile.mkdtemp(prefix="nst-bench-"))  # mode 700: a private folder
    endpoints = {
        "loopback port, local keys (CURVE)": f"tcp://127.0.0.1:{free_port()}",
        "ipc socket, no keys": f"ipc://{folder}/engine.sock",
    }
    mib = layer.nbytes / (1 << 20)
    print(f"{args.side}x{args.side} RGBA u8 ({mib:.0f} MiB) there and back, 0 iterations:")
    for name, endpoint in endpoints.items():
        took = round_trips(endpoint, layer, args.repeats)
        median = statistics.median(took)
        print(
            f"  {name}: median {median:.3f} s ({min(took):.3f}-{max(took):.3f}), "
            f"{2 * mib / median:.0f} MiB/s both ways"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
