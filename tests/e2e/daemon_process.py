"""A real `nst-daemon` subprocess for tests: started, waited for, stopped, its log kept.

Shared by the daemon tests and the GIMP and Krita end-to-end tests. The daemon's log goes to
a file, never to an unread pipe (a full pipe would block the daemon mid-job).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaemonProc:
    """A daemon subprocess started with the console script's module, ready to serve."""

    def __init__(self, endpoint: str, *args: str, wait: bool = True) -> None:
        self.endpoint = endpoint
        self.log = tempfile.NamedTemporaryFile(prefix="nst-daemon-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "nst_daemon", "--endpoint", endpoint, *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=ROOT,
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
            self.stop()
            raise RuntimeError(f"daemon did not get ready: {box!r}\n{self.log_text()}")
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
