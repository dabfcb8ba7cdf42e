"""Protocol v1 between the daemon and its clients: the one definition everyone imports.

A message is multipart: frame 0 is a msgpack map (the header), further frames are raw image
buffers that the header refers to by index (docs/protocol.md). The bridge carries the same
messages over pipes with a JSON header, for editors whose Python has neither pyzmq nor msgpack.

Every message has a TypedDict here and is built by the function of the same name in lower
case (`hello(...)` -> `Hello`), so both sides write each message in one place. Pure Python;
msgpack is imported only where a header is packed or unpacked.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

PROTOCOL_VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5757"
DEFAULT_MAX_PIXELS = 8192 * 8192
#: The largest tile (and style piece) one VGG-19 pass may see: its memory grows with it.
DEFAULT_MAX_TILE_SIZE = 1024
#: Largest header frame (msgpack): requests are small maps; anything bigger is refused unread.
MAX_HEADER_BYTES = 1 << 20
#: Longest request id and client name (they are echoed and logged).
MAX_ID_LENGTH = 256
#: Images the daemon holds for its queue at once, in full-size f32 RGBA layers (--max-pixels).
HELD_LAYERS = 4
MAX_QUEUED_PER_CLIENT = 4
MAX_STYLES = 16
#: Largest preview_every accepted (anything bigger means "no previews" anyway).
MAX_PREVIEW_EVERY = 1 << 20

# Request types
HELLO, STYLIZE, CANCEL, STATUS, PING = "hello", "stylize", "cancel", "status", "ping"
SHUTDOWN = "shutdown"
REQUESTS = (HELLO, STYLIZE, CANCEL, STATUS, PING, SHUTDOWN)
# Reply types
WELCOME, ACCEPTED, PROGRESS, RESULT = "welcome", "accepted", "progress", "result"
ERROR, CANCELLED, PONG, BYE = "error", "cancelled", "pong", "bye"
#: Replies after which no more messages come for that request id.
FINAL_REPLIES = (WELCOME, RESULT, ERROR, CANCELLED, PONG, STATUS, BYE)

#: welcome.features: what a daemon can do that older ones could not. MASKS: a style entry
#: may carry a `mask` and a `strength` (a style per region).
MASKS = "masks"
FEATURES = (MASKS,)

# The engine's states (welcome.state, status.state): it answers while VGG-19 loads.
STARTING, READY = "starting", "ready"

# Error codes (stable; new codes go at the end)
BAD_REQUEST = "bad_request"
UNSUPPORTED_PROTOCOL = "unsupported_protocol"
TOO_LARGE = "too_large"
BAD_IMAGE = "bad_image"
UNKNOWN_JOB = "unknown_job"
QUEUE_FULL = "queue_full"
OUT_OF_MEMORY = "out_of_memory"
OPTIMISATION_FAILED = "optimisation_failed"
INTERNAL = "internal"
#: A request this daemon does not take from anyone (shutdown of a daemon on a network address).
NOT_ALLOWED = "not_allowed"
#: A cluster worker died (process killed, host gone) while running the job, on its retry too.
WORKER_LOST = "worker_lost"
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
    NOT_ALLOWED,
    WORKER_LOST,
)


def max_frame_bytes(max_pixels: int) -> int:
    """The largest frame a daemon with this --max-pixels accepts (ZeroMQ's MAXMSGSIZE): an f32
    RGBA image of max_pixels, or a header."""
    return max(max_pixels * 4 * 4, MAX_HEADER_BYTES)


#: What CURVE adds to a frame on the wire (its MESSAGE command, nonce and MAC: 33 bytes; the
#: rest is headroom). ZeroMQ's MAXMSGSIZE counts it: a socket's cap is its largest frame + this.
CURVE_FRAME_BYTES = 64


def max_held_bytes(max_pixels: int) -> int:
    """The most image bytes a daemon with this --max-pixels keeps for its queued jobs."""
    return HELD_LAYERS * max_frame_bytes(max_pixels)


class _BoundedRepr(reprlib.Repr):
    """reprlib's bounded repr (depth, items, string length), with byte strings as a size."""

    def repr_bytes(self, x: bytes, level: int) -> str:
        return f"<{len(x)} bytes>"

    repr_bytearray = repr_bytes
    repr_memoryview = repr_bytes


_repr = _BoundedRepr()
_repr.maxlevel, _repr.maxstring, _repr.maxother = 3, 60, 60


def quote(value: Any, limit: int = 60) -> str:
    """A value that came from a client, fit to quote in a reply or a log line.

    Escaped like repr (no newlines or control characters), nesting and length bounded, so a
    deep or huge value cannot blow the stack or flood a message. Every message that quotes
    client data goes through here.
    """
    text = _repr.repr(value)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


class ProtocolError(Exception):
    """A request the daemon cannot serve; becomes an `error` reply with this code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- message types ------------------------------------------------------------------------
# `total=False` subclasses add the optional keys (Python 3.10 has no NotRequired).


class ImageDesc(TypedDict):
    """Where an image's pixels are and how to read them (see nst_client.layouts)."""

    width: int
    height: int
    channels: int
    dtype: str
    frame: int


class StyleDesc(ImageDesc, total=False):
    weight: float
    #: Where this style goes: one channel at the content's size, 0 = none .. 1 = all of it.
    mask: ImageDesc
    #: This style's own strength on the artist's scale (nst_client.strength); else the job's.
    strength: float


class Loss(TypedDict):
    total: float
    content: float
    style: float


class CacheCounts(TypedDict):
    hits: int
    misses: int


class Hello(TypedDict):
    type: Literal["hello"]
    id: str
    protocol: int
    client: str


class Ping(TypedDict):
    type: Literal["ping"]
    id: str


class StatusRequest(TypedDict):
    type: Literal["status"]
    id: str


class Shutdown(TypedDict):
    type: Literal["shutdown"]
    id: str


class Cancel(TypedDict):
    type: Literal["cancel"]
    id: str
    job: str


class _Stylize(TypedDict):
    type: Literal["stylize"]
    id: str
    content: ImageDesc
    styles: list[StyleDesc]
    params: dict[str, Any]


class Stylize(_Stylize, total=False):
    preview_every: int


Request = Hello | Ping | StatusRequest | Cancel | Stylize | Shutdown


class Welcome(TypedDict):
    type: Literal["welcome"]
    id: str
    protocol: int
    version: str
    device: str
    weights: str
    max_pixels: int
    max_tile_size: int
    max_queued: int
    client_timeout_s: float
    defaults: dict[str, Any]
    state: str
    idle_exit_s: float
    profile: DeviceProfile | None
    #: What this daemon can do beyond protocol v1's first form (FEATURES), for clients to check.
    features: list[str]


class Accepted(TypedDict):
    type: Literal["accepted"]
    id: str
    queue_position: int


class _Progress(TypedDict):
    type: Literal["progress"]
    id: str
    iteration: int
    iterations: int
    scale: int
    scales: int
    loss: Loss
    elapsed_s: float
    eta_s: float


class Progress(_Progress, total=False):
    preview: ImageDesc


class Stats(TypedDict):
    elapsed_s: float
    queued_s: float
    iterations: int
    scales: int
    loss: Loss | None
    device: str
    style_cache: CacheCounts
    oom_retries: int
    #: The worker that ran it (status.workers[].name).
    worker: str


class Result(TypedDict):
    type: Literal["result"]
    id: str
    image: ImageDesc
    stats: Stats


class Error(TypedDict):
    type: Literal["error"]
    id: str | None
    code: str
    message: str


class Cancelled(TypedDict):
    type: Literal["cancelled"]
    id: str


class Bye(TypedDict):
    type: Literal["bye"]
    id: str


class DeviceProfile(TypedDict):
    """What the engine measured on its device at load (nst_core.calibrate)."""

    precision: str
    channels_last: bool
    s_per_mpix: float
    measured: dict[str, float]
    size: int


class Startup(TypedDict):
    """What a starting engine is doing, and how far it is (0..1)."""

    step: str
    fraction: float


class Pong(TypedDict):
    type: Literal["pong"]
    id: str


class RunningJob(TypedDict):
    id: str | None
    mine: bool
    iteration: int
    iterations: int
    elapsed_s: float


class QueuedJob(TypedDict):
    id: str | None
    mine: bool


class WorkerStatus(TypedDict):
    """One worker behind the socket: the daemon's own model, or a cluster front door's Ray
    actor (one per GPU or CPU worker slot)."""

    name: str
    host: str
    device: str
    #: starting (loading its model), idle or busy.
    state: str
    job: RunningJob | None
    jobs_done: int
    style_cache: CacheCounts
    pid: int


class _Memory(TypedDict):
    rss_bytes: int


class Memory(_Memory, total=False):
    device_allocated_bytes: int
    device_reserved_bytes: int
    device_total_bytes: int


class Status(TypedDict):
    type: Literal["status"]
    id: str
    running: RunningJob | None
    queue: list[QueuedJob]
    device: str
    memory: Memory
    uptime_s: float
    jobs_done: int
    jobs_failed: int
    jobs_cancelled: int
    style_cache: CacheCounts
    version: str
    state: str
    startup: Startup | None
    pid: int
    on_demand: bool
    idle_exit_s: float
    idle_s: float
    profile: DeviceProfile | None
    workers: list[WorkerStatus]


Reply = Welcome | Accepted | Progress | Result | Error | Cancelled | Pong | Status | Bye
Message = Request | Reply
#: A header as it arrives, before anyone has checked it: a map of anything.
Header = dict[str, Any]


# --- builders: the one place each message is written -----------------------------------------


def hello(request_id: str, client: str) -> Hello:
    return {"type": "hello", "id": request_id, "protocol": PROTOCOL_VERSION, "client": client}


def ping(request_id: str) -> Ping:
    return {"type": "ping", "id": request_id}


def status_request(request_id: str) -> StatusRequest:
    return {"type": "status", "id": request_id}


def shutdown(request_id: str) -> Shutdown:
    return {"type": "shutdown", "id": request_id}


def cancel(request_id: str, job: str) -> Cancel:
    return {"type": "cancel", "id": request_id, "job": job}


def stylize(
    request_id: str,
    content: ImageDesc,
    styles: Sequence[StyleDesc],
    params: Mapping[str, Any],
    preview_every: int = 0,
) -> Stylize:
    message: Stylize = {
        "type": "stylize",
        "id": request_id,
        "content": content,
        "styles": list(styles),
        "params": dict(params),
    }
    if preview_every:
        message["preview_every"] = int(preview_every)
    return message


def style_entry(
    image: ImageDesc,
    weight: float = 1.0,
    mask: ImageDesc | None = None,
    strength: float | None = None,
) -> StyleDesc:
    """One entry of a stylize request's `styles`: the style image's descriptor, its weight,
    and where given its mask and its own strength."""
    entry: StyleDesc = {**image, "weight": float(weight)}
    if mask is not None:
        entry["mask"] = mask
    if strength is not None:
        entry["strength"] = float(strength)
    return entry


def welcome(
    request_id: str,
    *,
    version: str,
    device: str,
    weights: str,
    max_pixels: int,
    max_tile_size: int,
    client_timeout_s: float,
    defaults: dict[str, Any],
    state: str = READY,
    idle_exit_s: float = 0.0,
    profile: DeviceProfile | None = None,
) -> Welcome:
    return {
        "type": "welcome",
        "id": request_id,
        "protocol": PROTOCOL_VERSION,
        "version": version,
        "device": device,
        "weights": weights,
        "max_pixels": max_pixels,
        "max_tile_size": max_tile_size,
        "max_queued": MAX_QUEUED_PER_CLIENT,
        "client_timeout_s": client_timeout_s,
        "defaults": defaults,
        "state": state,
        "idle_exit_s": idle_exit_s,
        "profile": profile,
        "features": list(FEATURES),
    }


def accepted(request_id: str, queue_position: int) -> Accepted:
    return {"type": "accepted", "id": request_id, "queue_position": queue_position}


def progress(
    request_id: str,
    *,
    iteration: int,
    iterations: int,
    scale: int,
    scales: int,
    loss: Loss,
    elapsed_s: float,
    eta_s: float,
    preview: ImageDesc | None = None,
) -> Progress:
    message: Progress = {
        "type": "progress",
        "id": request_id,
        "iteration": iteration,
        "iterations": iterations,
        "scale": scale,
        "scales": scales,
        "loss": loss,
        "elapsed_s": elapsed_s,
        "eta_s": eta_s,
    }
    if preview is not None:
        message["preview"] = preview
    return message


def result(request_id: str, image: ImageDesc, stats: Stats) -> Result:
    return {"type": "result", "id": request_id, "image": image, "stats": stats}


def error(request_id: str | None, code: str, message: str) -> Error:
    return {"type": "error", "id": request_id, "code": code, "message": message}


def cancelled(request_id: str) -> Cancelled:
    return {"type": "cancelled", "id": request_id}


def pong(request_id: str) -> Pong:
    return {"type": "pong", "id": request_id}


def bye(request_id: str) -> Bye:
    return {"type": "bye", "id": request_id}


def status(
    request_id: str,
    *,
    running: RunningJob | None,
    queue: list[QueuedJob],
    device: str,
    memory: Memory,
    uptime_s: float,
    counts: tuple[int, int, int],
    style_cache: CacheCounts,
    version: str = "",
    state: str = READY,
    startup: Startup | None = None,
    pid: int = 0,
    on_demand: bool = False,
    idle_exit_s: float = 0.0,
    idle_s: float = 0.0,
    profile: DeviceProfile | None = None,
    workers: Sequence[WorkerStatus] = (),
) -> Status:
    """counts: jobs (done, failed, cancelled) since the daemon started; idle_s: seconds since
    the last job ended or arrived (0 while one runs or waits)."""
    return {
        "type": "status",
        "id": request_id,
        "running": running,
        "queue": queue,
        "device": device,
        "memory": memory,
        "uptime_s": uptime_s,
        "jobs_done": counts[0],
        "jobs_failed": counts[1],
        "jobs_cancelled": counts[2],
        "style_cache": style_cache,
        "version": version,
        "state": state,
        "startup": startup,
        "pid": pid,
        "on_demand": on_demand,
        "idle_exit_s": idle_exit_s,
        "idle_s": idle_s,
        "profile": profile,
        "workers": list(workers),
    }


# --- framing ---------------------------------------------------------------------------------

#: What may be sent as an image frame: bytes, or a buffer ZeroMQ can send without a copy.
Buffer = bytes | bytearray | memoryview


def pack(header: Mapping[str, Any], buffers: Sequence[Buffer] = ()) -> list[Buffer]:
    """Header + image buffers -> the frames of one ZeroMQ multipart message."""
    import msgpack

    return [msgpack.packb(dict(header), use_bin_type=True), *buffers]


def unpack(frames: Sequence[Buffer]) -> tuple[Header, list[Buffer]]:
    """Frames of one message -> (header, buffers); ProtocolError(bad_request) if malformed."""
    import msgpack

    if not frames:
        raise ProtocolError(BAD_REQUEST, "empty message")
    size = len(memoryview(frames[0]).cast("B"))
    if size > MAX_HEADER_BYTES:
        raise ProtocolError(
            BAD_REQUEST, f"frame 0 (the header) is {size} bytes; at most {MAX_HEADER_BYTES}"
        )
    try:
        header = msgpack.unpackb(bytes(frames[0]), raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(
            BAD_REQUEST, f"frame 0 is not a msgpack map: {quote(str(exc))}"
        ) from None
    if not isinstance(header, dict):
        raise ProtocolError(
            BAD_REQUEST, f"frame 0 must be a msgpack map, got {type(header).__name__}"
        )
    return header, list(frames[1:])
