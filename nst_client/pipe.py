"""The bridge's framing of one message on a pipe: a u32 frame count, then per frame a u64
length and its bytes (little-endian). Frame 0 is the header as UTF-8 JSON, so the editor
side needs only the standard library (nst_client.bridge relays it to ZeroMQ)."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import IO, Any

from .protocol import (
    DEFAULT_MAX_PIXELS,
    MAX_HEADER_BYTES,
    MAX_STYLES,
    Buffer,
    Header,
    max_frame_bytes,
)


def write_message(
    stream: IO[bytes], header: Mapping[str, Any], buffers: Sequence[Buffer] = ()
) -> None:
    frames: list[Buffer] = [json.dumps(header).encode("utf-8"), *buffers]
    stream.write(struct.pack("<I", len(frames)))
    for frame in frames:
        view = memoryview(frame).cast("B")
        stream.write(struct.pack("<Q", len(view)))
        stream.write(view)
    stream.flush()


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


#: The most frames a message has: its header, the content, every style and its mask.
MAX_FRAMES = 2 + 2 * MAX_STYLES


def read_message(
    stream: IO[bytes], max_frame_bytes: int = max_frame_bytes(DEFAULT_MAX_PIXELS)
) -> tuple[Header, list[bytes]]:
    """One message; ValueError when its frame count or a frame's length is more than any
    message has (nothing that large is read)."""
    (count,) = struct.unpack("<I", _read_exact(stream, 4))
    if not 1 <= count <= MAX_FRAMES:
        raise ValueError(f"a pipe message of {count} frames (1 to {MAX_FRAMES})")
    frames = []
    for index in range(count):
        (length,) = struct.unpack("<Q", _read_exact(stream, 8))
        limit = MAX_HEADER_BYTES if index == 0 else max_frame_bytes
        if length > limit:
            raise ValueError(f"a pipe frame of {length} bytes (at most {limit})")
        frames.append(_read_exact(stream, length))
    header = json.loads(frames[0].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("pipe message header is not a JSON object")
    return header, frames[1:]
