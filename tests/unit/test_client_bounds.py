"""What a client accepts from a daemon is bounded, and a cancel frees the client in a bounded
time, whatever the daemon does: it may keep working, flood other ids, or send junk."""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from nst_client import pipe
from nst_client import protocol as P
from nst_client.client import MAX_STASHED, Client, JobAbandoned, JobCancelled
from nst_client.transports import MAX_FRAME_BYTES, Received, ZmqTransport


class Stubborn:
    """A daemon that answers every recv with progress for the job, and ignores cancel."""

    def __init__(self, job_id: str = "") -> None:
        self.job_id = job_id
        self.sent: list[dict[str, Any]] = []

    def send(self, header: Mapping[str, Any], buffers: Sequence[P.Buffer] = ()) -> None:
        self.sent.append(dict(header))
        if header["type"] == "stylize":
            self.job_id = header["id"]

    def recv(self, timeout_s: float) -> Received | None:
        time.sleep(0.01)
        head = {"type": "progress", "id": self.job_id, "iteration": 1, "iterations": 9}
        return head, []

    def close(self) -> None:
        pass


CONTENT = (P.ImageDesc(width=2, height=2, channels=3, dtype="u8", frame=0), bytes(12))


def test_a_daemon_that_ignores_cancel_releases_the_client_within_the_grace() -> None:
    daemon = Stubborn()
    client = Client(transport=daemon, timeout_s=0.1)
    job = client.submit(CONTENT, [(CONTENT, 1.0)])
    started = time.monotonic()
    with pytest.raises(JobAbandoned, match="within 0.5 s of the cancel: it was abandoned"):
        client.follow(job, should_cancel=lambda: True, cancel_grace_s=0.5)
    took = time.monotonic() - started
    assert 0.5 <= took < 2.0, took
    assert [h["type"] for h in daemon.sent].count("cancel") == 1
    assert issubclass(JobAbandoned, JobCancelled)  # to an editor: a cancel, the editor free


class Flood:
    """A daemon that sends messages for ids nobody asked about, then the awaited one."""

    def __init__(self, count: int) -> None:
        self.left = count

    def send(self, header: Mapping[str, Any], buffers: Sequence[P.Buffer] = ()) -> None:
        pass

    def recv(self, timeout_s: float) -> Received | None:
        if self.left:
            self.left -= 1
            return {"type": "progress", "id": f"other-{self.left}"}, [bytes(1000)]
        return {"type": "pong", "id": "wanted"}, []

    def close(self) -> None:
        pass


def test_messages_for_other_ids_are_kept_in_bounds() -> None:
    client = Client(transport=Flood(10 * MAX_STASHED), timeout_s=1.0)
    reply = client.receive("wanted", 5.0)
    assert reply is not None and reply[0]["type"] == "pong"
    assert len(client._stash) == MAX_STASHED
    assert client._stash[-1][0]["id"] == "other-0"  # the newest kept, the oldest dropped


def _pipe_message(count: int, lengths: Sequence[int]) -> io.BytesIO:
    data = struct.pack("<I", count)
    for length in lengths:
        data += struct.pack("<Q", length) + bytes(min(length, 16))
    return io.BytesIO(data)


@pytest.mark.parametrize(
    ("count", "lengths", "words"),
    [
        (10**6, [], "of 1000000 frames"),
        (0, [], "of 0 frames"),
        (1, [P.MAX_HEADER_BYTES + 1], "at most"),
        (2, [2, 1 << 40], "at most"),
    ],
)
def test_the_bridge_pipe_refuses_impossible_frames(
    count: int, lengths: list[int], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        pipe.read_message(_pipe_message(count, lengths))


def test_the_zmq_socket_drops_junk_and_bounds_frames() -> None:
    import zmq

    router: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    router.bind("inproc://client-bounds")
    transport = ZmqTransport("inproc://client-bounds")
    try:
        cap = MAX_FRAME_BYTES + P.CURVE_FRAME_BYTES  # a frame, and what CURVE adds on the wire
        assert transport._sock.getsockopt(zmq.MAXMSGSIZE) == cap
        transport.send({"type": "ping", "id": "1"})
        peer, _ = router.recv_multipart()
        router.send_multipart([peer, b"\xc1 not msgpack"])
        assert transport.recv(1.0) is None  # dropped, not raised
        router.send_multipart([peer, *P.pack({"type": "pong", "id": "1"})])
        got = transport.recv(1.0)
        assert got is not None and got[0]["type"] == "pong"
    finally:
        transport.close()
        router.close(0)
