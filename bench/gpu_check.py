"""The GPU path proven: figures beside their targets in one run, on CUDA, or scaled down on a CPU.

    bash bench/gpu_check.sh              # CUDA when torch sees a GPU, else CPU, scaled down
    bash bench/gpu_check.sh --cpu        # CPU, scaled down, even with a GPU
    .venv/bin/python bench/gpu_check.py --help

Parts (CPU sizes in brackets), each with its own time limit inside the whole run's budget:
  a  500 [50] L-BFGS iterations at 512 [128] px, one scale: wall time, the precision used
  b  the default job (no size or iterations: the planner's default preset) on a 1024x768
     [256x192] photo: wall time, the quality figures (../shared/tools/quality_metric.py, or
     --quality-metric PATH)
  c  a 4096x4096 [1024x1024] layer at full size in tiles: wall time, peak GPU memory
  d  a warm nst-daemon (a real process, through nst_client): submit -> first progress,
     median of 5 jobs after a warm-up job
  e  a 4096x4096 [1024x1024] RGBA layer through that daemon and back: iterations 0 (u8 and
     u16, bit-exact), then a real tiny job (alpha must come back bit for bit)

Parts a-c run in this process on one warm model; d and e start one nst-daemon. It prints a
table with the GPU targets beside the figures, then one JSON line (the last line).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from bench_engine import fit_photo
from quality import add_metric_argument

from nst_daemon.process import DaemonProcess, free_port, read_line

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9
MIB = float(1 << 20)

# The GPU targets (judged on CUDA only).
TARGET_LBFGS_S = 2.0
TARGET_BIG_GPU_BYTES = 16 * GB
TARGET_FIRST_PROGRESS_S = 0.050


@dataclass(frozen=True)
class Sizes:
    """Every size the parts use: full on CUDA, scaled down on a CPU."""

    lbfgs_px: int
    lbfgs_its: int
    photo_hw: tuple[int, int]
    big: int
    big_tile: int
    big_its: int
    fp_hw: tuple[int, int]
    fp_jobs: int
    tiny_size: int


GPU_SIZES = Sizes(
    lbfgs_px=512,
    lbfgs_its=500,
    photo_hw=(768, 1024),
    big=4096,
    big_tile=1024,
    big_its=8,
    fp_hw=(384, 512),
    fp_jobs=5,
    tiny_size=256,
)
CPU_SIZES = Sizes(
    lbfgs_px=128,
    lbfgs_its=50,
    photo_hw=(192, 256),
    big=1024,
    big_tile=256,
    big_its=1,
    fp_hw=(192, 256),
    fp_jobs=5,
    tiny_size=64,
)
#: Each part's share of the whole budget (the rest: imports, the model's load, the summary).
SHARES = {"a": 0.11, "b": 0.25, "c": 0.22, "start": 0.07, "d": 0.12, "e": 0.15}
#: The daemon's start may take up to this much of the time earlier parts left unused.
DAEMON_START_MAX_S = 120.0


class OverTime(Exception):
    """A part ran past its time limit."""


class Stopped(Exception):
    """The run was told to stop (SIGINT/SIGTERM: the shell's whole-run timeout)."""


@dataclass
class Row:
    what: str
    value: str
    target: str = ""
    verdict: str = ""


@dataclass
class Part:
    key: str
    title: str
    status: str = "skipped"
    note: str = ""
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def row(self, what: str, value: str) -> None:
        self.rows.append(Row(what, value))

    def judge(
        self, name: str, what: str, value: float, limit: float, shown: str, target: str, gpu: bool
    ) -> None:
        """A figure with its target beside it; judged only on a GPU."""
        if gpu:
            ok = value <= limit
            self.rows.append(Row(what, shown, target, "PASS" if ok else "FAIL"))
            self.targets[name] = {"value": value, "limit": limit, "pass": ok}
        else:
            self.rows.append(Row(what, shown, target + " (GPU)", "n/a on CPU"))
            self.targets[name] = {"value": value, "limit": limit, "pass": None}

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "status": self.status,
            "note": self.note,
            **self.figures,
            "targets": self.targets,
        }


