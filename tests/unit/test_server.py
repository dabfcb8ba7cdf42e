"""The daemon's dispatch and bookkeeping (nst_daemon.server) with a recording socket: no
process, no model, no network."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgpack
import pytest
import zmq

from nst_client import __version__, layouts
from nst_client import protocol as P
from nst_daemon.server import DaemonConfig, Server
from nst_daemon.transport import RouterSocket, SetupError


class RecordingRouter:
    """Stands in for RouterSocket: keeps what was sent; `gone` clients refuse messages."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, dict[str, Any]]] = []
        self.gone: set[bytes] = set()

    def send(self, client: bytes, header: Mapping[str, Any], buffers: Sequence[Any] = ()) -> bool:
        if client in self.gone:
            return False
        self.sent.append((client, dict(header)))
        return True


@pytest.fixture
def server() -> Iterator[tuple[Server, RecordingRouter]]:
    s = Server(DaemonConfig(max_pixels=10_000))
    router = RecordingRouter()
    s.router = router  # type: ignore[assignment]  # the stand-in has RouterSocket's send
    yield s, router
    s.router = None
    s.close()


def _frames(client: bytes, header: Any, *buffers: bytes) -> list[zmq.Frame]:
    return [zmq.Frame(client), zmq.Frame(msgpack.packb(header)), *map(zmq.Frame, buffers)]


def _stylize(request_id: str) -> tuple[dict[str, Any], bytes, bytes]:
    content = layouts.describe(4, 3, 3, "u8", 1)
    style = {**layouts.describe(2, 2, 3, "u8", 2), "weight": 1.0}
    header = {"type": "stylize", "id": request_id, "content": content, "styles": [style]}
    return header, bytes(36), bytes(12)


def test_every_request_type_has_a_handler(server: tuple[Server, RecordingRouter]) -> None:
    s, _ = server
    assert set(s.handlers) == set(P.REQUESTS)


def test_hello_ping_and_errors(server: tuple[Server, RecordingRouter]) -> None:
    s, router = server
    s.handle(_frames(b"a", P.hello("h", "test")))
    s.handle(_frames(b"a", P.ping("p")))
    s.handle(_frames(b"a", {"type": "dance", "id": "d"}))
    s.handle(_frames(b"a", {"type": "ping", "id": 7}))
    s.handle([zmq.Frame(b"a"), zmq.Frame(b"\xc1")])
    s.handle(_frames(b"a", {"type": "ping", "id": "v", "protocol": 2}))
    replies = [h for _, h in router.sent]
    welcome = replies[0]
    assert welcome["type"] == P.WELCOME and welcome["version"] == __version__
    assert welcome["max_pixels"] == 10_000 and welcome["defaults"]["strength"] == 50
    assert replies[1] == P.pong("p")
    assert [(r["id"], r["code"]) for r in replies[2:]] == [
        ("d", P.BAD_REQUEST),
        (None, P.BAD_REQUEST),
        (None, P.BAD_REQUEST),
        ("v", P.UNSUPPORTED_PROTOCOL),
    ]
    assert "unknown request type 'dance'" in replies[2]["message"]


def test_stylize_queue_status_and_cancel(server: tuple[Server, RecordingRouter]) -> None:
    s, router = server
    s.handle(_frames(b"a", *_stylize("j1")))
    s.handle(_frames(b"b", *_stylize("j2")))
    assert router.sent[0][1] == P.accepted("j1", 0) and router.sent[1][1] == P.accepted("j2", 1)
    s.handle(_frames(b"a", P.status_request("s")))
    status = router.sent[-1][1]
    assert status["queue"] == [{"id": "j1", "mine": True}, {"id": None, "mine": False}]
    assert status["running"] is None and status["memory"]["rss_bytes"] > 0
    s.handle(_frames(b"a", P.cancel("c", "j2")))  # b's job, not a's
    assert router.sent[-1][1]["code"] == P.UNKNOWN_JOB
    s.handle(_frames(b"a", P.cancel("c2", "j1")))
    assert router.sent[-1][1] == P.cancelled("j1")
    assert s.sched.counts() == (0, 0, 1)


def test_too_large_is_refused_before_queueing(server: tuple[Server, RecordingRouter]) -> None:
    s, router = server
    header, content, style = _stylize("big")
    header["content"] = layouts.describe(200, 100, 3, "u8", 1)
    s.handle(_frames(b"a", header, content, style))
    assert router.sent[-1][1]["code"] == P.TOO_LARGE and not s.sched.queue


def test_a_vanished_client_loses_its_jobs(server: tuple[Server, RecordingRouter]) -> None:
    s, router = server
    s.handle(_frames(b"a", *_stylize("j1")))
    router.gone.add(b"a")
    s.handle(_frames(b"a", P.ping("p")))  # the pong cannot be delivered
    assert not s.sched.queue and s.sched.counts()[2] == 1


def test_silent_clients_are_reaped(server: tuple[Server, RecordingRouter]) -> None:
    s, _ = server
    s.handle(_frames(b"a", *_stylize("j1")))
    s.last_seen[b"a"] -= s.config.client_timeout_s + 1
    s.reap()
    assert not s.sched.queue


