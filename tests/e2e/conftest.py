"""Fixtures shared by the editor end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from daemon_process import DaemonProc, free_port


@pytest.fixture(scope="module")
def host_daemon() -> Iterator[DaemonProc]:
    """A real nst-daemon on a free loopback port of the host, warm before the editor starts."""
    daemon = DaemonProc(f"tcp://127.0.0.1:{free_port()}", "--device", "cpu")
    try:
        yield daemon
    finally:
        daemon.stop()
