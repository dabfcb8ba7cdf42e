"""Precision, memory layout and torch.compile: seconds per VGG-19 pass, and what calibration picks.

One forward + backward of the engine's cost layers (relu4_2 + relu1_1..relu5_1) per timing,
the best of --repeats after a warm-up, each variant interleaved in one process so a noisy
machine affects them alike. torch.compile is timed with its compile time, and the number of
passes after which it pays back in a warm daemon is printed. Usage:

    python bench/bench_precision.py [--sizes 256 512] [--compile] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import torch

from nst_client.params import STYLE_LAYERS
from nst_core import calibrate
from nst_core.engine import load_model
from nst_core.vgg import VGGFeatures

LAYERS = ["relu4_2", *STYLE_LAYERS]


def step(
    forward: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    x: torch.Tensor,
    dtype: torch.dtype | None,
    channels_last: bool,
) -> None:
    x = x.detach().requires_grad_(True)
    inp = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        feats = forward(inp)
    cost = sum((a.float() ** 2).mean() for a in feats.values())
    assert isinstance(cost, torch.Tensor)
    torch.autograd.grad(cost, x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()


def best_of(run: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = ap.parse_args()
    model = load_model("caffe", args.device)
    device = model.device
    prof = calibrate.measure(model)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"calibration picks: {prof.words()}; channels_last {prof.channels_last}")
    print(f"  speed: {prof.speed.s_per_mpix:.3g} s per megapixel + {prof.speed.s_fixed:.3g} s")
    dtypes = {n: calibrate.DTYPES[n] for n in calibrate.candidates(device)}

    def plain(x: torch.Tensor, m: VGGFeatures = model) -> dict[str, torch.Tensor]:
        return m(x, LAYERS, "max")

    print("\n| size | variant | s per pass | vs fp32 |")
    print("|---|---|---|---|")
    for size in args.sizes:
        x = torch.rand(1, 3, size, size, device=device)
        variants: dict[str, Callable[[], None]] = {}
        for name, dtype in dtypes.items():
            d = None if name == "fp32" else dtype
            variants[name] = partial(step, plain, x, d, False)
            variants[f"{name} channels_last"] = partial(step, plain, x, d, True)
        timings = {name: 0.0 for name in variants}
        for name, run in variants.items():  # warm-up, then interleaved rounds
            if "channels_last" in name:
                model.to(memory_format=torch.channels_last)
            run()
            model.to(memory_format=torch.contiguous_format)
        for _ in range(args.repeats):
            for name, run in variants.items():
                if "channels_last" in name:
                    model.to(memory_format=torch.channels_last)
                t = best_of(run, 1)
                model.to(memory_format=torch.contiguous_format)
                timings[name] = t if not timings[name] else min(timings[name], t)
        for name, t in timings.items():
            print(f"| {size} | {name} | {t:.3f} | {timings['fp32'] / t:.2f}x |")
        if args.compile:
            best = min(dtypes, key=lambda n: timings[n])
            d = None if best == "fp32" else dtypes[best]
            compiled = torch.compile(plain, dynamic=False)
            start = time.perf_counter()
            step(compiled, x, d, False)
            compile_s = time.perf_counter() - start
            t = best_of(partial(step, compiled, x, d, False), args.repeats)
            gain = timings[best] - t
            pays = f"after {compile_s / gain:.0f} passes" if gain > 0 else "never"
            print(
                f"| {size} | {best} torch.compile | {t:.3f} (compile {compile_s:.1f} s, "
                f"pays back {pays} at this size) | {timings['fp32'] / t:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
