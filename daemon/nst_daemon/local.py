"""The warm model in this process: loaded once, measured, warmed up, one worker thread.

WarmModel is what a worker holds (VGG-19, its calibration, its style-target cache, a Runner);
the single daemon runs one in-process (LocalEngine), a cluster runs one per Ray actor
(cluster.worker). Importing this module does not import torch: load() does.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from nst_client import protocol as P

from .jobs import Scheduler
from .runner import Runner
from .workers import OutboxFactory, serve_jobs

#: Where each start-up step begins, as a share of a cold start (measured: see WarmModel.load).
STARTUP_SHARES = {"torch": 0.02, "weights": 0.7, "measure": 0.85, "warmup": 0.93}

StepFn = Callable[[str, float], None]


@dataclass
class ModelSettings:
    """How a worker loads its model (nst-daemon's options that concern the engine)."""

    device: str = "auto"
    weights: str = "caffe"
    style_cache_mb: int = 512
    memory_fraction: float = 0.0
    warmup: bool = True
    #: CPU threads for torch (0 = torch's default: every core).
    threads: int = 0


class WarmModel:
    """VGG-19 on its device, measured and warmed up, with its style cache and runner."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.runner: Runner | None = None
        self.device_type = "cpu"
        self.device_name = ""
        self.weights_name = settings.weights
        self._torch: Any = None
        self._model: Any = None

    def load(self, step: StepFn = lambda step, fraction: None) -> None:
        """Import the engine, load the model, measure the device and run one tiny job so the
        first real one is fast. The step fractions are each step's share of a cold start
        measured on a 2-core CPU (importing PyTorch dominates)."""
        step("loading PyTorch", STARTUP_SHARES["torch"])
        import numpy as np
        import torch

        from nst_core import calibrate, engine
        from nst_core.targets import StyleTargetCache

        s = self.settings
        if s.threads > 0:
            torch.set_num_threads(s.threads)
        step("loading the VGG-19 weights", STARTUP_SHARES["weights"])
        model = engine.load_model(weights=s.weights, device=s.device)
        device = model.device
        self._torch, self._model = torch, model
        self.device_type, self.device_name = device.type, str(device)
        self.weights_name = model.weights_name
        if s.memory_fraction and self.device_type == "cuda":
            torch.cuda.set_per_process_memory_fraction(s.memory_fraction, device)
        # Precision and speed: measured once per machine (cached on disk), refined by jobs.
        step(f"measuring {self.device_name}", STARTUP_SHARES["measure"])
        calibrate.profile(model)
        cache = StyleTargetCache(max_bytes=s.style_cache_mb << 20)
        self.runner = Runner(engine.stylize, model, cache, self.device_name, self._free_memory)
        if s.warmup:
            step(f"warming up on {self.device_name}", STARTUP_SHARES["warmup"])
            rng = np.random.default_rng(0)
            img, style = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
            engine.stylize(
                img, [style], {"iterations": 1, "size": 32, "min_scale": 32}, model=model
            )

    def _free_memory(self) -> None:
        if self._torch is not None and self.device_type == "cuda":
            self._torch.cuda.empty_cache()

    def describe(self) -> str:
        """The device in words: cuda:0 (NVIDIA H100 80GB HBM3), cpu."""
        if self.device_type == "cuda" and self._torch is not None:
            try:
                return f"{self.device_name} ({self._torch.cuda.get_device_name(self.device_name)})"
            except Exception:
                pass
        return self.device_name

    def profile(self) -> P.DeviceProfile | None:
        """What calibration measured (None before load)."""
        if self._model is None:
            return None
        from nst_core import calibrate

        return cast(P.DeviceProfile, calibrate.profile(self._model).to_message())

    def cache_counts(self) -> P.CacheCounts:
        cache = self.runner.style_cache if self.runner is not None else None
        return {"hits": cache.hits if cache else 0, "misses": cache.misses if cache else 0}

    def memory(self) -> P.Memory:
        memory: P.Memory = {"rss_bytes": rss_bytes()}
        if self.device_type == "cuda" and self._torch is not None:
            cuda = self._torch.cuda
            memory["device_allocated_bytes"] = cuda.memory_allocated(self.device_name)
            memory["device_reserved_bytes"] = cuda.memory_reserved(self.device_name)
            memory["device_total_bytes"] = cuda.get_device_properties(self.device_name).total_memory
        return memory


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class LocalEngine:
    """The single daemon's engine: one WarmModel in this process, one worker thread."""

    WORKER = "local"

    def __init__(self, settings: ModelSettings) -> None:
        self.warm = WarmModel(settings)
        self._thread: threading.Thread | None = None

    @property
    def device_type(self) -> str:
        return self.warm.device_type

    @property
    def weights_name(self) -> str:
        return self.warm.weights_name

    def load(self, step: StepFn) -> None:
        self.warm.load(step)

    def start(self, sched: Scheduler, outbox: OutboxFactory) -> None:
        """The worker thread, taking jobs from `sched` (the model is loaded)."""
        runner = self.warm.runner
        assert runner is not None
        box = outbox()

        def work() -> None:
            try:
                serve_jobs(sched, self.WORKER, box, runner.run)
            finally:
                box.close()

        sched.join(self.WORKER)
        self._thread = threading.Thread(target=work, name="nst-worker", daemon=True)
        self._thread.start()

    def describe(self) -> str:
        return self.warm.describe()

    def profile(self) -> P.DeviceProfile | None:
        return self.warm.profile()

    def memory(self) -> P.Memory:
        return self.warm.memory()

    def cache_counts(self) -> P.CacheCounts:
        return self.warm.cache_counts()

    def workers(self, sched: Scheduler, client: bytes) -> list[P.WorkerStatus]:
        job = sched.running_job(self.WORKER, client)
        loaded = self._thread is not None
        done, _, _ = sched.counts()
        return [
            {
                "name": self.WORKER,
                "host": socket.gethostname(),
                "device": self.warm.describe() or self.warm.settings.device,
                "state": ("busy" if job is not None else "idle") if loaded else P.STARTING,
                "job": job,
                "jobs_done": done,
                "style_cache": self.cache_counts(),
                "pid": os.getpid(),
            }
        ]

    def alive(self) -> bool:
        """A worker thread is still inside a job."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Nothing to release: the thread ends when the scheduler stops."""
