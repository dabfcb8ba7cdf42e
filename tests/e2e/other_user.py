"""Another real user of the machine, for the end-to-end tests: `nobody` runs the hostile side
(a listener on the artist's engine address, a client of the product with keys of its own) with
the system's Python. Running a process as another user needs root, as in CI."""

from __future__ import annotations

import os
import pwd
import subprocess

import pytest

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="running the other user's side needs root (CI runs as root)",
)


NOBODY = "nobody"


def as_nobody(
    script: str, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], int]:
    """SCRIPT run by the system's Python as `nobody` (who may not run this checkout's), from
    /, its stdout piped, with ENV over this environment; and nobody's uid."""
    entry = pwd.getpwnam(NOBODY)

    def become_nobody() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    proc = subprocess.Popen(
        ["/usr/bin/python3", "-c", script, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
        env={**os.environ, **(env or {})},
        preexec_fn=become_nobody,
    )
    return proc, entry.pw_uid


def system_python_speaks_zeromq() -> None:
    """nobody runs the client with the system's Python: it needs pyzmq and msgpack (what a
    distribution's editor has; apt-get adds them where they are missing)."""
    check = ["/usr/bin/python3", "-c", "import zmq, msgpack"]
    if subprocess.run(check, capture_output=True).returncode != 0:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
            + ["python3-zmq", "python3-msgpack"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            timeout=600,
        )
    assert subprocess.run(check, capture_output=True).returncode == 0, "no python3-zmq"


#: A listener that records every byte it receives into the file argv[2], on port argv[1]:
#: what another user's program on the artist's engine address would see.
ROGUE = """
import socket, sys, threading
from pathlib import Path
record = Path(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("listening", flush=True)
def serve(conn):
    while data := conn.recv(65536):
        with record.open("ab") as out:
            out.write(data)
while True:
    threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()
"""