class Budget:
    """The whole run's deadline and each stage's share of it."""

    def __init__(self, total_s: float, keys: list[str]) -> None:
        self.total_s = total_s
        self.start = time.monotonic()
        self.end = self.start + total_s
        # The parts asked for (and the daemon's start, for d and e) share what all would;
        # the rest (8 %) is for the model's load and the summary.
        stages = keys + (["start"] if {"d", "e"} & set(keys) else [])
        scale = sum(SHARES.values()) / sum(SHARES[k] for k in stages)
        self.shares = {k: SHARES[k] * scale * total_s for k in stages}

    def left(self) -> float:
        return self.end - time.monotonic()

    def _reserve(self, later: list[str]) -> float:
        """What the later parts keep whatever happens: 20 s each, or their share if less."""
        return sum(min(20.0, self.shares[k]) for k in later)

    def for_part(self, key: str, later: list[str]) -> float:
        """This part's limit: its share, but never eating into the parts after it."""
        return max(0.0, min(self.shares[key], self.left() - self._reserve(later)))

    def for_daemon_start(self, later: list[str]) -> float:
        """The daemon's start: its share, or what earlier parts left unused (up to
        DAEMON_START_MAX_S) if more, never eating into the parts after it."""
        slack = self.left() - sum(self.shares[k] for k in later)
        want = max(self.shares["start"], min(DAEMON_START_MAX_S, slack))
        return max(0.0, min(want, self.left() - self._reserve(later)))


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise OverTime in this (main) thread once `seconds` have passed: the hard guard behind
    the engine's own cancel (which it only checks between iterations)."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise OverTime()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def git_commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"


def precision_used(model: Any) -> tuple[str, str]:
    """What `precision: auto` runs as on this model's device, and how it was chosen."""
    from nst_core import calibrate

    profile = calibrate.profile(model)
    layout = ", channels_last" if profile.channels_last else ""
    return profile.precision, profile.words() + layout


def plan_words(model: Any, hw: tuple[int, int], params: dict[str, Any]) -> tuple[str, list[int]]:
    """The planner's one line for a job and its tiles per scale ('' and [] without a planner)."""
    try:
        from nst_client.params import make_params
        from nst_core import calibrate
        from nst_core.plan import make_plan

        plan = make_plan(hw, make_params(params), calibrate.profile(model).speed)
    except (ImportError, AttributeError, TypeError):
        return "", []
    return plan.describe(), [step.tiles for step in plan.steps]


class Recorder:
    """Progress callback: counts evaluations, keeps their times and the last report."""

    def __init__(self) -> None:
        self.stamps: list[float] = []  # one per VGG pass (iteration >= 1)
        self.last: Any = None
        self.jumped = False  # a converged scale's last report skips its unused iterations

    def __call__(self, progress: Any) -> None:
        previous = self.last.iteration if self.last is not None else 0
        self.last = progress
        if progress.iteration < 1:  # the plan's report at the start, before any pass
            return
        if progress.iteration > previous + 1:
            self.jumped = True
            return
        self.stamps.append(time.monotonic())

    def evaluations(self) -> int:
        return len(self.stamps)

    def s_per_it(self) -> float | None:
        n = len(self.stamps)
        return (self.stamps[-1] - self.stamps[0]) / (n - 1) if n >= 2 else None


def run_engine(
    content: np.ndarray,
    style: np.ndarray,
    params: dict[str, Any],
    model: Any,
    limit_s: float,
) -> tuple[np.ndarray | None, float, Recorder, bool]:
    """One stylize call with a deadline: (image or None, wall s, recorder, stopped early)."""
    from nst_core.engine import StylizeCancelled, stylize

    rec = Recorder()
    start = time.monotonic()
    # The engine stops itself (cleanly, between iterations) a little before the hard guard.
    soft = start + max(limit_s - 5.0, limit_s * 0.8)
    try:
        with time_limit(limit_s):
            out = stylize(
                content,
                [style],
                params,
                progress=rec,
                cancel=lambda: time.monotonic() > soft,
                model=model,
            )
        return out, time.monotonic() - start, rec, False
    except StylizeCancelled:
        return None, time.monotonic() - start, rec, True
    except OverTime:
        return None, time.monotonic() - start, rec, True


