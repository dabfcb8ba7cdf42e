"""What this device does fastest, measured once per model: precision, memory layout, speed.

Why measure: CPU flags do not say which arithmetic is fast (an AVX512-BF16 CPU without AMX
runs bf16 VGG passes 1.6x faster than fp32, while `auto` used to trust AMX alone), and the
planner needs seconds per megapixel to size a job and give an honest ETA from the first
second. So at model load (the daemon's warm-up, or an in-process run's first job) each
candidate precision runs a VGG-19 forward + backward at a fixed size; the fastest whose cost
and gradient stay within tolerance of fp32 wins, and two sizes of the winner give the speed.
A profile is kept per model in memory and on disk (keyed by device, torch, threads), so a
restarted daemon starts at once; each job's observed speed then refines it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial, wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import torch

from nst_client.engine_words import precision_words
from nst_client.params import STYLE_LAYERS

from . import costs
from .plan import Speed
from .vgg import VGGFeatures

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: A precision is kept only if its cost is within this relative error of fp32's ...
COST_TOLERANCE = 0.01
#: ... and its gradient points the same way (cosine similarity at least this).
GRADIENT_TOLERANCE = 0.99
#: A candidate this many times slower than fp32 on a small probe is not measured in full: a
#: CPU without native bf16 emulates it 25-40x slower (measured on an AMD EPYC without AVX512:
#: the whole measurement took 113 s with bf16 timed in full, 7.8 s with the probe).
PROBE_SLOWER = 2.0
#: channels_last is kept only if it is at least this much faster.
LAYOUT_GAIN = 1.05
#: How much a job's observed speed moves the profile's (exponential average).
OBSERVED_WEIGHT = 0.5
#: Bump when what is measured changes, so old cached profiles are measured again.
FORMAT = 4

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Profile:
    """What calibration chose and measured on one device."""

    device: str
    precision: str
    channels_last: bool
    speed: Speed
    #: Seconds of one forward + backward at `size` x `size`, per precision tried.
    measured: dict[str, float] = field(default_factory=dict)
    #: Why a precision was not kept (too far from fp32, not finite), per precision.
    rejected: dict[str, str] = field(default_factory=dict)
    size: int = 0

    @property
    def autocast(self) -> torch.dtype | None:
        """The autocast dtype for the VGG passes, None for plain fp32."""
        return None if self.precision == "fp32" else DTYPES[self.precision]

    def to_message(self) -> dict[str, Any]:
        """The `profile` of welcome/status (docs/protocol.md)."""
        return {
            "precision": self.precision,
            "channels_last": self.channels_last,
            "s_per_mpix": round(self.speed.s_per_mpix, 4),
            "measured": {k: round(v, 4) for k, v in self.measured.items()},
            "size": self.size,
        }

    def words(self) -> str:
        """'bf16 (measured fp32 0.51 s, bf16 0.29 s per 256 px pass)'."""
        return precision_words(self.to_message()) or self.precision


def candidates(device: torch.device) -> list[str]:
    """The precisions worth trying on a device, fp32 (the reference) first."""
    if device.type == "cuda":
        out = ["fp32", "fp16"]
        if torch.cuda.is_bf16_supported():
            out.append("bf16")
        return out
    if device.type == "cpu":
        return ["fp32", "bf16"]
    return ["fp32"]  # mps: autocast support varies by release; fp32 is always right


def calibration_size(device: torch.device) -> int:
    """The measuring size: large enough to be dominated by the convolutions, small enough to
    take about a second on a 2-core CPU."""
    return 256 if device.type == "cpu" else 512


def second_size(device: torch.device) -> int:
    """The other size the chosen precision is timed at, for the speed's two parts. On a CPU
    the larger one, where the plans' last scales run: whatever grows faster than the pixels
    there (caches, memory-bound work) is then in the measured speed, not extrapolated from
    small passes (a line through 128 and 256 px once predicted a 512 px job 15 % short)."""
    return 512 if device.type == "cpu" else 256


def _pass(
    model: VGGFeatures, x: torch.Tensor, dtype: torch.dtype | None, layout: bool
) -> tuple[float, torch.Tensor]:
    """One evaluation of the engine's kind of cost (a content term on relu4_2, a Gram term on
    each style layer, from the pass's activations as it made them): its value and input
    gradient. The same work as a job's evaluation, so its time is what the planner should
    predict with (a mean of squares on every layer measured 15 % slower than a job's
    passes)."""
    x = x.detach().requires_grad_(True)
    inp = x.contiguous(memory_format=torch.channels_last) if layout else x
    with torch.autocast(model.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        feats = model(inp, ["relu4_2", *STYLE_LAYERS], "max")
    content = feats["relu4_2"]
    cost = costs.content_cost(torch.zeros_like(content), content)
    for name in STYLE_LAYERS:
        a = feats[name]
        zero = torch.zeros((a.shape[1], a.shape[1]), device=a.device)
        cost = cost + costs.layer_style_cost_from_target(zero, a)
    (grad,) = torch.autograd.grad(cost, x)
    return float(cost.detach()), grad


def _timed(run: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """The best of `repeats` timings of run() after one untimed warm-up."""
    run()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def flushing_subnormals(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run `fn` with the calling thread flushing subnormal floats to zero, then put the flag
    back as it was. Subnormals (late L-BFGS iterations make them) run 2-4x slower on x86 CPUs
    and flushing them changes no visible pixel. The flag is per thread, and a new thread
    inherits its creator's, so it is set around each job or measurement, on whatever thread
    runs it, and the caller's thread is left as it was."""

    @wraps(fn)
    def flushing(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        probe = torch.tensor([1e-39])
        was = float(probe * 1.0) == 0.0
        torch.set_flush_denormal(True)
        try:
            return fn(*args, **kwargs)
        finally:
            if not was:
                torch.set_flush_denormal(False)

    return flushing


@flushing_subnormals
def measure(model: VGGFeatures, size: int | None = None) -> Profile:
    """Time each candidate precision (and channels_last for the winner) on this model."""
    device = model.device
    size = size or calibration_size(device)
    # Best of 2 on a CPU: single passes took 0.64-1.13 s here within one hour (one ETA 40 % off).
    repeats = 2 if device.type == "cpu" else 5
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((1, 3, size, size), generator=gen).to(device)
    probe = x[..., : size // 4, : size // 4]
    measured: dict[str, float] = {}
    rejected: dict[str, str] = {}
    reference: tuple[float, torch.Tensor] | None = None
    probe_fp32 = 0.0
    for name in candidates(device):
        dtype = None if name == "fp32" else DTYPES[name]
        try:
            if reference is not None:
                t = _timed(partial(_pass, model, probe, dtype, False), device, 1)
                if t > PROBE_SLOWER * probe_fp32:
                    side = probe.shape[-1]
                    rejected[name] = f"{t / probe_fp32:.1f}x slower than fp32 at {side} px"
                    continue
            cost, grad = _pass(model, x, dtype, False)
        except RuntimeError as exc:  # an autocast dtype this build cannot run
            rejected[name] = f"cannot run: {exc}"
            continue
        if reference is None:
            reference = (cost, grad)
            probe_fp32 = _timed(partial(_pass, model, probe, None, False), device, repeats)
        elif why := _off(reference, cost, grad):
            rejected[name] = why
            continue
        measured[name] = _timed(partial(_pass, model, x, dtype, False), device, repeats)
    precision = min(measured, key=measured.__getitem__)
    dtype = None if precision == "fp32" else DTYPES[precision]
    channels_last = False
    if device.type != "cpu":  # measured on the 2-core CPU: within noise, so not tried there
        model.to(memory_format=torch.channels_last)
        t = _timed(lambda: _pass(model, x, dtype, True), device, repeats)
        channels_last = t * LAYOUT_GAIN < measured[precision]
        if not channels_last:
            model.to(memory_format=torch.contiguous_format)
    # A second size separates the fixed cost of a pass from its cost per pixel.
    side = second_size(device)
    other = torch.rand((1, 3, side, side), generator=gen).to(device)
    t_other = _timed(lambda: _pass(model, other, dtype, channels_last), device, repeats)
    (small, t_small), (big, t_big) = sorted([(size, measured[precision]), (side, t_other)])
    mpix_big, mpix_small = big * big / 1e6, small * small / 1e6
    per_mpix = max((t_big - t_small) / (mpix_big - mpix_small), 1e-6)
    fixed = max(t_small - per_mpix * mpix_small, 0.0)
    return Profile(
        str(device), precision, channels_last, Speed(per_mpix, fixed), measured, rejected, size
    )


def _off(reference: tuple[float, torch.Tensor], cost: float, grad: torch.Tensor) -> str:
    """Why (cost, grad) is too far from fp32's reference; '' when within tolerance."""
    ref_cost, ref_grad = reference
    if not torch.isfinite(grad).all() or cost != cost:
        return "not finite"
    error = abs(cost - ref_cost) / max(abs(ref_cost), 1e-12)
    if error > COST_TOLERANCE:
        return f"cost {error:.2%} off fp32's"
    cosine = float(
        torch.nn.functional.cosine_similarity(grad.flatten().float(), ref_grad.flatten(), dim=0)
    )
    if cosine < GRADIENT_TOLERANCE:
        return f"gradient cosine {cosine:.4f} to fp32's"
    return ""


# --- kept per model, in memory and on disk -------------------------------------------------

_PROFILES: dict[int, Profile] = {}
_LOCK = threading.Lock()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nst"


def _machine_key(model: VGGFeatures) -> str:
    """What a measurement depends on: the device, the CPU, torch and its threads."""
    device = model.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    parts = (FORMAT, str(device), name, cpu, torch.__version__, torch.get_num_threads())
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def _load(path: Path) -> Profile | None:
    try:
        data = json.loads(path.read_text())
        data["speed"] = Speed(**data["speed"])
        return Profile(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None  # absent or unreadable: measure again


def _save(path: Path, profile: Profile) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(profile)))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs the next start a measurement


def profile(model: VGGFeatures, *, use_disk: bool = True) -> Profile:
    """The model's profile: from memory, else from the disk cache, else measured (and saved)."""
    with _LOCK:
        found = _PROFILES.get(id(model))
        if found is not None:
            return found
        path = _path(model)
        found = _load(path) if use_disk else None
        if found is None:
            found = measure(model)
            if use_disk:
                _save(path, found)
        elif found.channels_last:
            model.to(memory_format=torch.channels_last)
        _PROFILES[id(model)] = found
        return found


def speed_for(model: VGGFeatures, precision: str) -> Speed:
    """The model's speed in `precision` ("auto": the chosen one), scaled from the chosen
    precision's by their measured times; a precision not measured is taken as fp32's."""
    found = profile(model)
    if precision == "auto" or precision == found.precision:
        return found.speed
    chosen = found.measured.get(found.precision)
    other = found.measured.get(precision, found.measured.get("fp32"))
    if not chosen or not other:
        return found.speed
    return found.speed.scaled(other / chosen)


def observe(model: VGGFeatures, speed: Speed) -> None:
    """Move the model's speed toward what a job observed, in memory and on disk: the next
    plan predicts better, and a profile measured on a busy machine does not stay wrong."""
    with _LOCK:
        current = _PROFILES.get(id(model))
        if current is None:
            return
        w = OBSERVED_WEIGHT
        mixed = Speed(
            (1 - w) * current.speed.s_per_mpix + w * speed.s_per_mpix,
            (1 - w) * current.speed.s_fixed + w * speed.s_fixed,
        )
        _PROFILES[id(model)] = replace(current, speed=mixed)
        _save(_path(model), _PROFILES[id(model)])


def _path(model: VGGFeatures) -> Path:
    return cache_dir() / f"profile-{_machine_key(model)}.json"
