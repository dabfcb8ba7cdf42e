"""The FIFO of jobs (nst_daemon.jobs): limits, cancel, what a client may see."""

from __future__ import annotations

import pytest

from nst_client import protocol as P
from nst_client.layouts import describe
from nst_core.params import make_params
from nst_daemon.jobs import Job, Scheduler

# --- scheduler --------------------------------------------------------------------------------


def _job(client: bytes, job_id: str) -> Job:
    return Job(
        client=client,
        id=job_id,
        content=describe(1, 1, 3, "u8", 1),
        styles=[],
        frames=[],
        params=make_params({}),
        preview_every=0,
    )


def test_scheduler_fifo_limits_and_cancel() -> None:
    s = Scheduler()
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