def reset_cuda_peak(gpu: bool) -> None:
    if gpu:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def cuda_peak(gpu: bool) -> float | None:
    if not gpu:
        return None
    import torch

    torch.cuda.synchronize()
    return float(torch.cuda.max_memory_allocated())


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def over_time(part: Part, wall: float, rec: Recorder, limit: float) -> None:
    done = rec.last.iteration if rec.last is not None else 0
    total = rec.last.iterations if rec.last is not None else "?"
    part.status = "over time"
    part.note = (
        f"stopped: over time (limit {limit:.0f} s) after {wall:.1f} s, {done} of {total} iterations"
    )
    part.figures.update({"wall_s": wall, "iterations_done": done, "limit_s": limit})


# --- a, b, c: the engine in this process ------------------------------------------------------


def part_a(
    part: Part, sz: Sizes, model: Any, dev: str, gpu: bool, limit: float, photo: np.ndarray
) -> None:
    from nst_app.demo import PAINTINGS

    content = fit_photo(photo, (sz.lbfgs_px, sz.lbfgs_px))
    style = PAINTINGS["swirls"](512)
    params = {
        "size": sz.lbfgs_px,
        "min_scale": sz.lbfgs_px,
        "iterations": sz.lbfgs_its,
        "device": dev,
    }
    part.figures["params"] = params
    reset_cuda_peak(gpu)
    out, wall, rec, stopped = run_engine(content, style, params, model, limit)
    if stopped:
        over_time(part, wall, rec, limit)
        return
    assert out is not None
    evals = rec.evaluations()
    per_it = rec.s_per_it()
    precision, how = precision_used(model)
    part.status = "ok"
    part.figures.update(
        {
            "wall_s": wall,
            "evaluations": evals,
            "s_per_iteration": per_it,
            "precision": precision,
            "cuda_peak_bytes": cuda_peak(gpu),
        }
    )
    what = f"{sz.lbfgs_its} L-BFGS its at {sz.lbfgs_px} px, wall"
    part.judge("wall_s", what, wall, TARGET_LBFGS_S, f"{wall:.2f} s", "<= 2 s", gpu)
    if evals < sz.lbfgs_its:
        part.row("VGG passes (converged early)", f"{evals} of {sz.lbfgs_its}")
    if per_it is not None:
        part.row("per iteration (first to last pass)", ms(per_it))
    part.row("precision ('auto')", how)


def quality_figures(
    metric: Path, content: np.ndarray, style: np.ndarray, out: np.ndarray, limit_s: float
) -> tuple[dict[str, float] | None, str]:
    """(style, content) by the shared metric, or None and why not."""
    from PIL import Image

    if not metric.is_file():
        return None, f"skipped: no quality metric at {metric}"
    if limit_s < 10:
        return None, "skipped: over time"
    with tempfile.TemporaryDirectory(prefix="nst-gpu-check-") as folder:
        paths = [Path(folder) / name for name in ("content.png", "style.png", "out.png")]
        for path, img in zip(paths, (content, style, out), strict=True):
            Image.fromarray(img[..., :3]).save(path)
        try:
            proc = subprocess.run(
                [sys.executable, str(metric), *map(str, paths)],
                capture_output=True,
                text=True,
                timeout=limit_s,
            )
        except subprocess.TimeoutExpired:
            return None, "skipped: over time"
    words = proc.stdout.split()
    if proc.returncode != 0 or "style" not in words or "content" not in words:
        return None, f"metric failed: {(proc.stderr or proc.stdout).strip()[-300:]}"
    figures = {
        "style": float(words[words.index("style") + 1]),
        "content": float(words[words.index("content") + 1]),
    }
    return figures, str(metric)


