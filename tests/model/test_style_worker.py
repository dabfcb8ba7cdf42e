"""A cluster worker's body (nst_daemon.cluster.worker.StyleWorker) without Ray: the real VGG-19,
jobs streamed from its one job thread, a dropped stream stopping its job."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from nst_client import layouts
from nst_client import protocol as P
from nst_client.params import make_params
from nst_daemon.cluster.worker import JobSpec, StyleWorker
from nst_daemon.local import ModelSettings

QUICK = {"iterations": 3, "size": 64, "min_scale": 64}


@pytest.fixture(scope="module")
def worker() -> StyleWorker:
    return StyleWorker(ModelSettings(device="cpu", warmup=False))


def spec(job_id: str, photo: np.ndarray, style: np.ndarray, **params: Any) -> JobSpec:
    content, content_data = layouts.from_array(photo, 1)
    style_desc, style_data = layouts.from_array(style, 2)
    return JobSpec(
        id=job_id,
        worker="w1",
        content=content,
        styles=[{**style_desc, "weight": 1.0}],
        frames=[content_data, style_data],
        params=make_params({**QUICK, **params}),
        preview_every=0,
    )


def test_jobs_stream_progress_then_a_result_from_one_job_thread(
    worker: StyleWorker, photo: np.ndarray, style_image: np.ndarray
) -> None:
    threads: set[str] = set()
    replies = []
    for job_id in ("a", "b"):
        items = list(worker.run(spec(job_id, photo, style_image)))
        kinds = [kind for kind, _, _ in items]
        assert kinds[-1] == "reply" and set(kinds[:-1]) == {"progress"} and len(kinds) > 2
        assert all(message["id"] == job_id for _, message, _ in items)
        _, reply, buffers = items[-1]
        assert reply["type"] == P.RESULT, reply
        assert reply["stats"]["worker"] == "w1"
        out = layouts.to_array(reply["image"], buffers[0])
        assert out.shape == photo.shape and not np.array_equal(out, photo)
        replies.append(reply)
        threads |= {t.name for t in threading.enumerate() if t.name == "nst-jobs"}
    # The same style the second time: the worker's own cache had it.
    assert replies[1]["stats"]["style_cache"] == {"hits": 1, "misses": 0}
    assert threads == {"nst-jobs"}


def test_a_dropped_stream_stops_its_job_and_the_next_one_runs(
    worker: StyleWorker, photo: np.ndarray, style_image: np.ndarray
) -> None:
    stream = worker.run(spec("long", photo, style_image, iterations=5000))
    kind, message, _ = next(stream)
    assert kind == "progress" and message["id"] == "long"
    stream.close()  # the front door let go: the job is cancelled and waited for
    items = list(worker.run(spec("next", photo, style_image)))
    assert items[-1][1]["type"] == P.RESULT, items[-1]


def test_cancel_ends_the_stream_with_cancelled(
    worker: StyleWorker, photo: np.ndarray, style_image: np.ndarray
) -> None:
    stream = worker.run(spec("c", photo, style_image, iterations=5000))
    assert next(stream)[0] == "progress"
    worker.cancel("c")
    *progress, (kind, reply, _) = list(stream)
    assert kind == "reply" and reply["type"] == P.CANCELLED, reply
    assert all(k == "progress" for k, _, _ in progress)