@pytest.mark.parametrize(
    "config,word",
    [
        (DaemonConfig(max_pixels=0), "--max-pixels"),
        (DaemonConfig(client_timeout_s=0), "--client-timeout"),
        (DaemonConfig(memory_fraction=2), "--memory-fraction"),
    ],
)
def test_config_checks(config: DaemonConfig, word: str) -> None:
    with pytest.raises(SetupError, match=word):
        config.check()


@pytest.mark.parametrize(
    "endpoint,kwargs,word",
    [
        ("tcp://0.0.0.0:5757", {}, "needs CURVE"),
        ("pgm://eth0;239.1.1.1:5555", {}, "expected tcp"),
        ("tcp://127.0.0.1:5757", {"curve_allow": "/nonexistent"}, "both"),
    ],
)
def test_bind_policy(endpoint: str, kwargs: dict[str, Any], word: str) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        with pytest.raises(SetupError, match=word):
            RouterSocket(ctx, endpoint, **kwargs)
    finally:
        ctx.term()


def test_send_to_a_vanished_peer_says_so() -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    router = RouterSocket(ctx, "inproc://nst-test-router")
    try:
        assert router.send(b"nobody", P.pong("p")) is False
    finally:
        router.close()
        ctx.term()


def test_close_leaves_clients_time_to_read_the_last_reply() -> None:
    """A client (DEALER with ZMQ_IMMEDIATE, as nst_client connects) drops what it has not
    read when the connection goes: close() keeps it open CLOSE_GRACE_S after a send, and
    does not wait when nothing was sent."""
    from nst_daemon import transport

    ctx: zmq.Context[Any] = zmq.Context()
    router = RouterSocket(ctx, "inproc://nst-test-grace-idle")
    t0 = time.monotonic()
    router.close()
    assert time.monotonic() - t0 < transport.CLOSE_GRACE_S / 2
    # A fresh address: ZeroMQ lets an inproc address go on its own thread, a moment later.
    router = RouterSocket(ctx, "inproc://nst-test-grace")
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, b"artist")
    dealer.setsockopt(zmq.IMMEDIATE, 1)
    dealer.connect("inproc://nst-test-grace")
    try:
        dealer.send_multipart(P.pack(P.ping("p")))
        assert router.sock.poll(2000)
        assert router.send(b"artist", P.pong("p")) is True
        t0 = time.monotonic()
        router.close()
        assert time.monotonic() - t0 >= transport.CLOSE_GRACE_S * 0.9
    finally:
        dealer.close(0)
        ctx.term()


def test_answers_while_the_model_loads(server: tuple[Server, RecordingRouter]) -> None:
    """Before the model is in, hello and status say `starting` (with the step) and a job
    queues: a plug-in that started the engine shows how far its start-up is."""
    s, router = server
    s.startup = {"step": "loading PyTorch", "fraction": 0.02}
    s.handle(_frames(b"a", P.hello("h", "test")))
    s.handle(_frames(b"a", P.status_request("s")))
    header, content, style = _stylize("j")
    s.handle(_frames(b"a", header, content, style))
    welcome, status, accepted = (h for _, h in router.sent)
    assert welcome["state"] == P.STARTING and status["state"] == P.STARTING
    assert status["startup"] == {"step": "loading PyTorch", "fraction": 0.02}
    assert status["version"] == __version__ and status["pid"] > 0
    assert status["idle_s"] == 0.0, "a loading engine is never idle"
    assert accepted["type"] == P.ACCEPTED and accepted["queue_position"] == 0


def test_idle_exit_counts_from_the_last_job(server: tuple[Server, RecordingRouter]) -> None:
    s, router = server
    s.config.idle_exit_s = 5.0
    s.state, s.startup = P.READY, None
    s.last_activity -= 6.0
    assert s.idle_seconds() > 5.0 and s._idle_too_long()
    header, content, style = _stylize("j")
    s.handle(_frames(b"a", header, content, style))  # a job waits: never idle
    assert s.idle_seconds() == 0.0 and not s._idle_too_long()
    s.sched.cancel((b"a", "j"))
    assert 0.0 <= s.idle_seconds() < 1.0, "the clock restarts at the last job"
    s.config.idle_exit_s = 0.0
    s.last_activity -= 1e6
    assert not s._idle_too_long(), "0 means never"


def test_shutdown_only_on_a_local_endpoint(server: tuple[Server, RecordingRouter]) -> None:
    s, router = server
    s.config.endpoint = "tcp://0.0.0.0:5757"
    s.handle(_frames(b"a", P.shutdown("x")))
    assert router.sent[-1][1]["code"] == P.NOT_ALLOWED
    assert "tcp://0.0.0.0:5757" in router.sent[-1][1]["message"]
    assert not s.stop_requested.is_set()
    s.config.endpoint = "tcp://127.0.0.1:5757"
    s.handle(_frames(b"a", P.shutdown("y")))
    assert router.sent[-1][1] == P.bye("y")
    assert s.stop_requested.is_set()


def test_a_failed_load_refuses_the_waiting_jobs(server: tuple[Server, RecordingRouter]) -> None:
    s, router = server
    header, content, style = _stylize("j")
    s.handle(_frames(b"a", header, content, style))
    s.load_error = "WeightsError: no weights"
    assert s._after_load() is False
    reply = router.sent[-1][1]
    assert (reply["id"], reply["code"]) == ("j", P.INTERNAL)
    assert "the engine could not start: WeightsError: no weights" in reply["message"]