def part_b(
    part: Part,
    sz: Sizes,
    model: Any,
    dev: str,
    limit: float,
    photo: np.ndarray,
    gpu: bool,
    metric: Path,
) -> None:
    from nst_app.demo import PAINTINGS

    content = fit_photo(photo, sz.photo_hw)
    style = PAINTINGS["swirls"](512)
    params = {"device": dev}  # no size, no iterations: the planner's default
    part.figures["params"] = params
    part.figures["photo"] = f"{sz.photo_hw[1]}x{sz.photo_hw[0]}"
    plan, _ = plan_words(model, sz.photo_hw, params)
    part.figures["plan"] = plan
    engine_limit = limit * 0.8  # the rest for the quality metric
    reset_cuda_peak(gpu)
    out, wall, rec, stopped = run_engine(content, style, params, model, engine_limit)
    if stopped:
        over_time(part, wall, rec, engine_limit)
        return
    assert out is not None
    part.status = "ok"
    last = rec.last
    iterations = last.iterations if last is not None else 0
    scales = last.scales if last is not None else 0
    part.figures.update(
        {
            "wall_s": wall,
            "iterations": iterations,
            "scales": scales,
            "cuda_peak_bytes": cuda_peak(gpu),
        }
    )
    part.row(
        f"default job, {sz.photo_hw[1]}x{sz.photo_hw[0]} photo, wall",
        f"{wall:.2f} s ({iterations} its over {scales} scales)",
    )
    if plan:
        part.row("the plan", plan)
    try:
        from nst_core.detail import high_frequency_energy
    except ImportError:
        pass
    else:
        ratio = high_frequency_energy(out) / max(high_frequency_energy(content), 1e-12)
        part.figures["sharpness_vs_content"] = ratio
        part.row("high-frequency energy, output / content", f"{ratio:.2f}")
    figures, where = quality_figures(metric, content, style, out, limit - wall - 2)
    if figures is None:
        part.figures["quality"] = None
        part.row("quality figures", where)
        part.note = where
    else:
        part.figures["quality"] = figures
        part.row("quality: style (1 = none, lower = more)", f"{figures['style']:.4f}")
        part.row("quality: content (0 = unchanged)", f"{figures['content']:.4f}")


def part_c(
    part: Part, sz: Sizes, model: Any, dev: str, gpu: bool, limit: float, photo: np.ndarray
) -> None:
    from nst_app.demo import PAINTINGS
    from nst_core.plan import scale_sizes, tile_spans

    content = fit_photo(photo, (sz.big, sz.big))
    style = PAINTINGS["swirls"](512)
    params = {"size": "full", "iterations": sz.big_its, "tile_size": sz.big_tile, "device": dev}
    part.figures["params"] = params
    plan, tiles = plan_words(model, (sz.big, sz.big), params)
    if not tiles:  # before the planner: every scale from min_scale 128 up
        tiles = [
            len(tile_spans(h, sz.big_tile)) * len(tile_spans(w, sz.big_tile))
            for h, w in scale_sizes(sz.big, sz.big, "full", 128)
        ]
    part.figures.update({"tiles_per_scale": tiles, "plan": plan})
    reset_cuda_peak(gpu)
    out, wall, rec, stopped = run_engine(content, style, params, model, limit)
    if stopped:
        over_time(part, wall, rec, limit)
        peak = cuda_peak(gpu)
        if peak is not None:  # the memory of the scales and tiles that did run still counts
            part.figures["cuda_peak_bytes_so_far"] = peak
            part.row("peak GPU memory until it stopped", f"{peak / GB:.2f} GB")
        return
    assert out is not None and out.shape == content.shape
    part.status = "ok"
    peak = cuda_peak(gpu)
    part.figures.update({"wall_s": wall, "cuda_peak_bytes": peak, "rss_peak_mib": rss_peak_mib()})
    part.row(
        f"{sz.big}x{sz.big} full size, {sz.big_its} its/scale, wall",
        f"{wall:.1f} s (tiles per scale {'/'.join(map(str, tiles))})",
    )
    if peak is not None:
        part.judge(
            "cuda_peak_bytes",
            "peak GPU memory (max_memory_allocated)",
            peak,
            TARGET_BIG_GPU_BYTES,
            f"{peak / GB:.2f} GB",
            "<= 16 GB",
            gpu,
        )
    else:
        part.row("peak RSS of this process (so far)", f"{rss_peak_mib():.0f} MiB")


# --- d, e: a real nst-daemon -------------------------------------------------------------------


