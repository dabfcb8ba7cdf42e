"""A bounded fuzz run against a real daemon process: hostile requests over a real socket
each get one named answer within a second, never `internal`, and the daemon stays up."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest
from daemon_process import DaemonProc, Raw, free_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from request_strategies import FIELDS, NAMED_ERRORS, headers, replaced, valid_stylize, values

from nst_client import protocol as P

pytestmark = pytest.mark.e2e

RUN = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: Replies seen, by type and error code (printed at the end: the closing note's figures).
SEEN: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[tuple[DaemonProc, Raw]]:
    d = DaemonProc(
        f"tcp://127.0.0.1:{free_port()}",
        "--max-pixels",
        "10000",
        "--max-tile-size",
        "256",
        "--no-warmup",
        "--device",
        "cpu",
    )
    raw = Raw(d.endpoint)
    yield d, raw
    raw.close()
    print(f"\nfuzz: {sum(SEEN.values())} requests, replies {dict(sorted(SEEN.items()))}")
    assert d.proc.poll() is None, "the daemon died under fuzzing"
    assert "Traceback" not in d.log_text()
    assert d.stop() == 0


def exchange(raw: Raw, header: Any, buffers: list[bytes]) -> None:
    """Send one message and check its one reply (its id may be unreadable: the next reply)."""
    raw.send(header, buffers)
    reply, _ = raw.recv(5.0)
    if reply["type"] == P.ACCEPTED:  # valid by chance: stop it and read its end
        job = reply["id"]
        raw.send({"type": "cancel", "id": "c", "job": job})
        raw.send({"type": "ping", "id": "sync"})
        ended = synced = False
        while not (ended and synced):
            last, _ = raw.recv(30.0)
            synced = synced or last["id"] == "sync"
            ended = ended or (last["id"] == job and last["type"] in P.FINAL_REPLIES)
            assert last.get("code") != P.INTERNAL, last
    key = reply["type"] if reply["type"] != P.ERROR else f"error:{reply['code']}"
    SEEN[key] += 1
    if reply["type"] == P.ERROR:
        assert reply["code"] in NAMED_ERRORS, reply
        assert len(reply["message"]) < 600


@RUN
@given(path=st.sampled_from(FIELDS), value=values)
def test_fuzz_every_stylize_field(
    fuzzed: tuple[DaemonProc, Raw], path: tuple[Any, ...], value: Any
) -> None:
    header, buffers = valid_stylize("fz")
    exchange(fuzzed[1], replaced(header, path, value), buffers)


@RUN
@given(header=headers, frames=st.lists(st.binary(max_size=64), max_size=3))
def test_fuzz_any_header(fuzzed: tuple[DaemonProc, Raw], header: Any, frames: list[bytes]) -> None:
    exchange(fuzzed[1], header, frames)
