"""The daemon's runner (nst_daemon.runner) with a fake engine: no model, no sockets."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from nst_client import layouts
from nst_client import protocol as P
from nst_client.params import make_params
from nst_client.progress import Progress
from nst_core.errors import OptimisationFailed, StylizeCancelled
from nst_core.styles import StyleImage
from nst_daemon.jobs import Job
from nst_daemon.runner import Runner, is_out_of_memory


class Cache:
    hits = 0
    misses = 0


class FakeEngine:
    """Calls back like nst_core.engine.stylize; its behaviour is set per test."""

    def __init__(self, action: Callable[..., Any] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.action = action

    def __call__(
        self,
        content: Any,
        styles: Sequence[StyleImage],
        params: Any,
        progress: Callable[[Progress], None] | None,
        cancel: Callable[[], bool] | None,
        *,
        preview_every: int,
        model: Any,
        style_cache: Any,
    ) -> Any:
        self.calls.append({"tile_size": params.tile_size, "styles": styles, "model": model})
        if self.action is not None:
            return self.action(content, progress, cancel, preview_every)
        assert progress is not None
        for i in (1, 2):
            preview = 255 - content if preview_every else None
            progress(Progress(i, 2, 1, 1, 3.0 - i, 1.0, 2.0 - i, 0.1 * i, 0.1, preview))
        return 255 - content


def _job(channels: int = 4, preview_every: int = 0, **params: Any) -> Job:
    content = np.arange(6 * 5 * channels, dtype=np.uint8).reshape(6, 5, channels)
    style = np.full((4, 4, 3), 9, dtype=np.uint8)
    c_desc, c_data = layouts.from_array(content, 1)
    s_desc, s_data = layouts.from_array(style, 2)
    return Job(
        client=b"c",
        id="j",
        content=c_desc,
        styles=[{**s_desc, "weight": 0.5}],
        frames=[c_data, s_data],
        params=make_params(params),
        preview_every=preview_every,
    )


def _run(engine: FakeEngine, job: Job) -> tuple[Any, list[bytes], list[Any]]:
    posted: list[Any] = []
    runner = Runner(engine, model="the model", style_cache=Cache(), device_name="cpu")
    reply, buffers = runner.run(job, lambda message, data: posted.append((message, data)))
    return reply, buffers, posted


def test_result_progress_and_stats() -> None:
    job = _job(preview_every=1)
    reply, buffers, posted = _run(FakeEngine(), job)
    assert reply["type"] == P.RESULT and reply["id"] == "j"
    assert reply["image"] == {**job.content, "frame": 1}
    out = layouts.to_array(reply["image"], buffers[0])
    assert out.shape == (6, 5, 4) and out[0, 0, 1] == 254
    assert reply["stats"]["iterations"] == 2 and reply["stats"]["loss"]["total"] == 1.0
    assert reply["stats"]["device"] == "cpu" and reply["stats"]["oom_retries"] == 0
    assert [m["iteration"] for m, _ in posted] == [1, 2]
    message, data = posted[0]
    assert message["type"] == P.PROGRESS and message["preview"]["frame"] == 1
    assert len(data) == 1 and len(data[0]) == 6 * 5 * 4
    assert (job.iteration, job.iterations) == (2, 2)


def test_style_weights_and_model_reach_the_engine() -> None:
    engine = FakeEngine()
    _run(engine, _job())
    (call,) = engine.calls
    assert call["model"] == "the model"
    (style,) = call["styles"]
    assert style.weight == 0.5 and style.pixels.shape == (4, 4, 3)
    assert style.mask is None and style.strength is None


def test_a_styles_mask_and_strength_reach_the_engine() -> None:
    job = _job()
    mask = np.zeros((6, 5), np.uint8)
    mask[:3] = 255
    mask_desc, mask_data = layouts.from_array(mask, 3)
    job.styles[0] = P.style_entry(job.styles[0], 2.0, mask_desc, 70.0)
    job.frames.append(mask_data)
    engine = FakeEngine()
    _run(engine, job)
    (style,) = engine.calls[0]["styles"]
    assert style.weight == 2.0 and style.strength == 70.0
    assert style.mask.shape == (6, 5, 1) and (style.mask[:3] == 255).all()
    assert not style.mask[3:].any()


def test_a_result_in_another_layout_is_a_bug_not_a_result() -> None:
    engine = FakeEngine(lambda content, *_: content[:, :, :3].copy())
    with pytest.raises(RuntimeError, match="content's layout"):
        _run(engine, _job())


@pytest.mark.parametrize(
    "exc,code",
    [
        (OptimisationFailed("scale 1: the cost did not fall"), P.OPTIMISATION_FAILED),
        (ValueError("content: 3 pixel values are not finite"), P.BAD_REQUEST),
    ],
)
def test_engine_failures_become_named_errors(exc: Exception, code: str) -> None:
    def fail(*_: Any) -> Any:
        raise exc

    reply, buffers, _ = _run(FakeEngine(fail), _job())
    assert reply == P.error("j", code, str(exc)) and buffers == []


def test_cancelled_before_and_during_the_run() -> None:
    job = _job()
    job.cancel.set()
    engine = FakeEngine()
    assert _run(engine, job)[0] == P.cancelled("j") and engine.calls == []

    def cancelled(*_: Any) -> Any:
        raise StylizeCancelled(None)

    assert _run(FakeEngine(cancelled), _job())[0] == P.cancelled("j")


def test_out_of_memory_retries_once_with_half_the_tile() -> None:
    attempts: list[int] = []

    def oom_once(content: Any, *_: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return content.copy()

    engine = FakeEngine(oom_once)
    reply, _, _ = _run(engine, _job(tile_size=1024))
    assert reply["type"] == P.RESULT and reply["stats"]["oom_retries"] == 1
    assert [c["tile_size"] for c in engine.calls] == [1024, 512]

    def always_oom(*_: Any) -> Any:
        raise MemoryError()

    reply, _, _ = _run(FakeEngine(always_oom), _job(tile_size=1024))
    assert reply["type"] == P.ERROR and reply["code"] == P.OUT_OF_MEMORY
    assert "tile_size" in reply["message"]


def test_other_exceptions_propagate_to_the_worker() -> None:
    def bug(*_: Any) -> Any:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        _run(FakeEngine(bug), _job())
    assert not is_out_of_memory(KeyError("x"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))


def test_cancel_flag_is_what_the_engine_polls() -> None:
    seen: list[bool] = []
    job = _job()

    def polls(content: Any, progress: Any, cancel: Callable[[], bool], _: int) -> Any:
        seen.append(cancel())
        job.cancel.set()
        seen.append(cancel())
        raise StylizeCancelled(None)

    assert _run(FakeEngine(polls), job)[0]["type"] == P.CANCELLED
    assert seen == [False, True]
    assert isinstance(job.cancel, threading.Event)
