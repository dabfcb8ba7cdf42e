"""nst-daemon (and the loopback Ray cluster) as child processes of a script, a bench or a test:
started, waited for by their first stdout line, stopped with SIGTERM then SIGKILL.

A child's log goes to a file, never to an unread pipe: a full pipe would block it mid-job.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port free on the loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The child's next stdout line; '' when none came within timeout_s (or it ended)."""
    box: list[str] = []
    stdout = proc.stdout
    assert stdout is not None, "started with stdout=PIPE"
    reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return box[0] if box else ""


def end(proc: subprocess.Popen[str], timeout_s: float = 20.0) -> int:
    """SIGTERM (a daemon cancels its jobs and says goodbye), SIGKILL after timeout_s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class DaemonProcess:
    """`command` (an nst-daemon) serving `endpoint`, ready once it printed its `ready` line."""

    def __init__(
        self,
        command: Sequence[str],
        endpoint: str,
        *args: str,
        wait: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        ready_timeout_s: float = 120.0,
    ) -> None:
        self.endpoint = endpoint
        self.log = tempfile.NamedTemporaryFile(prefix="nst-daemon-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [*command, "--endpoint", endpoint, *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=cwd,
            env={**os.environ, **env} if env else None,
        )
        self.ready_line = ""
        if wait:
            self.ready_line = read_line(self.proc, ready_timeout_s)
            if not self.ready_line.startswith("ready"):
                log = self.log_text()  # before stop() removes it
                self.stop()
                raise RuntimeError(f"nst-daemon did not get ready: {self.ready_line!r}\n{log}")

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, timeout_s: float = 20.0) -> int:
        """Stop it and remove its log; its exit code."""
        code = end(self.proc, timeout_s)
        self.log.close()
        if os.path.exists(self.log.name):
            os.unlink(self.log.name)
        return code
