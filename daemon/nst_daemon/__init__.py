"""The NST daemon: a warm VGG-19 behind a ZeroMQ ROUTER (protocol v1, docs/protocol.md).

In parts, each testable alone: `transport` (bind policy, CURVE, the one send), `requests`
(parsing and validation), `jobs` (Job, Scheduler), `runner` (the engine call: OOM retry,
progress, stats; no zmq), `server` (the socket loop and its dispatch table), `cli` (options,
`nst-daemon`). Only `runner`'s caller loads torch, when the model loads.
"""

from __future__ import annotations

import sys
from pathlib import Path


def launch_command() -> list[str]:
    """The command that starts this installation's daemon: the `nst-daemon` script beside
    this Python (a venv's bin/, Windows' Scripts/), else `python -m nst_daemon`. What the
    plug-in installers record and `nst daemon start` runs."""
    folder = Path(sys.executable).parent
    for name in ("nst-daemon", "nst-daemon.exe"):
        if (folder / name).is_file():
            return [str(folder / name)]
    return [sys.executable, "-m", "nst_daemon"]
