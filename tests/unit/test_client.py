"""The client's reply bookkeeping over a scripted transport (nst_client.client): no sockets."""

from __future__ import annotations

import pytest
from scripted_transport import ScriptedTransport

from nst_client.client import Client, DaemonError, DaemonUnavailable

# --- client bookkeeping -----------------------------------------------------------------------


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
    mine, other = c.receive("mine", 0.05), c.receive("other", 0.0)
    assert mine is not None and mine[0]["id"] == "mine"
    assert other is not None and other[0]["id"] == "other"  # kept for later
    assert c.receive("other", 0.0) is None


def test_follow_relays_progress_and_returns_the_result() -> None:
    from nst_client import layouts
    from nst_client.client import JobCancelled
    from nst_client.progress import Progress

    image = layouts.describe(2, 1, 3, "u8", 1)
    t = ScriptedTransport({})
    c = Client("x", transport=t, timeout_s=0.05)
    job = c.submit((image, b"\x01" * 6), [((image, b"\x02" * 6), 0.5)], {"size": 32}, 1)
    (sent,) = t.sent
    assert sent["type"] == "stylize" and sent["content"]["frame"] == 1
    assert sent["styles"] == [{**image, "frame": 2, "weight": 0.5}]
    assert sent["params"] == {"size": 32} and sent["preview_every"] == 1
    loss = {"total": 1.0, "content": 0.0, "style": 1.0}
    t.inbox = [
        ({"type": "accepted", "id": job, "queue_position": 0}, []),
        (
            {
                "type": "progress",
                "id": job,
                "iteration": 1,
                "iterations": 1,
                "scale": 1,
                "scales": 1,
                "loss": loss,
                "elapsed_s": 1.0,
                "eta_s": 0.0,
                "preview": image,
            },
            [b"\x03" * 6],
        ),
        ({"type": "result", "id": job, "image": image, "stats": {"iterations": 1}}, [b"\x04" * 6]),
    ]
    seen: list[Progress] = []
    done = c.follow(job, on_progress=seen.append)
    assert [p.fraction for p in seen] == [1.0] and seen[0].preview == (image, b"\x03" * 6)
    assert done.raw == (image, b"\x04" * 6) and dict(done.stats) == {"iterations": 1}

    t.inbox = [({"type": "cancelled", "id": "j9"}, [])]
    with pytest.raises(JobCancelled):
        c.follow("j9")
    t.inbox = [({"type": "error", "id": "j8", "code": "bad_request", "message": "size"}, [])]
    with pytest.raises(DaemonError, match="bad_request: size"):
        c.follow("j8")
    t.inbox = [({"type": "result", "id": "j7", "image": image}, [b"short"])]
    with pytest.raises(ValueError, match="holds 5 bytes"):
        c.follow("j7")
