"""Presets and time budgets on one layer: the plan, its first ETA, the wall time, the quality.

For each case it runs the engine in-process on one warm model and prints the plan, the ETA
the first progress report gave (before any work), the ETA after about a second, the real wall
time and their errors; with a budget, how far the wall time landed from it (the target is
within 20 %); and the style/content figures of ../shared/tools/quality_metric.py
(--quality-metric PATH). Usage:

    python bench/bench_planner.py                       # presets + budgets, 1024x768 photo
    python bench/bench_planner.py --cases normal 30 --layer 3000x2000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from quality import add_metric_argument

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["draft", "normal", "15", "30", "60"])
    ap.add_argument("--layer", default="1024x768", help="WxH the photo is resized to")
    ap.add_argument("--pair", default="astronaut:swirls", metavar="PHOTO:PAINTING")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "planner"))
    add_metric_argument(ap)
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    from nst_client.params import make_params
    from nst_core import calibrate, demo
    from nst_core.engine import load_model, stylize
    from nst_core.plan import make_plan

    width, height = (int(v) for v in args.layer.split("x"))
    photo, painting = args.pair.split(":")
    content = np.asarray(
        Image.fromarray(demo.photo(photo)).resize((width, height), Image.Resampling.LANCZOS)
    )
    style = demo.PAINTINGS[painting](512)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    content_path, style_path = out / "content.png", out / "style.png"
    Image.fromarray(content).save(content_path)
    Image.fromarray(style).save(style_path)
    model = load_model("caffe", "auto")
    print(f"device {model.device}; {calibrate.profile(model).words()}")
    print(f"layer {width}x{height}, {args.pair}\n")
    print("| case | plan | first ETA s | ETA at 1 s | wall s | ETA error | budget error |")
    print("|---|---|---|---|---|---|---|")
    paths = []
    for case in args.cases:
        params: dict[str, object] = (
            {"quality": case}
            if not case.replace(".", "").isdigit()
            else {"time_budget": float(case)}
        )
        plan = make_plan((height, width), make_params(params), calibrate.profile(model).speed)
        seen: list = []
        start = time.monotonic()
        result = stylize(content, [style], params, progress=seen.append, model=model)
        wall = time.monotonic() - start
        first = seen[0].eta_s
        later = next((p for p in seen if p.elapsed_s >= 1.0), seen[-1])
        at_1s = later.elapsed_s + later.eta_s
        budget = params.get("time_budget")
        budget_error = f"{(wall - budget) / budget:+.0%}" if isinstance(budget, float) else ""
        print(
            f"| {case} | {plan.describe()} | {first:.1f} | {at_1s:.1f} | {wall:.1f} "
            f"| {(first - wall) / wall:+.0%} | {budget_error} |",
            flush=True,
        )
        path = out / f"{case}.png"
        Image.fromarray(result).save(path)
        paths.append(path)
    if args.metric.exists():
        proc = subprocess.run(
            [
                sys.executable,
                str(args.metric),
                str(content_path),
                str(style_path),
                *map(str, paths),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        print("\nquality (style: 1 = none, lower = more; content: 0 = unchanged)")
        for case, line in zip(args.cases, proc.stdout.splitlines(), strict=True):
            print(f"  {case}: {line.split(chr(9), 1)[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
