"""Presets from outside, old head against new: wall time, the first ETA and its error, passes,
the time breakdown and the style/content figures, on the same machine in one run.

Each job is `nst stylize CONTENT STYLE -o OUT --quality PRESET --verbose` in a fresh process,
as an artist's script runs it, for each source tree: this checkout ("new") and, with
--baseline REV, that commit exported from git ("old"). A "cold" profile is an empty cache
folder (the process measures the device first); "warm" keeps each tree's cache folder from
its earlier jobs (one untimed job warms it first). The first ETA is the plan's "about N s",
printed before the first pass; its error is against the job's own time, from that line to the
process's end (the whole process's wall time is printed beside it). Passes are the plan's
VGG-19 evaluations. The figures come from ../shared/tools/quality_metric.py on each result
(1 = no style, lower = more; 0 = content unchanged), averaged over the pairs. Usage:

    python bench/bench_planner.py --baseline HEAD~3                  # the table in the docs
    python bench/bench_planner.py --presets draft --layers 640x480 2048x1536 --profiles cold
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from quality import add_metric_argument, measure

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ["astronaut:swirls", "coffee:bands", "chelsea:strokes"]
PLAN_LINE = re.compile(r"^plan: .*about (\d+) s")
STEP = re.compile(r"(\d+)x(\d+):(\d+)(?:x(\d+) tiles)?")
BREAKDOWN_LINE = re.compile(r"^  (.+?)\s+([\d.]+) s\s+\d+%")


@dataclass
class Job:
    """One run of the command and what it printed."""

    tree: str
    preset: str
    layer: str
    profile: str
    pair: str
    wall_s: float = 0.0
    job_s: float = 0.0
    eta_s: float = 0.0
    passes: int = 0
    breakdown: dict[str, float] = field(default_factory=dict)
    output: Path = Path()
    figures: tuple[float, float] | None = None

    @property
    def eta_error(self) -> float:
        return (self.eta_s - self.job_s) / self.job_s


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", metavar="REV", help="also run this git revision as 'old'")
    ap.add_argument("--presets", nargs="+", default=["draft", "normal", "final"])
    ap.add_argument("--layers", nargs="+", default=["1024x768"], metavar="WxH")
    ap.add_argument("--profiles", nargs="+", default=["warm"], choices=("cold", "warm"))
    ap.add_argument("--pairs", nargs="+", default=PAIRS, metavar="PHOTO:PAINTING")
    ap.add_argument(
        "--pairs-at",
        default="1024x768",
        metavar="WxH",
        help="the layer size every pair runs at (other sizes run the first pair only)",
    )
    ap.add_argument("--old-presets", nargs="+", help="the presets the baseline runs (default all)")
    ap.add_argument(
        "--style-weight",
        type=float,
        help="run every job at this style weight (beta), so trees whose strength scales differ "
        "are compared at the same weight (default: each tree's own default strength)",
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "planner"))
    add_metric_argument(ap)
    return ap.parse_args()


def export_tree(rev: str, into: Path) -> Path:
    """The files of `rev` (git archive) in `into`: a source tree for PYTHONPATH."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def write_inputs(pairs: list[str], layers: list[str], out: Path) -> dict[tuple[str, str], Path]:
    """The photos at each layer size and the paintings, as files for the command."""
    sys.path.insert(0, str(ROOT))
    from nst_app import demo

    paths: dict[tuple[str, str], Path] = {}
    for pair in pairs:
        photo, painting = pair.split(":")
        style = out / f"style-{painting}.png"
        Image.fromarray(demo.PAINTINGS[painting](512)).save(style)
        paths[("style", painting)] = style
        for layer in layers:
            width, height = (int(v) for v in layer.split("x"))
            image = Image.fromarray(demo.photo(photo)).resize(
                (width, height), Image.Resampling.LANCZOS
            )
            path = out / f"photo-{photo}-{layer}.png"
            image.save(path)
            paths[(photo, layer)] = path
    return paths


def run_job(
    job: Job,
    tree: Path,
    cache: Path,
    content: Path,
    style: Path,
    out: Path,
    extra: tuple[str, ...] = (),
) -> Job:
    """The command in a fresh process; the plan line's time and the end are noted as they
    come (the job's own time is between them)."""
    job.output = out / f"{job.tree}-{job.preset}-{job.layer}-{job.profile}-{job.pair}.png".replace(
        ":", "_"
    )
    env = dict(os.environ, PYTHONPATH=str(tree), XDG_CACHE_HOME=str(cache))
    command = [
        sys.executable,
        "-c",
        "import sys; from nst_app.cli import main; sys.exit(main())",
        "stylize",
        str(content),
        str(style),
        "-o",
        str(job.output),
        "--quality",
        job.preset,
        *extra,
    ]
    verbose = (tree / "nst_core" / "breakdown.py").is_file()
    if verbose:
        command.append("--verbose")
    start = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=tree, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    planned_at = None
    lines = []
    for raw in proc.stderr:
        for line in raw.split("\r"):
            lines.append(line.rstrip("\n"))
            found = PLAN_LINE.match(line)
            if found and planned_at is None:
                planned_at = time.monotonic()
                job.eta_s = float(found.group(1))
                job.passes = sum(
                    int(n) * int(t or 1) for _w, _h, n, t in STEP.findall(line.split(":", 1)[1])
                )
            if m := BREAKDOWN_LINE.match(line):
                job.breakdown[m.group(1).strip()] = float(m.group(2))
    if proc.wait() != 0 or planned_at is None:
        raise RuntimeError(f"{' '.join(command)} failed:\n" + "\n".join(lines[-20:]))
    end = time.monotonic()
    job.wall_s, job.job_s = end - start, end - planned_at
    return job