def daemon_command() -> list[str]:
    """The nst-daemon beside this Python (the venv's), else its module (PYTHONPATH set-ups)."""
    script = Path(sys.executable).with_name("nst-daemon")
    return [str(script)] if script.exists() else [sys.executable, "-m", "nst_daemon"]


class Daemon(DaemonProcess):
    """An nst-daemon process (nst_daemon.process) on a free loopback port, its log in a file;
    ready within timeout_s, else stopped."""

    def __init__(self, dev: str, timeout_s: float) -> None:
        pythonpath = [str(ROOT), str(ROOT / "daemon"), *filter(None, [os.getenv("PYTHONPATH")])]
        started = time.monotonic()
        super().__init__(
            daemon_command(),
            f"tcp://127.0.0.1:{free_port()}",
            "--device",
            dev,
            wait=False,
            env={"PYTHONPATH": os.pathsep.join(pythonpath)},
            cwd=ROOT,
        )
        try:
            line = read_line(self.proc, timeout_s)
        except BaseException:  # over time or stopped while waiting: no daemon left behind
            self.stop()
            raise
        self.start_s = time.monotonic() - started
        if not line.startswith("ready"):
            why = self.log_text()[-600:]
            self.stop()
            raise RuntimeError(f"nst-daemon did not get ready in {timeout_s:.0f} s: {why}")
        self.ready_line = line.strip()


def first_progress(
    client: Any, content: np.ndarray, style: np.ndarray, params: dict[str, Any], wait_s: float
) -> tuple[float, float]:
    """Submit -> the first progress message, and -> the first iteration's (a VGG pass done),
    in seconds; the job is then cancelled."""
    from nst_client import layouts
    from nst_client.client import JobCancelled

    first: list[float] = []
    iteration: list[float] = []

    def on_progress(p: Any) -> None:
        now = time.perf_counter()
        if not first:
            first.append(now)
        if p.iteration >= 1 and not iteration:
            iteration.append(now)

    raw_content = layouts.from_array(content, 0)
    raw_style = layouts.from_array(style, 0)
    t0 = time.perf_counter()
    job = client.submit(raw_content, [(raw_style, 1.0)], params)
    try:
        client.follow(
            job,
            on_progress=on_progress,
            should_cancel=lambda: bool(iteration),
            idle_timeout_s=wait_s,
            poll_s=0.05,
        )
    except JobCancelled:
        pass
    if not first:
        raise RuntimeError("the job ended without a progress message")
    # A job that ended before an iteration's report (a converged or tiny one) counts its end.
    return first[0] - t0, (iteration[0] if iteration else time.perf_counter()) - t0


def part_d(
    part: Part,
    sz: Sizes,
    gpu: bool,
    daemon: Daemon,
    limit: float,
    photo: np.ndarray,
) -> None:
    from nst_app.demo import PAINTINGS
    from nst_client.client import Client

    deadline = time.monotonic() + limit
    content = fit_photo(photo, sz.fp_hw)
    style = PAINTINGS["swirls"](512)
    rng = np.random.default_rng(0)
    params: dict[str, Any] = {}  # the plug-ins' default job: the planner decides
    part.figures.update(
        {"daemon_start_s": daemon.start_s, "ready": daemon.ready_line, "params": params}
    )
    part.row("nst-daemon start to ready (this run)", f"{daemon.start_s:.1f} s")
    times: list[float] = []
    passes: list[float] = []
    with time_limit(limit), Client(daemon.endpoint, timeout_s=30.0) as client:
        welcome = client.hello()
        part.figures["welcome_device"] = welcome.get("device")
        profile = dict(welcome).get("profile")
        if profile is not None:
            part.figures["profile"] = profile
        warm, _ = first_progress(client, content, style, params, 60.0)
        part.figures["warm_up_first_progress_s"] = warm
        for _ in range(sz.fp_jobs):
            if time.monotonic() > deadline - 10:
                break
            # A fresh style each time: no help from the daemon's style-target cache.
            fresh = np.clip(style.astype(np.int16) + rng.integers(-3, 4, style.shape), 0, 255)
            message, iteration = first_progress(
                client, content, fresh.astype(np.uint8), params, 60.0
            )
            times.append(message)
            passes.append(iteration)
    if not times:
        part.status = "over time"
        part.note = "skipped: over time (no timed job fitted after the warm-up)"
        return
    med = statistics.median(times)
    med_pass = statistics.median(passes)
    part.status = "ok"
    part.figures.update(
        {
            "first_progress_s": times,
            "median_s": med,
            "first_iteration_s": passes,
            "first_iteration_median_s": med_pass,
        }
    )
    part.judge(
        "median_s",
        f"warm submit -> first progress, median of {len(times)}",
        med,
        TARGET_FIRST_PROGRESS_S,
        f"{ms(med)} (min {ms(min(times))}, max {ms(max(times))})",
        "<= 50 ms",
        gpu,
    )
    part.row(
        "submit -> first iteration's progress (a VGG pass done), median",
        f"{ms(med_pass)} (min {ms(min(passes))}, max {ms(max(passes))})",
    )
    part.row(
        f"content {sz.fp_hw[1]}x{sz.fp_hw[0]}, style 512x512 (new each job), params {{}}",
        f"warm-up job's first progress {ms(warm)}",
    )


