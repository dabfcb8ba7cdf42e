"""The NST daemon: a warm VGG-19 behind a ZeroMQ ROUTER (protocol v1, docs/protocol.md).

In parts, each testable alone: `transport` (bind policy, CURVE, the one send), `requests`
(parsing and validation), `jobs` (Job, Scheduler), `runner` (the engine call: OOM retry,
progress, stats; no zmq), `server` (the socket loop and its dispatch table), `cli` (options,
`nst-daemon`). Only `runner`'s caller loads torch, when the model loads.
"""

from __future__ import annotations

import sys
from pathlib import Path


def launch_command(python: str | None = None) -> list[str]:
    """The command that starts this installation's daemon: the `nst-daemon` script beside
    its Python (default: this one; a venv's bin/, Windows' Scripts/), else that Python running
    the module. What the plug-in installers record and `nst daemon start` runs."""
    python = python or sys.executable
    script = Path(python).with_name("nst-daemon.exe" if sys.platform == "win32" else "nst-daemon")
    if script.is_file():
        return [str(script)]
    return [python, "-m", "nst_daemon"]
