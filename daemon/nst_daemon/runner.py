"""Running one job on the engine: progress messages, an out-of-memory retry, the result.

No sockets here: the runner is handed a `post` function for progress and returns the job's
final reply, so it can be tested with a fake engine. The engine keeps alpha and the content's
layout; the runner only checks that the result has that layout.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from nst_client import layouts
from nst_client import protocol as P
from nst_client.params import MIN_TILE_SIZE, ParamError
from nst_client.progress import Progress
from nst_core.errors import OptimisationFailed, StylizeCancelled
from nst_core.styles import StyleImage

from .jobs import Job

log = logging.getLogger("nst_daemon")

#: Where the runner sends progress: (message, its buffers).
PostFn = Callable[[P.Progress, list[bytes]], None]
Reply = tuple[P.Result | P.Error | P.Cancelled, list[bytes]]


class StyleCache(Protocol):
    hits: int
    misses: int


class StylizeFn(Protocol):
    """nst_core.engine.stylize, as the runner calls it."""

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
    ) -> Any: ...


def _style_image(desc: P.StyleDesc, frames: Sequence[P.Buffer]) -> StyleImage:
    """A request's style entry as the engine takes it (read-only views of its frames)."""
    mask = desc.get("mask")
    return StyleImage(
        layouts.to_array(desc, frames[desc["frame"] - 1], copy=False),
        desc.get("weight", 1.0),
        None if mask is None else layouts.to_array(mask, frames[mask["frame"] - 1], copy=False),
        desc.get("strength"),
    )


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the ways torch and its back-ends say memory ran out."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    cuda_oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    if isinstance(cuda_oom, type) and isinstance(exc, cuda_oom):
        return True
    text = str(exc).lower()
    # CUDA: "CUDA out of memory"; CPU: "DefaultCPUAllocator: can't allocate memory", or
    # oneDNN's "could not create a primitive" when its scratch buffers cannot be had.
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text
        or "can't allocate memory" in text
        or "could not create a primitive" in text
    )


class Runner:
    """Runs jobs on one warm model, one at a time (the worker thread's only job)."""

    def __init__(
        self,
        stylize: StylizeFn,
        model: Any,
        style_cache: StyleCache,
        device_name: str,
        free_memory: Callable[[], None] = lambda: None,
    ) -> None:
        self.stylize = stylize
        self.model = model
        self.style_cache = style_cache
        self.device_name = device_name
        self.free_memory = free_memory

    def run(self, job: Job, post: PostFn) -> Reply:
        """Run one job; posts its progress, returns its final reply and buffers."""
        if job.cancel.is_set():
            return P.cancelled(job.id), []
        # Read-only views of the request's frames: the engine only reads its inputs.
        content = layouts.to_array(job.content, job.frames[job.content["frame"] - 1], copy=False)
        styles = [_style_image(d, job.frames) for d in job.styles]
        last: list[Progress] = []

        def on_progress(p: Progress) -> None:
            job.iteration, job.iterations = p.iteration, p.iterations
            last[:] = [p]
            buffers: list[bytes] = []
            preview = None
            if p.preview is not None:
                preview, data = layouts.from_array(p.preview, 1)
                buffers.append(data)
            message = P.progress(
                job.id,
                iteration=int(p.iteration),
                iterations=int(p.iterations),
                scale=int(p.scale),
                scales=int(p.scales),
                loss=_loss(p),
                elapsed_s=float(p.elapsed_s),
                eta_s=float(p.eta_s or 0.0),
                preview=preview,
            )
            post(message, buffers)

        params = job.params
        hits0, misses0 = self.style_cache.hits, self.style_cache.misses
        t0 = time.monotonic()
        oom_retries = 0
        while True:
            try:
                out = self.stylize(
                    content,
                    styles,
                    params,
                    on_progress,
                    job.cancel.is_set,
                    preview_every=job.preview_every,
                    model=self.model,
                    style_cache=self.style_cache,
                )
                break
            except StylizeCancelled:
                log.info("job %r cancelled", job.id)
                return P.cancelled(job.id), []
            except ParamError as exc:
                return P.error(job.id, P.BAD_REQUEST, f"params.{exc}"), []
            except OptimisationFailed as exc:
                log.warning("job %r: optimisation failed: %s", job.id, exc)
                return P.error(job.id, P.OPTIMISATION_FAILED, str(exc)), []
            except ValueError as exc:  # the engine's checks name the field at fault
                return P.error(job.id, P.BAD_REQUEST, str(exc)), []
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self.free_memory()
                smaller = max(MIN_TILE_SIZE, params.tile_size // 2)
                if oom_retries == 0 and smaller < params.tile_size and not job.cancel.is_set():
                    log.warning(
                        "job %r ran out of memory; retrying with tile_size %d", job.id, smaller
                    )
                    oom_retries += 1
                    params.tile_size = smaller
                    continue
                log.error("job %r ran out of memory: %s", job.id, exc)
                return P.error(
                    job.id,
                    P.OUT_OF_MEMORY,
                    f"out of memory on {self.device_name} for "
                    f"{job.content['width']}x{job.content['height']} at size "
                    f"{params.size or 'auto'}: lower params.size, the quality or params.tile_size",
                ), []
        image, data = layouts.from_array(out, 1)
        if _layout(image) != _layout(job.content):
            raise RuntimeError(f"engine returned {image}, expected the content's layout")
        final = last[0] if last else None
        stats: P.Stats = {
            "elapsed_s": round(time.monotonic() - t0, 4),
            "queued_s": round(job.queued_s, 4),
            "iterations": final.iterations if final else 0,
            "scales": final.scales if final else 0,
            "loss": _loss(final) if final else None,
            "device": self.device_name,
            "style_cache": {
                "hits": self.style_cache.hits - hits0,
                "misses": self.style_cache.misses - misses0,
            },
            "oom_retries": oom_retries,
            "worker": job.worker or "",
        }
        log.info("job %r done in %.2f s", job.id, stats["elapsed_s"])
        return P.result(job.id, image, stats), [data]


def _loss(p: Progress) -> P.Loss:
    return {
        "total": float(p.loss_total),
        "content": float(p.loss_content),
        "style": float(p.loss_style),
    }


def _layout(desc: P.ImageDesc) -> tuple[int, int, int, str]:
    return desc["width"], desc["height"], desc["channels"], desc["dtype"]
