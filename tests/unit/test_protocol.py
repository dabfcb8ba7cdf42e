"""Protocol v1 framing, builders and constants (nst_client.protocol): pure, no sockets."""

from __future__ import annotations

import io
from typing import Any, get_type_hints

import msgpack
import pytest

from nst_client import pipe
from nst_client import protocol as P
from nst_daemon.requests import require

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
    assert require({"a": 3}, "a", int) == 3
    with pytest.raises(P.ProtocolError, match="missing field 'x.b'"):
        require({}, "b", int, "x.")
    with pytest.raises(P.ProtocolError, match="'a' has the wrong type"):
        require({"a": "3"}, "a", int)
    with pytest.raises(P.ProtocolError, match="bool"):
        require({"a": True}, "a", int)


def test_pipe_framing_round_trip() -> None:
    stream = io.BytesIO()
    pipe.write_message(stream, {"type": "progress", "id": "j"}, [b"\x00\x01", b""])
    pipe.write_message(stream, {"type": "pong", "id": "p"})
    stream.seek(0)
    assert pipe.read_message(stream) == ({"type": "progress", "id": "j"}, [b"\x00\x01", b""])
    assert pipe.read_message(stream) == ({"type": "pong", "id": "p"}, [])
    with pytest.raises(EOFError):
        pipe.read_message(stream)


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
        "not_allowed",
        "worker_lost",
    )  # new codes go at the end


def _keys(typed: Any) -> set[str]:
    return set(get_type_hints(typed))


def test_builders_write_every_documented_key() -> None:
    """Each builder fills exactly its TypedDict's keys (optional ones when given)."""
    desc: P.ImageDesc = {"width": 2, "height": 1, "channels": 3, "dtype": "u8", "frame": 1}
    loss: P.Loss = {"total": 1.0, "content": 0.5, "style": 0.5}
    cases: list[tuple[Any, Any]] = [
        (P.hello("h", "me"), P.Hello),
        (P.ping("p"), P.Ping),
        (P.status_request("s"), P.StatusRequest),
        (P.cancel("c", "j"), P.Cancel),
        (P.stylize("j", desc, [{**desc, "frame": 2, "weight": 1.0}], {}, 5), P.Stylize),
        (P.accepted("j", 0), P.Accepted),
        (
            P.progress(
                "j",
                iteration=1,
                iterations=2,
                scale=1,
                scales=1,
                loss=loss,
                elapsed_s=0.1,
                eta_s=0.2,
                preview=desc,
            ),
            P.Progress,
        ),
        (P.error(None, P.BAD_REQUEST, "x"), P.Error),
        (P.cancelled("j"), P.Cancelled),
        (P.pong("p"), P.Pong),
        (P.shutdown("s"), P.Shutdown),
        (P.bye("s"), P.Bye),
    ]
    for message, typed in cases:
        assert set(message) == _keys(typed), typed.__name__
        header, _ = P.unpack(P.pack(message))
        assert header == message
    assert P.hello("h", "me")["protocol"] == P.PROTOCOL_VERSION
    assert "preview_every" not in P.stylize("j", desc, [], {})
    assert "preview" not in P.progress(
        "j", iteration=1, iterations=1, scale=1, scales=1, loss=loss, elapsed_s=0, eta_s=0
    )


def test_replies_and_requests_are_distinct_types() -> None:
    assert set(P.REQUESTS) == {"hello", "stylize", "cancel", "status", "ping", "shutdown"}
    assert P.BYE in P.FINAL_REPLIES and P.STATUS in P.FINAL_REPLIES
    assert P.PROGRESS not in P.FINAL_REPLIES
