"""Relay between an editor's pipes and the daemon's socket, run by the product's own Python.

GIMP and Krita on Windows and macOS bundle a Python without pyzmq or msgpack. Their plug-ins
start `python -m nst_client.bridge --endpoint E` and exchange protocol messages with it over
stdin/stdout (JSON header + raw frames, see protocol.write_pipe_message); the bridge turns
them into ZeroMQ multipart messages and back. It exits when stdin closes.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import IO

from . import protocol as P
from .client import ZmqTransport


def relay(endpoint: str, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> int:
    """Relay until stdin closes; returns the exit status."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    transport = ZmqTransport(endpoint)
    done = threading.Event()
    write_lock = threading.Lock()

    def upstream() -> None:
        try:
            while True:
                header, buffers = P.read_pipe_message(stdin)
                transport.send(header, buffers)
        except (EOFError, OSError, ValueError):
            pass
        finally:
            done.set()

    threading.Thread(target=upstream, daemon=True).start()
    try:
        while not done.is_set():
            item = transport.recv(0.1)
            if item is not None:
                with write_lock:
                    P.write_pipe_message(stdout, *item)
    except (BrokenPipeError, OSError):
        pass
    finally:
        transport.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nst_client.bridge", description=__doc__)
    parser.add_argument("--endpoint", default=P.DEFAULT_ENDPOINT)
    args = parser.parse_args(argv)
    return relay(args.endpoint)


if __name__ == "__main__":
    sys.exit(main())
