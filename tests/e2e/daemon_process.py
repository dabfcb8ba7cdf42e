"""A real `nst-daemon` subprocess for tests: started, waited for, stopped, its log kept
(nst_daemon.process), and a bare socket for messages no client would send.

Shared by the daemon tests and the GIMP and Krita end-to-end tests. The daemon is the
product's, from the wheel (tests/e2e/product.py), never the checkout's modules.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgpack
import product
import zmq

from nst_client import protocol as P
from nst_client.settings import Settings
from nst_client.transports import use_keys
from nst_daemon.process import DaemonProcess, free_port

__all__ = ["PYTHON", "ROOT", "DaemonProc", "Raw", "daemon_command", "free_port"]

ROOT = Path(__file__).resolve().parents[2]
#: The test venv's Python (tests that run the daemon's module in-tree on purpose).
PYTHON = sys.executable


def daemon_command() -> list[str]:
    """The product's nst-daemon: the wheel's, installed alone in .venv-product (product.py)."""
    return [product.bin_path("nst-daemon")]


class DaemonProc(DaemonProcess):
    """The product's nst-daemon as a subprocess, ready to serve."""

    def __init__(
        self,
        endpoint: str,
        *args: str,
        wait: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(daemon_command(), endpoint, *args, wait=wait, env=env, cwd=ROOT)

    def rss_kib(self, field: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)


class Raw:
    """A bare DEALER socket, for messages no well-behaved client would send; with the user's
    local keys on a loopback port, as the user's own programs have them."""

    def __init__(self, endpoint: str) -> None:
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        use_keys(self.sock, Settings(endpoint=endpoint).curve_keys())
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
