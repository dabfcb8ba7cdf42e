"""A daemon that is not ours, as its own process: it speaks the protocol's framing but sends
crafted replies (strings where numbers go, NaN, escape codes) and ignores cancel, working on
forever. `python crafted_daemon.py --endpoint ENDPOINT` prints `ready` once bound (as
nst-daemon does, so nst_daemon.process starts it); it stops on SIGTERM.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import msgpack
import zmq
import zmq.auth

from nst_client.keyfiles import local_keys

ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b[31mRED\x1b[0m\r\nforged line\x00"


def reply(kind: str, request_id: Any, **fields: Any) -> list[bytes]:
    header = {"type": kind, "id": request_id, **fields}
    return [msgpack.packb(header, use_bin_type=True)]


def answer(header: dict[str, Any]) -> list[list[bytes]]:
    kind, rid = header.get("type"), header.get("id")
    if kind == "hello":
        defaults = {"strength": math.nan, "quality": ESCAPES}
        return [reply("welcome", rid, protocol=1, version=ESCAPES, defaults=defaults)]
    if kind == "status":
        startup = {"step": ESCAPES, "fraction": math.nan}
        fields = {"state": "ready", "startup": startup, "queue": 5, "device": ESCAPES}
        return [reply("status", rid, **fields, pid="1; rm -rf /", idle_exit_s=math.inf)]
    if kind == "ping":
        return [reply("pong", rid)]
    if kind == "stylize":
        return [reply("accepted", rid, queue_position=0)]
    return []  # cancel, shutdown: ignored


def main() -> int:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    # Served with the user's local keys, as the user's own engine gone wrong would be.
    sock.curve_server = True
    sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(
        local_keys().secret("engine")
    )
    sock.bind(sys.argv[sys.argv.index("--endpoint") + 1])
    print("ready", flush=True)
    working: dict[bytes, Any] = {}  # client -> the job it is "running", forever
    while True:
        if sock.poll(100):
            client, *frames = sock.recv_multipart()
            header = msgpack.unpackb(frames[0], raw=False)
            if header.get("type") == "stylize":
                working[client] = header.get("id")
            for message in answer(header):
                sock.send_multipart([client, *message])
        for client, job in working.items():  # progress on and on, cancel or not
            progress = {"iteration": 1, "iterations": 10, "scale": 1, "scales": 1}
            sock.send_multipart([client, *reply("progress", job, **progress)])
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