def rgba_layer(photo: np.ndarray, side: int, dtype: type, rng: np.random.Generator) -> np.ndarray:
    """A side x side RGBA layer: the photo in RGB (with noise in u16's low byte), random alpha."""
    rgb = fit_photo(photo, (side, side))
    if dtype is np.uint16:
        rgb16 = rgb.astype(np.uint16) * 257 + rng.integers(0, 256, rgb.shape, dtype=np.uint16)
        alpha16 = rng.integers(0, 65536, (side, side, 1), dtype=np.uint16)
        return np.concatenate([rgb16, alpha16], axis=2)
    alpha = rng.integers(0, 256, (side, side, 1), dtype=np.uint8)
    return np.concatenate([rgb, alpha], axis=2)


def part_e(part: Part, sz: Sizes, daemon: Daemon, limit: float, photo: np.ndarray) -> None:
    from nst_app.demo import PAINTINGS
    from nst_client.client import Client

    deadline = time.monotonic() + limit
    rng = np.random.default_rng(1)
    style = PAINTINGS["swirls"](256)
    side = sz.big
    all_ok = True
    with time_limit(limit), Client(daemon.endpoint, timeout_s=60.0) as client:
        for dtype in (np.uint8, np.uint16):
            name = np.dtype(dtype).name
            if dtype is np.uint16 and time.monotonic() > deadline - 0.5 * limit:
                part.row(f"{side}x{side} RGBA {name}, iterations 0", "skipped: over time")
                continue
            layer = rgba_layer(photo, side, dtype, rng)
            t0 = time.perf_counter()
            out = client.stylize(layer, [style], {"iterations": 0}, idle_timeout_s=120.0)
            took = time.perf_counter() - t0
            same = bool(out.dtype == layer.dtype and np.array_equal(out, layer))
            all_ok &= same
            mib = layer.nbytes / MIB
            part.figures[f"zero_{name}"] = {"s": took, "bit_exact": same, "mib": mib}
            part.row(
                f"{side}x{side} RGBA {name} ({mib:.0f} MiB), iterations 0, round trip",
                f"{took:.2f} s, {'bit-exact' if same else 'CHANGED'}",
            )
        if time.monotonic() > deadline - 5:
            part.row("real tiny job", "skipped: over time")
        else:
            layer = rgba_layer(photo, side, np.uint8, rng)
            params = {"iterations": 1, "size": sz.tiny_size}
            t0 = time.perf_counter()
            out = client.stylize(layer, [style], params, idle_timeout_s=120.0)
            took = time.perf_counter() - t0
            shape_ok = out.shape == layer.shape and out.dtype == layer.dtype
            alpha_ok = bool(shape_ok and np.array_equal(out[..., 3], layer[..., 3]))
            changed = bool(shape_ok and not np.array_equal(out[..., :3], layer[..., :3]))
            all_ok &= alpha_ok and changed
            part.figures["tiny_job"] = {
                "s": took,
                "params": params,
                "alpha_kept": alpha_ok,
                "rgb_changed": changed,
            }
            part.row(
                f"{side}x{side} RGBA u8, {params}, round trip",
                f"{took:.2f} s, alpha {'kept bit for bit' if alpha_ok else 'CHANGED'}, "
                f"RGB {'stylized' if changed else 'UNCHANGED'}",
            )
    part.status = "ok" if all_ok else "fail"


