"""Protocol v1 between the daemon and its clients: the one definition everyone imports.

A message is multipart: frame 0 is a msgpack map (the header), further frames are raw image
buffers that the header refers to by index (docs/protocol.md). The bridge carries the same
messages over pipes with a JSON header, for editors whose Python has neither pyzmq nor msgpack.
Pure Python; msgpack is imported only where a header is packed or unpacked.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

PROTOCOL_VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5757"
#: Largest message the daemon accepts (ZeroMQ's maxmsgsize): 8192x8192 RGBA f32 plus headroom.
MAX_MESSAGE_BYTES = 8192 * 8192 * 4 * 4 + (1 << 20)
DEFAULT_MAX_PIXELS = 8192 * 8192
MAX_QUEUED_PER_CLIENT = 4

# Request types
HELLO, STYLIZE, CANCEL, STATUS, PING = "hello", "stylize", "cancel", "status", "ping"
REQUESTS = (HELLO, STYLIZE, CANCEL, STATUS, PING)
# Reply types
WELCOME, ACCEPTED, PROGRESS, RESULT, ERROR, CANCELLED, PONG = (
    "welcome",
    "accepted",
    "progress",
    "result",
    "error",
    "cancelled",
    "pong",
)
#: Replies after which no more messages come for that request id.
FINAL_REPLIES = (WELCOME, RESULT, ERROR, CANCELLED, PONG, STATUS)

# Error codes (stable)
BAD_REQUEST = "bad_request"
UNSUPPORTED_PROTOCOL = "unsupported_protocol"
TOO_LARGE = "too_large"
BAD_IMAGE = "bad_image"
UNKNOWN_JOB = "unknown_job"
QUEUE_FULL = "queue_full"
OUT_OF_MEMORY = "out_of_memory"
OPTIMISATION_FAILED = "optimisation_failed"
INTERNAL = "internal"
ERROR_CODES = (
    BAD_REQUEST,
    UNSUPPORTED_PROTOCOL,
    TOO_LARGE,
    BAD_IMAGE,
    UNKNOWN_JOB,
    QUEUE_FULL,
    OUT_OF_MEMORY,
    INTERNAL,
    OPTIMISATION_FAILED,
)


class ProtocolError(Exception):
    """A request the daemon cannot serve; becomes an `error` reply with this code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Frames = list[bytes]


def pack(header: dict[str, Any], buffers: list[bytes] | tuple[bytes, ...] = ()) -> list[Any]:
    """Header + image buffers -> the frames of one ZeroMQ multipart message."""
    import msgpack

    return [msgpack.packb(header, use_bin_type=True), *buffers]


def unpack(frames: list[Any]) -> tuple[dict[str, Any], list[Any]]:
    """Frames of one message -> (header, buffers); ProtocolError(bad_request) if malformed."""
    import msgpack

    if not frames:
        raise ProtocolError(BAD_REQUEST, "empty message")
    try:
        header = msgpack.unpackb(bytes(frames[0]), raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(BAD_REQUEST, f"frame 0 is not a msgpack map: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError(
            BAD_REQUEST, f"frame 0 must be a msgpack map, got {type(header).__name__}"
        )
    return header, list(frames[1:])


def require(
    header: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = ""
) -> Any:
    """header[key] of the given type, or ProtocolError(bad_request) naming the field."""
    name = f"{where}{key}"
    if key not in header:
        raise ProtocolError(BAD_REQUEST, f"missing field '{name}'")
    value = header[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ProtocolError(BAD_REQUEST, f"field '{name}' has the wrong type (bool)")
    if not isinstance(value, kind):
        raise ProtocolError(
            BAD_REQUEST, f"field '{name}' has the wrong type ({type(value).__name__})"
        )
    return value


# --- pipe framing (bridge) ---------------------------------------------------------------
# A message on a pipe: u32 frame count, then per frame u64 length + bytes (little-endian).
# Frame 0 is the header as UTF-8 JSON, so the editor side needs only the standard library.


def write_pipe_message(
    stream: BinaryIO, header: dict[str, Any], buffers: list[bytes] | tuple[bytes, ...] = ()
) -> None:
    frames = [json.dumps(header).encode("utf-8"), *buffers]
    stream.write(struct.pack("<I", len(frames)))
    for frame in frames:
        view = memoryview(frame).cast("B")
        stream.write(struct.pack("<Q", len(view)))
        stream.write(view)
    stream.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_pipe_message(stream: BinaryIO) -> tuple[dict[str, Any], list[bytes]]:
    (count,) = struct.unpack("<I", _read_exact(stream, 4))
    frames = []
    for _ in range(count):
        (length,) = struct.unpack("<Q", _read_exact(stream, 8))
        frames.append(_read_exact(stream, length))
    return json.loads(frames[0].decode("utf-8")), frames[1:]