def main() -> int:
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    layers = sorted(set(args.layers) | {args.pairs_at})
    inputs = write_inputs(args.pairs, layers, out)
    work = Path(tempfile.mkdtemp(prefix="bench-planner-"))
    trees = {"new": ROOT}
    if args.baseline:
        trees = {"old": export_tree(args.baseline, work / "old"), "new": ROOT}
    extra = () if args.style_weight is None else ("--style-weight", str(args.style_weight))
    jobs: list[Job] = []
    try:
        if "warm" in args.profiles:  # one untimed job gives each tree's cache its profile
            first = args.pairs[0]
            photo, painting = first.split(":")
            for name, tree in trees.items():
                warm = Job(name, "draft", layers[0], "warm-up", first)
                run_job(
                    warm,
                    tree,
                    work / f"cache-{name}",
                    inputs[(photo, layers[0])],
                    inputs[("style", painting)],
                    work,
                )
        # Old and new alternate job by job, so a change in the machine's speed (shared cores)
        # falls on both alike.
        for preset in args.presets:
            for layer in layers:
                pairs = args.pairs if layer == args.pairs_at else args.pairs[:1]
                for profile in args.profiles:
                    for pair in pairs:
                        for name, tree in trees.items():
                            if (
                                name == "old"
                                and args.old_presets
                                and preset not in args.old_presets
                            ):
                                continue
                            photo, painting = pair.split(":")
                            cache = work / f"cache-{name}"
                            if profile == "cold":
                                cache = work / f"cache-cold-{len(jobs)}"
                            job = run_job(
                                Job(name, preset, layer, profile, pair),
                                tree,
                                cache,
                                inputs[(photo, layer)],
                                inputs[("style", painting)],
                                out,
                                extra,
                            )
                            jobs.append(job)
                            print(
                                f"{name} {preset} {layer} {profile} {pair}: wall "
                                f"{job.wall_s:.1f} s, job {job.job_s:.1f} s, first ETA "
                                f"{job.eta_s:.0f} s ({job.eta_error:+.0%}), {job.passes} passes",
                                flush=True,
                            )
        if args.metric.is_file():
            for pair in args.pairs:
                photo, painting = pair.split(":")
                at = [j for j in jobs if j.pair == pair and j.layer == args.pairs_at]
                figures = measure(
                    args.metric,
                    inputs[(photo, args.pairs_at)],
                    inputs[("style", painting)],
                    [j.output for j in at],
                )
                for job, found in zip(at, figures, strict=True):
                    job.figures = found
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(jobs, args)
    return 0


def report(jobs: list[Job], args: argparse.Namespace) -> None:
    print(
        "\n| tree | preset | layer | profile | wall s (process) | job s | first ETA s | "
        "ETA error | passes | style | content |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    groups: dict[tuple[str, str, str, str], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.tree, job.preset, job.layer, job.profile), []).append(job)
    for (tree, preset, layer, profile), group in groups.items():
        wall = statistics.mean(j.wall_s for j in group)
        job_s = statistics.mean(j.job_s for j in group)
        eta = statistics.mean(j.eta_s for j in group)
        errors = ", ".join(f"{j.eta_error:+.0%}" for j in group)
        scored = [j.figures for j in group if j.figures is not None]
        style = f"{np.mean([f[0] for f in scored]):.3f}" if scored else ""
        content = f"{np.mean([f[1] for f in scored]):.3f}" if scored else ""
        print(
            f"| {tree} | {preset} | {layer} | {profile} | {wall:.1f} | {job_s:.1f} | {eta:.0f} "
            f"| {errors} | {group[0].passes} | {style} | {content} |"
        )
    measured = [j for j in jobs if j.figures is not None]
    if measured:
        print("\nper pair (style / content):")
        for job in measured:
            assert job.figures is not None
            print(
                f"  {job.tree} {job.preset} {job.profile} {job.pair}: "
                f"{job.figures[0]:.4f} / {job.figures[1]:.4f}"
            )
    with_breakdown = [j for j in jobs if j.breakdown]
    if with_breakdown:
        print("\nbreakdown (s), the first job of each preset:")
        seen = set()
        for job in with_breakdown:
            key = (job.tree, job.preset, job.layer, job.profile)
            if key in seen:
                continue
            seen.add(key)
            parts = ", ".join(f"{k} {v:.1f}" for k, v in job.breakdown.items())
            print(f"  {job.tree} {job.preset} {job.layer} {job.profile}: {parts}")


if __name__ == "__main__":
    raise SystemExit(main())
