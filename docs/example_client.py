"""A complete NST daemon client in raw pyzmq + msgpack: it imports nothing from the product.

It shows protocol v1 end to end (docs/protocol.md): hello, a stylize request with two image
frames, progress while pinging every second, and the result written as a PAM file (any viewer
that reads Netpbm, or `convert out.pam out.png`). The images are made up here, so the script
needs no imaging library:

    python docs/example_client.py --endpoint tcp://127.0.0.1:5757 --iterations 20

An engine on a loopback port admits only its user's programs: they prove it with the user's
local keys (docs/security.md), read here from the folder the engine made on its first start.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import msgpack
import zmq
import zmq.auth


def local_keys_folder() -> Path:
    """Where the engine keeps its user's keys on Linux (see docs/security.md for macOS and
    Windows)."""
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "nst" / "engine-keys"


def gradient_rgba(width: int, height: int) -> bytes:
    """Content: a colour gradient with a soft alpha ramp (RGBA, 8 bits, row-major)."""
    out = bytearray()
    for y in range(height):
        for x in range(width):
            out += bytes(
                (
                    255 * x // max(1, width - 1),
                    255 * y // max(1, height - 1),
                    128,
                    255 - 128 * x // max(1, width - 1),
                )
            )
    return bytes(out)


def stripes_rgb(width: int, height: int) -> bytes:
    """Style: diagonal stripes (RGB, 8 bits)."""
    out = bytearray()
    for y in range(height):
        for x in range(width):
            out += bytes((20, 40, 160)) if (x + y) // 4 % 2 else bytes((240, 200, 40))
    return bytes(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5757")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--output", default="stylized.pam")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds without any reply")
    ap.add_argument(
        "--keys", type=Path, default=local_keys_folder(), help="the folder of your engine's keys"
    )
    args = ap.parse_args()

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if args.endpoint.startswith("tcp://"):
        # The engine's public key (it proves to be yours) and your programs' pair (you prove
        # to be its user); an ipc:// socket in a folder of yours needs none.
        sock.curve_serverkey = zmq.auth.load_certificate(args.keys / "engine.key")[0]
        public, secret = zmq.auth.load_certificate(args.keys / "client.key_secret")
        sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.connect(args.endpoint)

    def send(header: dict, *buffers: bytes) -> None:
        sock.send_multipart([msgpack.packb(header, use_bin_type=True), *buffers])

    def recv(timeout_s: float) -> tuple[dict, list[bytes]] | None:
        if not sock.poll(int(timeout_s * 1000)):
            return None
        frames = sock.recv_multipart()
        return msgpack.unpackb(frames[0], raw=False), frames[1:]

    # 1. hello -> welcome
    send({"type": "hello", "id": "hello-1", "protocol": 1, "client": "example_client.py"})
    reply = recv(5.0)
    if reply is None:
        print(f"no daemon answered at {args.endpoint}", file=sys.stderr)
        return 1
    welcome = reply[0]
    if welcome["type"] == "error":
        print(f"daemon refused: {welcome['code']}: {welcome['message']}", file=sys.stderr)
        return 1
    print(
        f"daemon on {welcome['device']} with {welcome['weights']} weights, "
        f"protocol {welcome['protocol']}"
    )

    # 2. stylize: frame 1 = content, frame 2 = style, described in the header.
    w, h = 48, 40
    job = f"job-{uuid.uuid4().hex[:8]}"
    send(
        {
            "type": "stylize",
            "id": job,
            "content": {"width": w, "height": h, "channels": 4, "dtype": "u8", "frame": 1},
            "styles": [
                {"width": 32, "height": 32, "channels": 3, "dtype": "u8", "frame": 2, "weight": 1.0}
            ],
            "params": {"iterations": args.iterations, "size": args.size},
        },
        gradient_rgba(w, h),
        stripes_rgb(32, 32),
    )

    # 3. follow the job: progress ... then result | error | cancelled. Ping every second so
    #    the daemon knows we are still here (it cancels jobs of silent clients).
    last_ping = last_heard = time.monotonic()
    while True:
        if time.monotonic() - last_ping >= 1.0:
            send({"type": "ping", "id": f"ping-{time.monotonic()}"})
            last_ping = time.monotonic()
        reply = recv(0.2)
        if reply is None:
            if time.monotonic() - last_heard > args.timeout:
                print("the daemon went quiet", file=sys.stderr)
                return 1
            continue
        last_heard = time.monotonic()
        header, frames = reply
        if header.get("id") != job:
            continue  # a pong
        kind = header["type"]
        if kind == "accepted":
            print(f"accepted, queue position {header['queue_position']}")
        elif kind == "progress":
            print(
                f"progress {header['iteration']}/{header['iterations']} "
                f"scale {header['scale']}/{header['scales']} loss {header['loss']['total']:.4g}"
                f" eta {header['eta_s']:.1f}s"
            )
        elif kind == "result":
            image = header["image"]
            data = frames[image["frame"] - 1]
            with open(args.output, "wb") as f:
                f.write(
                    f"P7\nWIDTH {image['width']}\nHEIGHT {image['height']}\nDEPTH 4\n"
                    f"MAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n".encode()
                )
                f.write(data)
            print(
                f"result {image['width']}x{image['height']} in "
                f"{header['stats'].get('elapsed_s', 0):.2f} s -> {args.output}"
            )
            return 0
        elif kind == "error":
            print(f"error {header['code']}: {header['message']}", file=sys.stderr)
            return 1
        elif kind == "cancelled":
            print("cancelled", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
