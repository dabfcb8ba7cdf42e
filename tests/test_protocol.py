"""Fast unit tests of the pure parts: protocol framing, image layouts, request validation,
the job queue and the client's reply bookkeeping. No daemon, no torch."""

from __future__ import annotations

import io
import sys
from typing import Any

import msgpack
import numpy as np
import pytest

from nst_core import layouts
from nst_daemon import protocol as P
from nst_daemon import server
from nst_daemon.client import Client, DaemonError, DaemonUnavailable


def test_client_side_imports_no_torch() -> None:
    import subprocess

    code = (
        "import sys, nst_daemon.client, nst_daemon.bridge, nst_daemon.protocol, "
        "nst_core.layouts, nst_core.params; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"


# --- framing ----------------------------------------------------------------------------------


def test_pack_unpack_round_trip() -> None:
    frames = P.pack({"type": "ping", "id": "a", "n": [1, 2.5, None]}, [b"xy", b"z"])
    header, buffers = P.unpack(frames)
    assert header == {"type": "ping", "id": "a", "n": [1, 2.5, None]}
    assert buffers == [b"xy", b"z"]


@pytest.mark.parametrize(
    "frames,word",
    [
        ([], "empty"),
        ([b"\xc1"], "msgpack"),
        ([msgpack.packb("just a string")], "map"),
        ([b""], "msgpack"),
    ],
)
def test_unpack_rejects_malformed(frames: list[bytes], word: str) -> None:
    with pytest.raises(P.ProtocolError) as info:
        P.unpack(frames)
    assert info.value.code == P.BAD_REQUEST and word in info.value.message


def test_require_names_field() -> None:
    assert P.require({"a": 3}, "a", int) == 3
    with pytest.raises(P.ProtocolError, match="missing field 'x.b'"):
        P.require({}, "b", int, "x.")
    with pytest.raises(P.ProtocolError, match="'a' has the wrong type"):
        P.require({"a": "3"}, "a", int)
    with pytest.raises(P.ProtocolError, match="bool"):
        P.require({"a": True}, "a", int)


def test_pipe_framing_round_trip() -> None:
    stream = io.BytesIO()
    P.write_pipe_message(stream, {"type": "progress", "id": "j"}, [b"\x00\x01", b""])
    P.write_pipe_message(stream, {"type": "pong", "id": "p"})
    stream.seek(0)
    assert P.read_pipe_message(stream) == ({"type": "progress", "id": "j"}, [b"\x00\x01", b""])
    assert P.read_pipe_message(stream) == ({"type": "pong", "id": "p"}, [])
    with pytest.raises(EOFError):
        P.read_pipe_message(stream)


def test_error_codes_stable() -> None:
    assert P.ERROR_CODES == (
        "bad_request",
        "unsupported_protocol",
        "too_large",
        "bad_image",
        "unknown_job",
        "queue_full",
        "out_of_memory",
        "internal",
        "optimisation_failed",
    )  # new codes go at the end


# --- layouts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_layout_round_trip(dtype: Any, channels: int) -> None:
    arr = (np.arange(5 * 3 * channels).reshape(5, 3, channels) * 7 % 200).astype(dtype)
    desc, data = layouts.from_array(arr, 2)
    assert desc == {
        "width": 3,
        "height": 5,
        "channels": channels,
        "dtype": layouts.wire_dtype(arr),
        "frame": 2,
    }
    assert len(data) == layouts.nbytes(3, 5, channels, desc["dtype"])
    back = layouts.to_array(desc, data)
    assert back.dtype == arr.dtype and np.array_equal(back, arr)


def test_wire_is_little_endian() -> None:
    _, data = layouts.from_array(np.array([[[0x0102]]], dtype=np.uint16), 1)
    assert data == b"\x02\x01"


@pytest.mark.parametrize(
    "desc,word",
    [
        ("x", "expected a map"),
        ({"width": 2, "height": 2, "channels": 3, "dtype": "u8"}, "image.frame"),
        ({"width": "2", "height": 2, "channels": 3, "dtype": "u8", "frame": 1}, "image.width"),
        ({"width": 0, "height": 2, "channels": 3, "dtype": "u8", "frame": 1}, "positive"),
        ({"width": 2, "height": 2, "channels": 5, "dtype": "u8", "frame": 1}, "image.channels"),
        ({"width": 2, "height": 2, "channels": 3, "dtype": "f16", "frame": 1}, "image.dtype"),
    ],
)
def test_check_descriptor_names_field(desc: Any, word: str) -> None:
    with pytest.raises(layouts.LayoutError, match=word.replace(".", r"\.")):
        layouts.check_descriptor(desc)


def test_check_buffer_size() -> None:
    desc = layouts.describe(2, 2, 3, "u16", 1)
    layouts.check_buffer(desc, b"\0" * 24)
    with pytest.raises(layouts.LayoutError, match="holds 23 bytes"):
        layouts.check_buffer(desc, b"\0" * 23)


def test_krita_swap_round_trip() -> None:
    bgra = bytes([1, 2, 3, 4, 5, 6, 7, 8])
    wire, dtype = layouts.krita_to_wire(bgra, "U8")
    assert dtype == "u8" and wire == bytes([3, 2, 1, 4, 7, 6, 5, 8])
    assert layouts.wire_to_krita(wire, "u8") == bgra


# --- request validation (server side, no model) ------------------------------------------------


def _request(**over: Any) -> tuple[dict[str, Any], list[bytes]]:
    content = layouts.describe(4, 3, 4, "u8", 1)
    style = {**layouts.describe(2, 2, 3, "u8", 2), "weight": 0.5}
    header = {
        "type": "stylize",
        "id": "j1",
        "content": content,
        "styles": [style],
        "params": {"iterations": 2},
    }
    header.update(over)
    return header, [b"\0" * 48, b"\0" * 12]


def _parse(header: dict[str, Any], buffers: list[bytes], max_pixels: int = 100) -> server.Job:
    return server.parse_stylize(header, buffers, b"client", max_pixels, "cpu")


def test_parse_stylize_ok() -> None:
    job = _parse(*_request(preview_every=3))
    assert job.id == "j1" and job.params.iterations == 2 and job.preview_every == 3
    assert job.styles[0]["weight"] == 0.5 and job.content["width"] == 4


@pytest.mark.parametrize(
    "over,buffers,code,word",
    [
        (
            {"content": {**layouts.describe(4, 3, 4, "u8", 1), "width": 400}},
            None,
            P.TOO_LARGE,
            "content",
        ),
        ({"content": {**layouts.describe(4, 3, 4, "u8", 3)}}, None, P.BAD_REQUEST, "content.frame"),
        ({}, [b"\0" * 47, b"\0" * 12], P.BAD_IMAGE, "content"),
        ({"styles": []}, None, P.BAD_REQUEST, "styles"),
        (
            {"styles": [{**layouts.describe(2, 2, 3, "u8", 2), "weight": -1}]},
            None,
            P.BAD_REQUEST,
            "styles[0].weight",
        ),
        ({"params": {"nope": 1}}, None, P.BAD_REQUEST, "params.nope"),
        ({"params": {"device": "cuda"}}, None, P.BAD_REQUEST, "params.device"),
        (
            {"params": {"style_layers": [["relu7_1", 1.0]]}},
            None,
            P.BAD_REQUEST,
            "params.style_layers",
        ),
        ({"params": [1]}, None, P.BAD_REQUEST, "params"),
        ({"preview_every": -1}, None, P.BAD_REQUEST, "preview_every"),
    ],
)
def test_parse_stylize_errors(
    over: dict[str, Any], buffers: list[bytes] | None, code: str, word: str
) -> None:
    header, default_buffers = _request(**over)
    with pytest.raises(P.ProtocolError) as info:
        _parse(header, buffers if buffers is not None else default_buffers)
    assert info.value.code == code and word in info.value.message


def test_too_large_checked_before_frame() -> None:
    """A huge descriptor is refused on its numbers alone, whatever the frames hold."""
    huge = layouts.describe(100_000, 100_000, 4, "f32", 1)
    with pytest.raises(P.ProtocolError) as info:
        _parse(*_request(content=huge), max_pixels=server.P.DEFAULT_MAX_PIXELS)
    assert info.value.code == P.TOO_LARGE


def test_device_auto_or_own_device_accepted() -> None:
    assert server.parse_params({"device": "auto"}, "cpu").iterations == 300
    assert server.parse_params({"device": "cpu"}, "cpu").device == "auto"


@pytest.mark.parametrize(
    "endpoint,local",
    [
        ("tcp://127.0.0.1:5757", True),
        ("tcp://localhost:1", True),
        ("tcp://[::1]:5", True),
        ("tcp://127.8.9.1:5", True),
        ("ipc:///tmp/x", True),
        ("tcp://0.0.0.0:5757", False),
        ("tcp://*:5757", False),
        ("tcp://192.168.1.2:5", False),
        ("tcp://eth0:5", False),
    ],
)
def test_local_endpoints(endpoint: str, local: bool) -> None:
    assert server.is_local_endpoint(endpoint) is local


# --- scheduler --------------------------------------------------------------------------------


def _job(client: bytes, job_id: str) -> server.Job:
    return server.Job(
        client=client,
        id=job_id,
        content={},
        styles=[],
        frames=[],
        params=server.make_params({}),
        preview_every=0,
    )


def test_scheduler_fifo_limits_and_cancel() -> None:
    s = server.Scheduler()
    positions = [s.submit(_job(b"a", f"j{i}")) for i in range(P.MAX_QUEUED_PER_CLIENT)]
    assert positions == list(range(P.MAX_QUEUED_PER_CLIENT))
    with pytest.raises(P.ProtocolError) as info:
        s.submit(_job(b"a", "extra"))
    assert info.value.code == P.QUEUE_FULL
    assert s.submit(_job(b"b", "j0")) == P.MAX_QUEUED_PER_CLIENT  # limit is per client
    with pytest.raises(P.ProtocolError, match="already queued"):
        s.submit(_job(b"b", "j0"))
    first = s.take()
    assert first is not None and first.id == "j0" and first.client == b"a"
    assert s.cancel((b"a", "j0")) == "running" and first.cancel.is_set()
    assert s.cancel((b"a", "j2")) == "queued"
    assert s.cancel((b"a", "zzz")) is None
    assert [j.id for j in s.jobs_of(b"a")] == ["j1", "j3", "j0"]
    s.finish(first, P.CANCELLED)
    assert s.running is None and s.cancelled == 2
    dropped = s.stop()
    assert len(dropped) == 3 and s.take() is None


# --- client bookkeeping -----------------------------------------------------------------------


class ScriptedTransport:
    """A transport that answers from a script: each sent request gets its listed replies."""

    def __init__(self, replies: dict[str, list[dict[str, Any]]]) -> None:
        self.replies = replies
        self.sent: list[dict[str, Any]] = []
        self.inbox: list[tuple[dict[str, Any], list[bytes]]] = []

    def send(self, header: dict[str, Any], buffers: Any = ()) -> None:
        self.sent.append(header)
        for reply in self.replies.get(header["type"], []):
            self.inbox.append(({**reply, "id": header["id"]}, []))

    def recv(self, timeout_s: float) -> tuple[dict[str, Any], list[bytes]] | None:
        return self.inbox.pop(0) if self.inbox else None

    def close(self) -> None:
        pass


def test_client_request_and_errors() -> None:
    t = ScriptedTransport(
        {
            "ping": [{"type": "pong"}],
            "status": [{"type": "error", "code": "internal", "message": "x"}],
        }
    )
    c = Client("tcp://127.0.0.1:1", transport=t, timeout_s=0.05)
    assert c.ping()["type"] == "pong"
    with pytest.raises(DaemonError) as info:
        c.status()
    assert info.value.code == "internal"
    with pytest.raises(DaemonUnavailable, match="tcp://127.0.0.1:1"):
        c.hello()
    ids = [h["id"] for h in t.sent]
    assert len(set(ids)) == len(ids)


def test_client_stashes_other_replies() -> None:
    t = ScriptedTransport({})
    c = Client("x", transport=t, timeout_s=0.05)
    t.inbox = [({"type": "pong", "id": "other"}, []), ({"type": "pong", "id": "mine"}, [])]
    assert c.receive("mine", 0.05)[0]["id"] == "mine"
    assert c.receive("other", 0.0)[0]["id"] == "other"  # kept for later
    assert c.receive("other", 0.0) is None


def test_convert_dtype_between_wire_dtypes() -> None:
    import struct

    from nst_core import layouts

    assert layouts.convert_dtype(bytes([0, 128, 255]), "u8", "u16") == struct.pack(
        "<3H", 0, 128 * 257, 65535
    )
    assert layouts.convert_dtype(struct.pack("<2H", 257, 65535), "u16", "u8") == bytes([1, 255])
    assert layouts.convert_dtype(struct.pack("<3f", -0.5, 0.5, 2.0), "f32", "u8") == bytes(
        [0, 128, 255]
    )
    assert struct.unpack("<2f", layouts.convert_dtype(bytes([0, 255]), "u8", "f32")) == (0.0, 1.0)
