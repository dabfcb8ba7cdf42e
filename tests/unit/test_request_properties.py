"""Property tests of the daemon's request reading: any msgpack value in any field gets a
named error (bad_request, bad_image, too_large, ...), never an exception and never `internal`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from request_strategies import (
    DESCRIPTOR_KEYS,
    FIELDS,
    NAMED_ERRORS,
    PARAM_KEYS,
    headers,
    replaced,
    valid_stylize,
    values,
)

from nst_client import layouts
from nst_client import protocol as P
from nst_daemon import requests
from nst_daemon.server import DaemonConfig, Server

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(header: dict[str, Any], buffers: list[bytes]) -> None:
    requests.parse_stylize(header, buffers, b"c", requests.Limits(10_000, 512), "cpu")


@EXAMPLES
@given(path=st.sampled_from(FIELDS), value=values)
def test_any_value_in_any_field_is_accepted_or_named(path: tuple[Any, ...], value: Any) -> None:
    header, buffers = valid_stylize()
    try:
        parse(replaced(header, path, value), buffers)
    except P.ProtocolError as exc:
        assert exc.code in NAMED_ERRORS, exc.message
        assert len(exc.message) < 600


@EXAMPLES
@given(params=st.dictionaries(st.sampled_from(PARAM_KEYS), values))
def test_any_params_map_is_accepted_or_named(params: dict[str, Any]) -> None:
    header, buffers = valid_stylize()
    try:
        parse({**header, "params": params}, buffers)
    except P.ProtocolError as exc:
        assert exc.code in (P.BAD_REQUEST, P.TOO_LARGE), exc.message


@EXAMPLES
@given(desc=values | st.dictionaries(st.sampled_from(DESCRIPTOR_KEYS), values))
def test_any_descriptor_is_valid_or_a_layout_error(desc: Any) -> None:
    try:
        checked = layouts.check_descriptor(desc, "content")
    except layouts.LayoutError as exc:
        assert str(exc).startswith("content")
        return
    assert checked["width"] > 0 and checked["dtype"] in layouts.DTYPES


class Recording:
    """Stands in for the daemon's RouterSocket: keeps the replies."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, client: bytes, header: Mapping[str, Any], buffers: Sequence[Any] = ()) -> bool:
        self.sent.append(dict(header))
        return True


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Server, Recording]]:
    s = Server(DaemonConfig(max_pixels=10_000, max_tile_size=512))
    router = Recording()
    s.router = router  # type: ignore[assignment]  # the stand-in has RouterSocket's send
    yield s, router
    s.router = None
    s.close()


@EXAMPLES
@given(header=headers, frames=st.lists(st.binary(max_size=64), max_size=3))
def test_the_server_answers_any_header_once_and_never_internal(
    server: tuple[Server, Recording], header: dict[str, Any], frames: list[bytes]
) -> None:
    s, router = server
    router.sent.clear()
    message = [zmq.Frame(b"fuzz"), zmq.Frame(msgpack.packb(header)), *map(zmq.Frame, frames)]
    s.handle(message)
    for job in s.sched.jobs_of(b"fuzz"):  # a request that happened to be valid
        s.sched.cancel(job.key)
    assert len(router.sent) == 1, router.sent
    reply = router.sent[0]
    if reply["type"] == P.ERROR:
        assert reply["code"] != P.INTERNAL, reply
        assert len(reply["message"]) < 600
