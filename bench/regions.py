"""A style per region: does each region take its own style, does a kept region stay the
photo, and what do masks cost per iteration?

Two real photos (scikit-image), each split by masks made here, two strong-texture generated
paintings (nst_app.demo). Per layout it runs the engine as a user would (the preset at the
given size) three times: style A over the whole image, style B over the whole image, and the
region job. Then, by the shared quality metric over each region's mask (`--mask`):

- own: the region's style figure against its own style (lower = more style);
- whole: the same figure of the whole-image run of that style, over the same region (what a
  region should reach: the issue of "as much style as without masks");
- other: the region's figure against the other region's style (should stay high);
- content: the content figure inside a "keep" region (0 = the photo untouched).

Layouts: `hard` (astronaut: style A left, B right, a hard edge), `soft` (coffee: A at the top,
B at the bottom, a linear blend over the middle third), `keep` (astronaut: A inside a feathered
ellipse, the photo kept outside). It writes the results, the masks and crops of the borders at
2x (for docs/quality.md) to --out.

The time per iteration is measured in one run, alternating: one style without a mask against
two styles with masks, a single scale at --size, the median of --repeat rounds of the time
between the first and the last optimiser step.

    python bench/regions.py                      # the table in docs/quality.md
    python bench/regions.py --size 256 --layouts hard --repeat 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import add_metric_argument, measure, sheet

LAYOUTS = ("hard", "soft", "keep")
STYLES = ("swirls", "strokes")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    ap.add_argument("--size", type=int, default=512, help="working size (default %(default)s)")
    ap.add_argument("--quality", default="normal", help="preset (default %(default)s)")
    ap.add_argument("--iterations", type=int, default=0, help="fixed iterations (0: preset)")
    ap.add_argument("--repeat", type=int, default=3, help="timing rounds (default 3)")
    ap.add_argument("--timing-iterations", type=int, default=12)
    ap.add_argument("--out", default="/tmp/nst-regions")
    add_metric_argument(ap)
    return ap.parse_args()


# --- masks -----------------------------------------------------------------------------------


def hard_split(h: int, w: int) -> np.ndarray:
    """1 on the left half, 0 on the right."""
    mask = np.zeros((h, w), np.float32)
    mask[:, : w // 2] = 1.0
    return mask


def soft_split(h: int, w: int) -> np.ndarray:
    """1 at the top, 0 at the bottom, a linear ramp over the middle third."""
    rows = np.clip((np.arange(h, dtype=np.float32) - h / 3) / (h / 3), 0.0, 1.0)
    return np.repeat(1.0 - rows[:, None], w, axis=1)


def feathered_ellipse(h: int, w: int) -> np.ndarray:
    """A selection as an editor makes it: an ellipse around the middle, feathered 12 px."""
    im = Image.new("L", (w, h), 0)
    ImageDraw.Draw(im).ellipse([w * 0.18, h * 0.08, w * 0.82, h * 0.78], fill=255)
    im = im.filter(ImageFilter.GaussianBlur(12))
    return np.asarray(im, np.float32) / 255.0


def layout(name: str) -> tuple[str, np.ndarray, list[tuple[str, np.ndarray]], np.ndarray | None]:
    """(photo, its pixels, [(style, mask)], the keep mask or None) of a layout."""
    from nst_app import demo

    photo_name = "coffee" if name == "soft" else "astronaut"
    photo = demo.photo(photo_name)
    h, w = photo.shape[:2]
    if name == "hard":
        mask = hard_split(h, w)
        return photo_name, photo, [(STYLES[0], mask), (STYLES[1], 1.0 - mask)], None
    if name == "soft":
        mask = soft_split(h, w)
        return photo_name, photo, [(STYLES[0], mask), (STYLES[1], 1.0 - mask)], None
    mask = feathered_ellipse(h, w)
    return photo_name, photo, [(STYLES[0], mask)], 1.0 - mask


def grey(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(np.rint(mask * 255).astype(np.uint8))


# --- measuring -------------------------------------------------------------------------------


def border_crops(images: list[np.ndarray], mask: np.ndarray, side: int = 96) -> list[np.ndarray]:
    """The same square of each image on the mask's border (where it is nearest 0.5: the
    leftmost such place, at its middle row), at 2x."""
    ys, xs = np.nonzero(np.abs(mask - 0.5) < 0.1)
    if len(ys) == 0:
        ys, xs = np.array([mask.shape[0] // 2]), np.array([mask.shape[1] // 2])
    left = xs == xs.min()
    y, x = int(np.median(ys[left])), int(xs.min())
    y0 = min(max(0, y - side // 2), mask.shape[0] - side)
    x0 = min(max(0, x - side // 2), mask.shape[1] - side)
    out = []
    for img in images:
        crop = Image.fromarray(img[y0 : y0 + side, x0 : x0 + side, :3])
        out.append(np.asarray(crop.resize((2 * side, 2 * side), Image.Resampling.NEAREST)))
    return out


def time_per_iteration(
    model: Any,
    photo: np.ndarray,
    styles: list[tuple[np.ndarray, np.ndarray]],
    size: int,
    iterations: int,
    repeat: int,
) -> tuple[float, float]:
    """Median seconds per optimiser step: one style, no mask / the two styles with masks."""
    from nst_core.engine import StyleImage, stylize

    params = {"size": size, "min_scale": size, "iterations": iterations, "quality": "final"}

    def step_time(entries: list[StyleImage]) -> float:
        stamps: list[float] = []
        stylize(photo, entries, params, lambda p: stamps.append(time.monotonic()), model=model)
        steps = stamps[2:]  # the plan's report and the first step (it pays for the targets)
        return (steps[-1] - steps[0]) / (len(steps) - 1)

    plain = [StyleImage(styles[0][0])]
    masked = [StyleImage(pixels, 1.0, mask) for pixels, mask in styles]
    step_time(plain)  # warm: the calibration and the style cache
    step_time(masked)
    a, b = [], []
    for _ in range(repeat):
        a.append(step_time(plain))
        b.append(step_time(masked))
    return statistics.median(a), statistics.median(b)


def main() -> int:
    args = parse_args()
    from nst_app import demo
    from nst_core.engine import StyleImage, load_model, stylize

    model = load_model("caffe", "auto")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    params: dict = {"size": args.size, "quality": args.quality}
    if args.iterations:
        params["iterations"] = args.iterations
    paintings = {name: demo.PAINTINGS[name](512) for name in STYLES}
    for name, pixels in paintings.items():
        Image.fromarray(pixels).save(out / f"{name}.png")
    print(f"size {args.size}, preset {args.quality}; figures by {args.metric.name} --mask")
    print("| layout | region | own style | whole-image run | other style | content | s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.layouts:
        photo_name, photo, regions, keep = layout(name)
        photo_path = out / f"{photo_name}.png"
        Image.fromarray(photo).save(photo_path)
        runs: dict[str, tuple[Path, float]] = {}
        for style_name in STYLES[: len(regions)]:
            start = time.monotonic()
            result = stylize(photo, [paintings[style_name]], params, model=model)
            path = out / f"{name}-whole-{style_name}.png"
            Image.fromarray(result).save(path)
            runs[style_name] = (path, time.monotonic() - start)
        entries = [StyleImage(paintings[s], 1.0, m) for s, m in regions]
        start = time.monotonic()
        result = stylize(photo, entries, params, model=model)
        region_path = out / f"{name}-regions.png"
        Image.fromarray(result).save(region_path)
        region_s = time.monotonic() - start
        masks = [(s, m) for s, m in regions] + ([("keep", keep)] if keep is not None else [])
        for index, (style_name, mask) in enumerate(masks):
            mask_path = out / f"{name}-mask-{index}.png"
            grey(mask).save(mask_path)
            if style_name == "keep":
                ((_, content),) = measure(
                    args.metric, photo_path, out / f"{STYLES[0]}.png", [region_path], mask_path
                )
                print(f"| {name} | keep (photo) | | | | {content:.4f} | {region_s:.0f} |")
                continue
            other = next(s for s in STYLES if s != style_name)
            whole_path, _ = runs[style_name]
            style_path = out / f"{style_name}.png"
            (own, _), (whole, _) = measure(
                args.metric, photo_path, style_path, [region_path, whole_path], mask_path
            )
            ((against, _),) = measure(
                args.metric, photo_path, out / f"{other}.png", [region_path], mask_path
            )
            print(
                f"| {name} | {style_name} | {own:.3f} | {whole:.3f} | {against:.3f} | | "
                f"{region_s:.0f} |",
                flush=True,
            )
        images = [photo, np.asarray(Image.open(region_path))]
        border = regions[0][1]
        sheet(
            border_crops(images, border),
            ["photo (border, 2x)", "regions (border, 2x)"],
            out / f"{name}-border.jpg",
            height=192,
        )
        sheet(
            [photo, np.stack([np.rint(border * 255).astype(np.uint8)] * 3, -1), images[1]],
            [photo_name, f"mask of {regions[0][0]}", "result"],
            out / f"{name}-sheet.jpg",
        )
    photo = demo.photo("astronaut")
    styles = [(paintings[s], m) for s, m in layout("hard")[2]]
    plain, masked = time_per_iteration(
        model, photo, styles, args.size, args.timing_iterations, args.repeat
    )
    print(
        f"\ntime per iteration at {args.size} px (median of {args.repeat}): one style "
        f"{plain:.3f} s, two styles with masks {masked:.3f} s ({100 * (masked / plain - 1):+.1f} %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