# --- the run ----------------------------------------------------------------------------------


def print_table(parts: list[Part], header: str) -> None:
    print()
    print(header)
    rows = [("part", "figure", "value", "target", "verdict")]
    for part in parts:
        if not part.rows or (part.note and part.status != "ok"):
            rows.append((part.key, part.title, part.note or part.status, "", ""))
        for row in part.rows:
            rows.append((part.key, row.what, row.value, row.target, row.verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="CPU, scaled down, even with a GPU")
    ap.add_argument(
        "--budget",
        type=float,
        help="seconds for the whole run (default 450 on CUDA, inside 8 minutes; 900 on CPU)",
    )
    ap.add_argument("--parts", default="abcde", help="which parts to run (default abcde)")
    ap.add_argument("--partial", help="write the JSON after each part to this file")
    add_metric_argument(ap)
    args = ap.parse_args()

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Stopped()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    import torch

    gpu = torch.cuda.is_available() and not args.cpu
    dev = "cuda" if gpu else "cpu"
    sz = GPU_SIZES if gpu else CPU_SIZES
    keys = [k for k in "abcde" if k in args.parts]
    if not keys:
        ap.error("--parts: name one or more of a, b, c, d, e")
    budget = Budget(args.budget or (450.0 if gpu else 900.0), keys)
    if gpu:
        name = torch.cuda.get_device_name(0)
        mode = f"CUDA ({name})"
    else:
        name = f"CPU, {os.cpu_count()} cores"
        why = "--cpu" if args.cpu else "no CUDA GPU"
        mode = f"CPU, scaled down ({why})"
    commit = git_commit()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]  # others' work on the machine makes every figure slower
    header = (
        f"gpu_check: {mode}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"commit {commit}; {date}; budget {budget.total_s:.0f} s; load average {load:.1f}"
    )
    print(header, flush=True)

    titles = {
        "a": f"{sz.lbfgs_its} L-BFGS iterations at {sz.lbfgs_px} px",
        "b": f"default job on a {sz.photo_hw[1]}x{sz.photo_hw[0]} photo",
        "c": f"{sz.big}x{sz.big} layer at full size in tiles",
        "d": "warm daemon: submit -> first progress",
        "e": f"{sz.big}x{sz.big} RGBA round trip through the daemon",
    }
    parts = {k: Part(k, titles[k]) for k in keys}
    result: dict[str, Any] = {
        "check": "gpu_check",
        "mode": "cuda" if gpu else "cpu-scaled",
        "device": name,
        "torch": torch.__version__,
        "commit": commit,
        "date": date,
        "budget_s": budget.total_s,
        "load_average_start": load,
        "complete": False,
    }

    def dump() -> dict[str, Any]:
        result["parts"] = {k: p.to_json() for k, p in parts.items()}
        result["wall_s"] = time.monotonic() - budget.start
        result["load_average_end"] = os.getloadavg()[0]
        verdicts = [
            t["pass"] for p in parts.values() for t in p.targets.values() if t["pass"] is not None
        ]
        result["targets_pass"] = all(verdicts) if verdicts and gpu else None
        if args.partial:
            Path(args.partial).write_text(json.dumps(result) + "\n")
        return result

    model: Any = None
    daemon: Daemon | None = None
    from nst_app.demo import photo as demo_photo

    photo = demo_photo("motorcycle_left")
    square = demo_photo("astronaut")
    try:
        model_error = ""
        if any(k in keys for k in "abc"):
            from nst_core.engine import load_model, stylize

            t0 = time.monotonic()
            limit = min(120.0, budget.left())
            try:
                with time_limit(limit):
                    model = load_model("caffe", dev)
                    # One tiny job: CUDA's context, cuDNN and any calibration are paid here.
                    warm = fit_photo(square, (sz.lbfgs_px, sz.lbfgs_px))
                    warm_params = {"size": sz.lbfgs_px, "iterations": 2, "device": dev}
                    stylize(warm, [warm], warm_params, model=model)
                result["model_load_and_warm_up_s"] = time.monotonic() - t0
                result["precision_auto"], how = precision_used(model)
                print(
                    f"model loaded and warm in {result['model_load_and_warm_up_s']:.1f} s; "
                    f"precision 'auto' = {how}",
                    flush=True,
                )
            except OverTime:
                model, model_error = None, f"skipped: over time (the model's load, {limit:.0f} s)"
            except Exception as exc:  # reported in parts a-c; the daemon parts still run
                model, model_error = None, f"error: no model: {type(exc).__name__}: {exc}"[:500]
            if model_error:
                print(model_error, flush=True)
        daemon_error = ""
        for i, key in enumerate(keys):
            part = parts[key]
            if key in "de" and daemon is None and not daemon_error:
                start_limit = budget.for_daemon_start(keys[i:])
                print(f"[-] starting nst-daemon (limit {start_limit:.0f} s) ...", flush=True)
                try:
                    if start_limit < 5:
                        raise OverTime()
                    with time_limit(max(start_limit, 1.0)):
                        daemon = Daemon(dev, max(start_limit - 1, 1.0))
                    result["daemon_start_s"] = daemon.start_s
                    print(f"[-] {daemon.ready_line} after {daemon.start_s:.1f} s", flush=True)
                except OverTime:
                    daemon_error = (
                        f"skipped: over time (the daemon's start, limit {start_limit:.0f} s)"
                    )
                except (RuntimeError, OSError) as exc:
                    daemon_error = f"error: no daemon: {exc}"[:500]
                if daemon_error:
                    print(f"[-] {daemon_error}", flush=True)
            if (key in "de" and daemon is None) or (key in "abc" and model is None):
                why = daemon_error if key in "de" else model_error
                part.status = "over time" if "over time" in why else "error"
                part.note = why
                dump()
                continue
            limit = budget.for_part(key, keys[i + 1 :])
            if limit < 5:
                part.status, part.note = "over time", "skipped: over time (no budget left)"
                print(f"[{key}] {part.title}: {part.note}", flush=True)
                dump()
                continue
            print(f"[{key}] {part.title} (limit {limit:.0f} s) ...", flush=True)
            start = time.monotonic()
            try:
                if key == "a":
                    part_a(part, sz, model, dev, gpu, limit, square)
                elif key == "b":
                    part_b(part, sz, model, dev, limit, photo, gpu, args.metric)
                elif key == "c":
                    part_c(part, sz, model, dev, gpu, limit, photo)
                elif key == "d":
                    assert daemon is not None
                    part_d(part, sz, gpu, daemon, limit, photo)
                else:
                    assert daemon is not None
                    part_e(part, sz, daemon, limit, photo)
            except OverTime:
                part.status = "over time"
                part.note = f"skipped: over time (limit {limit:.0f} s)"
            except Stopped:
                raise
            except Exception as exc:  # a part's failure is a figure too: report, go on
                part.status = "error"
                part.note = f"error: {type(exc).__name__}: {exc}"[:500]
            part.figures["part_s"] = time.monotonic() - start
            shown = "; ".join(f"{r.what}: {r.value} {r.verdict}".strip() for r in part.rows)
            print(f"[{key}] {part.status} in {part.figures['part_s']:.1f} s. {shown}", flush=True)
            if part.note:
                print(f"[{key}] {part.note}", flush=True)
            dump()
    except (Stopped, OverTime):
        for part in parts.values():
            if part.status == "skipped":
                part.status, part.note = "over time", "skipped: over time (the run was stopped)"
        print("stopped: the whole run's time is up", flush=True)
    finally:
        if daemon is not None:
            daemon.stop()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    result["complete"] = True
    final = dump()
    print_table(list(parts.values()), header)
    print(
        f"whole run {final['wall_s']:.0f} s (budget {budget.total_s:.0f} s); "
        f"load average at the end {final['load_average_end']:.1f}"
    )
    print(json.dumps(final), flush=True)
    failed = any(p.status != "ok" for p in parts.values())
    return 1 if failed or final["targets_pass"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
