"""The NST daemon: a warm VGG-19 behind a ZeroMQ ROUTER (protocol v1, docs/protocol.md).

In parts, each testable alone: `transport` (bind policy, CURVE, the one send), `requests`
(parsing and validation: the parameters against nst_client.params), `jobs` (Job,
Scheduler), `runner` (the engine call: OOM retry, progress, stats; no zmq), `workers` (a
worker's job loop, for either engine), `local` (the warm model in this process), `cluster`
(`--cluster`: the Ray front door and its actors), `server` (the socket loop and its dispatch
table), `logs` (one escaped line per record), `process` (a daemon as a child process, for
scripts, benches and tests), `cli` (options, `nst-daemon`). Only `local`'s load (or a
cluster worker's) imports torch, when the model loads.
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
