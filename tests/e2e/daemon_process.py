"""A real `nst-daemon` subprocess for tests: started, waited for, stopped, its log kept.

Shared by the daemon tests and the GIMP and Krita end-to-end tests. The daemon is the
product's, from the wheel (tests/e2e/product.py), never the checkout's modules. Its log goes
to a file, never to an unread pipe (a full pipe would block the daemon mid-job).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgpack
import product
import zmq

from nst_client import protocol as P

ROOT = Path(__file__).resolve().parents[2]
#: The test venv's Python (tests that run the daemon's module in-tree on purpose).
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_command() -> list[str]:
    """The product's nst-daemon: the wheel's, installed alone in .venv-product (product.py)."""
    return [product.bin_path("nst-daemon")]


class DaemonProc:
    """The product's nst-daemon as a subprocess, ready to serve."""

    def __init__(
        self,
        endpoint: str,
        *args: str,
        wait: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.log = tempfile.NamedTemporaryFile(prefix="nst-daemon-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [*daemon_command(), "--endpoint", endpoint, *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=ROOT,
            env={**os.environ, **env} if env else None,
        )
        self.ready_line = self._wait_ready() if wait else ""

    def _wait_ready(self, timeout_s: float = 120.0) -> str:
        box: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout_s)
        if not box or not box[0].startswith("ready"):
            log = self.log_text()  # before stop() removes it
            self.stop()
            raise RuntimeError(f"daemon did not get ready: {box!r}\n{log}")
        return box[0]

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def rss_kib(self, field: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.log.name)
        return self.proc.returncode


class Raw:
    """A bare DEALER socket, for messages no well-behaved client would send."""

    def __init__(self, endpoint: str) -> None:
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send_frames(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def send(self, header: dict[str, Any], buffers: Sequence[bytes] = ()) -> None:
        self.sock.send_multipart(P.pack(header, list(buffers)))

    def recv(self, timeout_s: float = 10.0) -> tuple[dict[str, Any], list[bytes]]:
        assert self.sock.poll(int(timeout_s * 1000)), "no reply from the daemon"
        frames = self.sock.recv_multipart()
        return msgpack.unpackb(frames[0], raw=False), frames[1:]

    def recv_for(self, request_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            header, _ = self.recv(max(0.01, deadline - time.monotonic()))
            if header.get("id") == request_id:
                return header

    def close(self) -> None:
        self.sock.close(0)
