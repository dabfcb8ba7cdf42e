"""Engine benchmark: seconds per iteration and peak memory, ours vs pastiche, same settings.

Both run as fresh subprocesses on the same content/style files, single scale, L-BFGS, same
size and iteration count, so the ratio compares like with like. Prints a table; a GPU adds
1024 px. Usage: python bench/bench_engine.py [--sizes 256 512] [--iterations 6] [--device cpu]

With --presets it instead runs the planner's presets (and --budget time budgets) on one
content/style pair in this process (one warm model), beside the old default schedule
(`{"size": 512, "iterations": 300}`: 3 scales x 300 iterations, fp32, bicubic upscale) in the
same run: wall time, the plan, and the quality figures of ../shared/tools/quality_metric.py
(--quality-metric PATH) for each:

    python bench/bench_engine.py --presets                    # draft, normal, final
    python bench/bench_engine.py --presets normal --budget 30 60
    python bench/bench_engine.py --presets --old-iterations 30 --photo-size 256x192  # quick
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from quality import add_metric_argument, measure

PEAK_PREFIX = "PEAK_RSS_KIB="
#: Runs a module as __main__ and reports the process's own peak RSS on stderr at exit.
WRAPPER = f"""
import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name='__main__')
finally:
    print('{PEAK_PREFIX}%d' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
          file=sys.stderr)
"""


def _peak_mib(stderr: str) -> float:
    return int(re.findall(PEAK_PREFIX + r"(\d+)", stderr)[-1]) / 1024.0


def run_ours(
    content: Path,
    style: Path,
    size: int,
    iterations: int,
    device: str,
    tile_size: int = 8192,
    precision: str = "auto",
) -> dict:
    code = f"""
import json, time, torch
import numpy as np
from nst_core.engine import load_model, stylize
from nst_core.imageio import read_image
t0 = time.monotonic()
model = load_model('caffe', {device!r})
t_load = time.monotonic() - t0
from nst_core import calibrate
chosen = calibrate.profile(model).precision if {precision!r} == 'auto' else {precision!r}
stamps = []
stylize(read_image({str(content)!r}), [read_image({str(style)!r})],
        {{'size': {size}, 'iterations': {iterations}, 'min_scale': {size}, 'device': {device!r},
          'tile_size': {tile_size}, 'precision': {precision!r}}},
        # Passes only: the plan's report at iteration 0 comes before any.
        progress=lambda p: stamps.append(time.monotonic()) if p.iteration >= 1 else None,
        model=model)
cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
print(json.dumps({{'load_s': t_load, 'stamps': stamps, 'cuda_mib': cuda, 'precision': chosen}}))
"""
    script = Path(tempfile.mkdtemp(prefix="nst-bench-")) / "nst_bench_ours.py"
    script.write_text(code)
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, "nst_bench_ours"],
        capture_output=True,
        text=True,
        check=True,
        cwd=script.parent,
    )
    wall = time.monotonic() - start
    data = json.loads(out.stdout.strip().splitlines()[-1])
    stamps = data["stamps"]
    per_it = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return {
        "s_per_it": per_it,
        "wall_s": wall,
        "peak_mib": _peak_mib(out.stderr),
        "cuda_mib": data["cuda_mib"],
        "precision": data["precision"],
    }


def run_pastiche(
    content: Path, style: Path, size: int, iterations: int, device: str, out: Path
) -> dict:
    cmd = [
        sys.executable,
        "-c",
        WRAPPER,
        "pastiche",
        "--content",
        str(content),
        "--styles",
        str(style),
        "--output",
        str(out),
        "--size",
        str(size),
        "--style-size",
        str(size),
        "--num-steps",
        str(iterations),
        "--info-step",
        "1",
        "--device",
        device,
        "--seed",
        "0",
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.monotonic() - start
    steps = [
        (int(m.group(1)), float(m.group(2)))
        for m in re.finditer(r"^(\d+)\s+([\d.]+)\s", proc.stdout, re.M)
    ]
    elapsed = dict(steps)
    per_it = (elapsed[iterations] - elapsed[1]) / (iterations - 1)
    return {"s_per_it": per_it, "wall_s": wall, "peak_mib": _peak_mib(proc.stderr)}


def fit_photo(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """rgb centre-cropped to hw's aspect ratio, then resized to hw (bicubic)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    want = hw[1] / hw[0]
    if w / h > want:
        cw = round(h * want)
        rgb = rgb[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = round(w / want)
        rgb = rgb[(h - ch) // 2 : (h - ch) // 2 + ch]
    img = Image.fromarray(np.ascontiguousarray(rgb))
    return np.asarray(img.resize((hw[1], hw[0]), Image.Resampling.BICUBIC))


def run_presets(args: argparse.Namespace) -> None:
    """The planner's presets and time budgets beside the old default schedule, one run."""
    import torch

    from nst_app.demo import PAINTINGS, photo
    from nst_client.params import QUALITY_PRESETS, make_params
    from nst_core import calibrate
    from nst_core.engine import load_model, stylize
    from nst_core.imageio import write_image
    from nst_core.plan import make_plan

    w, h = (int(v) for v in args.photo_size.lower().split("x"))
    content = fit_photo(photo(args.photo), (h, w))
    style = PAINTINGS[args.painting](512)
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="nst-bench-presets-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    content_path, style_path = out_dir / "content.png", out_dir / "style.png"
    write_image(content_path, content)
    write_image(style_path, style)

    model = load_model("caffe", args.device)
    t0 = time.monotonic()
    profile = calibrate.profile(model)
    # A tiny job first: whatever a first call pays (allocations, kernels) is not in a figure.
    warm = {"iterations": 2, "size": 64, "device": args.device}
    stylize(content[:64, :64], [style[:64, :64]], warm, model=model)
    # Today's default job as it ran before the planner: fixed schedule, fp32 (what `auto`
    # picked on a CPU without AMX), the result upscaled bicubically to the layer.
    old_params = {
        "size": args.old_size,
        "iterations": args.old_iterations,
        "precision": "fp32",
        "restore_detail": False,
    }
    runs: list[tuple[str, dict[str, Any]]] = [
        (f"old default ({args.old_size} px, {args.old_iterations}/scale, fp32)", old_params)
    ]
    for preset in args.presets or QUALITY_PRESETS:
        runs.append((preset, {"quality": preset}))
    for budget in args.budget:
        runs.append((f"budget {budget:g} s", {"time_budget": budget}))
    print(
        f"device={model.device} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"photo={args.photo} {w}x{h} painting={args.painting}; calibration and warm-up "
        f"{time.monotonic() - t0:.1f} s: precision 'auto' = {profile.words()}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    for name, params in runs:
        params = {**params, "device": args.device}
        plan = make_plan((h, w), make_params(params), profile.speed)
        start = time.monotonic()
        out = stylize(content, [style], params, model=model)
        wall = time.monotonic() - start
        path = out_dir / f"{name.split(' (')[0].replace(' ', '-')}.png"
        write_image(path, out)
        rows.append({"name": name, "wall": wall, "plan": plan, "path": path, "params": params})
        print(f"  {name}: {wall:.1f} s; {plan.describe()}", flush=True)
    metric: Path = args.metric
    if metric.is_file():
        figures = measure(metric, content_path, style_path, [r["path"] for r in rows])
    else:
        print(f"(no {metric}: quality figures skipped)")
        figures = [(math.nan, math.nan)] * len(rows)
    old_wall = rows[0]["wall"]
    old_style, old_content = figures[0]
    print(
        f"\n{'run':<36} {'wall s':>7} {'style':>7} {'content':>8} {'old default':>12}  "
        f"{'as good as old':<32} plan"
    )
    for row, (st, ct) in zip(rows, figures, strict=True):
        if row is rows[0]:
            side, good = f"{old_wall:.1f} s", "(the reference)"
        else:
            ratio = old_wall / row["wall"]
            side = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            verdicts = []
            if st > old_style:
                verdicts.append(f"style {st / old_style - 1:+.0%}")
            if ct > old_content:
                verdicts.append(f"content {ct / old_content - 1:+.0%}")
            good = "no: " + ", ".join(verdicts) if verdicts else "yes"
            if math.isnan(st):
                good = "?"
        budget = row["params"].get("time_budget")
        if budget:
            good += f"; budget {'kept' if abs(row['wall'] / budget - 1) <= 0.2 else 'MISSED'}"
            good += f" ({row['wall'] / budget - 1:+.0%})"
        print(
            f"{row['name']:<36} {row['wall']:>7.1f} {st:>7.4f} {ct:>8.4f} {side:>12}  "
            f"{good:<32} {row['plan'].describe()}"
        )
    print(
        "style: 1 = no style, lower = more; content: 0 = unchanged, lower = closer (both by "
        "an independent VGG-19 at 512 px). 'as good as old': style and content figures both "
        "at most the old default's. The old default's wall time is what it took to reach its "
        f"figures. Images in {out_dir}."
    )


def main() -> None:
    import torch
    from PIL import Image

    from nst_app.demo import default_content, swirls
    from nst_core.imageio import write_image
    from nst_core.plan import tile_spans

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--big", type=int, default=1024, help="large-layer side for the memory run")
    parser.add_argument("--tile", type=int, default=512, help="tile size for the memory run")
    presets = parser.add_argument_group("the planner's presets (instead of the comparison above)")
    presets.add_argument(
        "--presets",
        nargs="*",
        metavar="PRESET",
        help="run these presets (none named: draft normal final) beside the old default",
    )
    presets.add_argument(
        "--budget", type=float, nargs="+", default=[], help="also run these time budgets (s)"
    )
    presets.add_argument("--photo", default="motorcycle_left", help="nst_app.demo.photo name")
    presets.add_argument("--photo-size", default="1024x768", help="WxH the photo is fitted to")
    presets.add_argument("--painting", default="swirls", help="nst_app.demo.PAINTINGS name")
    presets.add_argument(
        "--old-iterations", type=int, default=300, help="the old default's iterations per scale"
    )
    presets.add_argument("--old-size", type=int, default=512, help="the old default's size")
    add_metric_argument(presets)
    presets.add_argument("--out", help="keep the images here (default: a temporary folder)")
    args = parser.parse_args()
    if args.presets is not None or args.budget:
        run_presets(args)
        return
    sizes = args.sizes or ([256, 512, 1024] if args.device == "cuda" else [256, 512])
    tmp = Path(tempfile.mkdtemp(prefix="nst-bench-"))
    content, style = tmp / "content.png", tmp / "style.png"
    photo = default_content()
    write_image(content, np.asarray(photo))
    write_image(style, swirls(512))
    print(
        f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"iterations={args.iterations} (L-BFGS, single scale, same files)"
    )
    print("precision 'auto' = what nst_core.calibrate measured fastest; pastiche runs fp32")
    print(
        f"{'size':>5} {'precision':>9} {'ours s/it':>10} {'pastiche s/it':>14} {'speed-up':>9} "
        f"{'ours peak MiB':>14} {'pastiche peak MiB':>18} {'mem ratio':>9}"
    )
    for size in sizes:
        theirs = run_pastiche(
            content, style, size, args.iterations, args.device, tmp / f"p{size}.png"
        )
        for precision in ("fp32", "auto"):
            ours = run_ours(content, style, size, args.iterations, args.device, precision=precision)
            label = precision if precision == "fp32" else f"auto={ours['precision']}"
            print(
                f"{size:>5} {label:>9} {ours['s_per_it']:>10.3f} "
                f"{theirs['s_per_it']:>14.3f} {theirs['s_per_it'] / ours['s_per_it']:>8.2f}x "
                f"{ours['peak_mib']:>14.0f} {theirs['peak_mib']:>18.0f} "
                f"{ours['peak_mib'] / theirs['peak_mib']:>8.2f}x"
                + (f"  (ours CUDA peak {ours['cuda_mib']:.0f} MiB)" if ours["cuda_mib"] else ""),
                flush=True,
            )
    print("peak MiB: each process's own max RSS (weights, torch and activations).")

    # Memory bound on a large layer: one full-size L-BFGS iteration, whole vs tiled.
    big = args.big
    write_image(
        content, np.asarray(Image.fromarray(photo).resize((big, big), Image.Resampling.BICUBIC))
    )
    print(f"\nlarge layer {big}x{big}, full size, 1 iteration: whole image vs tiles")
    print(f"{'tile_size':>9} {'tiles':>5} {'wall s':>7} {'peak MiB':>9}")
    for tile in (8192, args.tile):
        r = run_ours(content, style, big, 2, args.device, tile_size=tile)
        tiles = len(tile_spans(big, tile)) ** 2
        print(
            f"{tile if tile < big else 'none':>9} {tiles:>5} {r['wall_s']:>7.1f} "
            f"{r['peak_mib']:>9.0f}"
            + (f"  (CUDA peak {r['cuda_mib']:.0f} MiB)" if r["cuda_mib"] else ""),
            flush=True,
        )


if __name__ == "__main__":
    main()
