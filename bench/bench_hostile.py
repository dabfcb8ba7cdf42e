"""The daemon's memory under hostile input: what each kind of oversize request costs it.

Starts a daemon (--max-pixels 1000000 by default), warms it with one small job, then sends
each hostile case from a bare DEALER socket and prints, per case, the reply and the daemon's
resident memory (VmRSS) and peak (VmHWM) over the warm baseline, and the log it wrote.
`--root DIR` runs the daemon from another checkout (e.g. a `git worktree` of an older
commit) for a side-by-side in one run; options it lacks are left out. Linux (/proc).

    .venv/bin/python bench/bench_hostile.py [--root /tmp/old] [--max-pixels 1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq

from nst_client import layouts
from nst_client.settings import CurveKeys, Settings
from nst_client.transports import use_keys
from nst_daemon.process import DaemonProcess, free_port

ROOT = Path(__file__).resolve().parents[1]


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1  # the process is gone


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


class Peer:
    """A bare DEALER: sends anything, waits for the reply to one id (pinging meanwhile)."""

    def __init__(self, endpoint: str, keys: CurveKeys | None) -> None:
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        use_keys(self.sock, keys)
        self.sock.connect(endpoint)

    def send(self, header: dict[str, Any], frames: list[bytes]) -> None:
        self.sock.send_multipart([msgpack.packb(header), *frames])

    def wait(self, request_id: str, timeout_s: float) -> str:
        """The final reply's type (and error code) for request_id, or 'no reply'."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.sock.poll(1000):
                header = msgpack.unpackb(self.sock.recv_multipart()[0])
                if header.get("id") == request_id and header["type"] not in (
                    "accepted",
                    "progress",
                ):
                    return f"{header['type']} {header.get('code', '')}".strip()
            self.sock.send_multipart([msgpack.packb({"type": "ping", "id": "keepalive"})])
        return "no reply"

    def close(self) -> None:
        self.sock.close(0)


def request(rid: str, content: Any, styles: list[Any], **params: Any) -> Any:
    return {"type": "stylize", "id": rid, "content": content, "styles": styles, "params": params}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose daemon runs")
    ap.add_argument("--max-pixels", type=int, default=1_000_000)
    ap.add_argument("--max-tile-size", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    args = ap.parse_args()

    side = int(args.max_pixels**0.5)
    rng = np.random.default_rng(0)
    f32 = layouts.describe(side, side, 4, "f32", 1)
    big = rng.random((side, side, 4), dtype=np.float32).tobytes()
    u8 = layouts.describe(300, 300, 3, "u8", 1)
    small = rng.integers(0, 256, 300 * 300 * 3, dtype=np.uint8).tobytes()
    style = {**layouts.describe(300, 300, 3, "u8", 2), "weight": 1.0}
    one = {"iterations": 1, "size": "full"}
    cases: list[tuple[str, Any, list[bytes]]] = [
        (
            "style_scale 4 on a 300 px job",
            request("a", u8, [style], **one, style_scale=4.0),
            [small] * 2,
        ),
        (
            f"tile_size 65536 on a {side} px job",
            request("b", f32, [{**f32, "frame": 2}], **one, min_scale=side, tile_size=65536),
            [big, big],
        ),
        (
            "16 styles of the largest size",
            request("c", f32, [{**f32, "frame": i} for i in range(2, 18)], **one),
            [big] * 17,
        ),
        ("a frame 4x the largest image", request("d", u8, [style]), [bytes(4 * len(big)), small]),
        (
            "100 unreferenced frames of 1 MB",
            request("e", u8, [style]),
            [small, small] + [bytes(1 << 20)] * 100,
        ),
        (
            "1000-deep list as iterations",
            request("f", u8, [style], iterations=nested(1000)),
            [small] * 2,
        ),
        ("900 KB parameter name, x5", request("g", u8, [style], **{"z" * 900_000: 1}), [small] * 2),
    ]
    env = {"PYTHONPATH": f"{args.root}/daemon:{args.root}"}
    help_text = subprocess.run(
        [sys.executable, "-m", "nst_daemon", "--help"],
        capture_output=True,
        text=True,
        cwd=args.root,
        env={**os.environ, **env},
    ).stdout
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    extra = ["--device", "cpu", "--max-pixels", str(args.max_pixels), "--client-timeout", "60"]
    if "--max-tile-size" in help_text:
        extra += ["--max-tile-size", str(args.max_tile_size)]
    try:
        daemon = DaemonProcess(
            [sys.executable, "-m", "nst_daemon"],
            endpoint,
            *extra,
            env=env,
            cwd=args.root,
            ready_timeout_s=300.0,
        )
    except RuntimeError as exc:
        print(f"daemon from {args.root}: {exc}", file=sys.stderr)
        return 1
    proc, log = daemon.proc, Path(daemon.log.name)
    peer: Peer | None = None
    try:
        print(f"daemon from {args.root}: {daemon.ready_line.strip()}")
        # A daemon from before the user's local keys serves a loopback port plain.
        keyfiles = args.root / "nst_client" / "keyfiles.py"
        keyed = keyfiles.is_file() and "def local_keys" in keyfiles.read_text()
        peer = Peer(endpoint, Settings(endpoint=endpoint).curve_keys() if keyed else None)
        peer.send(request("warm", u8, [style], iterations=2, size=64), [small, small])
        print(f"warm job: {peer.wait('warm', args.timeout)}")
        rss0, hwm0 = kib(proc.pid, "VmRSS"), kib(proc.pid, "VmHWM")
        log0 = log.stat().st_size
        print(f"baseline: RSS {rss0 / 1024:.0f} MiB, peak {hwm0 / 1024:.0f} MiB")
        print(f"{'case':40s} {'reply':28s} {'RSS +MiB':>9s} {'peak +MiB':>10s} {'log +KB':>8s}")
        for name, header, frames in cases:
            size0 = log.stat().st_size
            for _ in range(5 if "x5" in name else 1):
                peer.send(header, frames)
                # ZeroMQ drops an over-size frame: no reply comes, so do not wait long.
                wait_s = 5.0 if "frame 4x" in name else args.timeout
                reply = peer.wait(header["id"], wait_s)
            time.sleep(0.3)
            rss, hwm = kib(proc.pid, "VmRSS"), kib(proc.pid, "VmHWM")
            grown = log.stat().st_size - size0
            print(
                f"{name:40s} {reply:28s} {(rss - rss0) / 1024:9.0f} {(hwm - hwm0) / 1024:10.0f} "
                f"{grown / 1000:8.1f}"
            )
            if proc.poll() is not None:
                print(f"the daemon died (exit {proc.returncode})")
                return 1
        print(f"log written during the cases: {(log.stat().st_size - log0) / 1000:.1f} KB")
    finally:
        if peer is not None:
            peer.close()
        daemon.stop(30.0)  # removes its log too
    return 0


if __name__ == "__main__":
    sys.exit(main())
