"""Relay between an editor's pipes and the daemon's socket, run by the product's own Python.

GIMP and Krita on Windows and macOS bundle a Python without pyzmq or msgpack. Their plug-ins
start `python -m nst_client.bridge --endpoint E` and exchange protocol messages with it over
stdin/stdout (JSON header + raw frames, see pipe.write_message); the bridge turns
them into ZeroMQ multipart messages and back. Its first message is `bridge_ready`, once its
socket is set up (or `bridge_failed`, with the settings' problem in words); it exits when
stdin closes.

The socket is used by one thread only (ZeroMQ sockets are not thread-safe): a reader thread
queues what arrives on stdin, and the main thread sends it and polls for replies. A message it
cannot hand to the daemon within --send-timeout comes back as an `undelivered` notice, so
neither the bridge nor the editor waits forever on a daemon that is gone or refused our keys.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
from typing import IO

from . import pipe
from . import protocol as P
from .settings import Settings, SettingsError
from .transports import BRIDGE_FAILED, BRIDGE_READY, Received, zmq_transport

#: How long the main thread waits for a reply before looking at stdin's queue again.
POLL_S = 0.01


def relay(
    settings: Settings, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None
) -> int:
    """Relay until stdin closes; returns the exit status. SettingsError if a key is bad."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    transport = zmq_transport(settings)
    outgoing: queue.Queue[Received | None] = queue.Queue()
    try:
        pipe.write_message(stdout, {"type": BRIDGE_READY})
    except OSError:
        transport.close()
        return 0

    def read_stdin() -> None:
        try:
            while True:
                outgoing.put(pipe.read_message(stdin))
        except (EOFError, OSError, ValueError):
            pass
        finally:
            outgoing.put(None)

    threading.Thread(target=read_stdin, daemon=True).start()
    try:
        while True:
            while not outgoing.empty():
                message = outgoing.get()
                if message is None:
                    return 0
                transport.send(*message)
            item = transport.recv(POLL_S)
            if item is not None:
                pipe.write_message(stdout, *item)
    except (BrokenPipeError, OSError):
        return 0
    finally:
        transport.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nst_client.bridge", description=__doc__)
    parser.add_argument("--endpoint", default=P.DEFAULT_ENDPOINT)
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=Settings.timeout_s,
        metavar="S",
        help="seconds to wait for the daemon's connection before answering `undelivered`",
    )
    parser.add_argument("--curve-server-key", help="the daemon's server.key, or its Z85 key")
    parser.add_argument("--curve-client-cert", help="this client's client.key_secret")
    args = parser.parse_args(argv)
    settings = Settings(
        endpoint=args.endpoint,
        timeout_s=args.send_timeout,
        curve_server_key=args.curve_server_key,
        curve_client_cert=args.curve_client_cert,
    )
    try:
        return relay(settings)
    except SettingsError as exc:
        print(f"nst_client.bridge: error: {exc}", file=sys.stderr)
        try:  # the editor shows why, rather than "the bridge exited"
            pipe.write_message(sys.stdout.buffer, {"type": BRIDGE_FAILED, "message": str(exc)})
        except OSError:
            pass
        return 2


if __name__ == "__main__":
    sys.exit(main())
