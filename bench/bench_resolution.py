"""The native-resolution finish: a large layer painted at a small working size, then upscaled.

Content: a sharp 3000 x 2000 collage of scikit-image's photos at their native resolution
(astronaut, motorcycle, retina, Hubble deep field, immunohistochemistry, cameraman, brick,
gravel, grass, moon: centre crops in rows of 500 px, nothing upscaled, so the layer has real
fine detail at every pixel); style: demo's "swirls" (512 px). The engine runs once at the
working size (--working, 512) and hands back the bicubic upscale; nst_core.detail puts the
content's fine structure back. Once the engine knows the `restore_detail` param it is run a
second time with it on, and that result is measured too (the by-hand one always is).

Prints the high-frequency energy (nst_core.detail.high_frequency_energy) of the content, the
bicubic result and the restored one (and their ratios to the content's), the shared quality
figures at full size (../shared/tools/quality_metric.py, or --quality-metric PATH: style,
lower = more style; content, lower = content kept) and the time restore_detail takes at this
size and at 4096 x 4096. Writes content.png, style.png, bicubic.png, restored.png
(engine_restored.png) and crops.png (1:1 crops: content | bicubic | restored) to --out.

Usage: python bench/bench_resolution.py [--size 3000x2000] [--iterations 40] [--working 512]
       [--out bench/out/resolution] [--bicubic FILE (reuse an engine result, no engine run)]
       [--quality-metric PATH]
Run it alone on the machine (nice -n 10 when sharing): it times restore_detail.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from quality import add_metric_argument

from nst_app import demo
from nst_core import detail
from nst_core.detail import high_frequency_energy, restore_detail

ROOT = Path(__file__).resolve().parent.parent

ROW_HEIGHT = 500
#: 1:1 crops for the eye (x, y of the top left at 3000 x 2000; scaled for other sizes).
CROPS = ((120, 40), (700, 520), (2050, 1050))
CROP_SIDE = 360


def _rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3].astype(np.uint8))


def sharp_collage(width: int, height: int) -> np.ndarray:
    """Rows of native-resolution photo crops, no resampling: every pixel is a real pixel."""
    from skimage import data

    pool = [
        demo.photo("astronaut"),
        demo.photo("motorcycle_left"),
        data.retina(),
        data.hubble_deep_field(),
        data.immunohistochemistry(),
        data.camera(),
        data.brick(),
        data.gravel(),
        data.grass(),
        data.moon(),
    ]
    photos = [_rgb(p) for p in pool]
    rows, top, index = [], 0, 0
    while top < height:
        row_h = min(ROW_HEIGHT, height - top)
        pieces, left = [], 0
        while left < width:
            photo = photos[index % len(photos)]
            index += 1
            if photo.shape[0] < row_h:
                continue
            y0 = (photo.shape[0] - row_h) // 2
            piece_w = min(photo.shape[1], width - left)
            pieces.append(photo[y0 : y0 + row_h, :piece_w])
            left += piece_w
        rows.append(np.concatenate(pieces, axis=1))
        top += row_h
    return np.concatenate(rows, axis=0)


def working_size(height: int, width: int, size: int) -> tuple[int, int]:
    """The (h, w) of the engine's last scale for a forced long side `size`."""
    try:
        from nst_core.plan import scale_sizes

        h, w = scale_sizes(height, width, size, size)[-1]
        return int(h), int(w)
    except (ImportError, TypeError):  # the planner's API moved: the same rule by hand
        k = min(size, max(height, width)) / max(height, width)
        return max(1, round(height * k)), max(1, round(width * k))


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def to_u8(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)


def engine_run(
    content: np.ndarray, style: np.ndarray, working: int, iterations: int, restore: bool | None
) -> tuple[np.ndarray, float]:
    from nst_core.engine import stylize

    params: dict[str, object] = {"size": working, "iterations": iterations, "precision": "bf16"}
    if restore is not None:
        params["restore_detail"] = restore
    t0 = time.monotonic()
    out = stylize(content, [style], params)
    return np.asarray(out)[:, :, :3], time.monotonic() - t0


def time_restore(height: int, width: int, working_hw: tuple[int, int], runs: int = 3) -> float:
    """Median seconds of restore_detail on random (1, 3, height, width) float32 images."""
    gen = torch.Generator().manual_seed(0)
    stylized = torch.rand(1, 3, height, width, generator=gen)
    content = torch.rand(1, 3, height, width, generator=gen)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        restore_detail(stylized, content, working_hw)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def quality(
    metric: Path, content: Path, style: Path, outs: list[Path]
) -> dict[str, tuple[float, float]]:
    """{file name: (style, content)} by the shared quality metric (at its own 512 px side)."""
    cmd = [sys.executable, str(metric), str(content), str(style), *map(str, outs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    figures = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[1] == "style" and parts[3] == "content":
            figures[parts[0]] = (float(parts[2]), float(parts[4]))
    return figures


def save_crops(path: Path, images: list[np.ndarray], width: int, height: int) -> None:
    k = min(width / 3000, height / 2000)
    side = min(CROP_SIDE, height, width)
    rows = []
    for x, y in CROPS:
        x0 = min(max(0, round(x * k)), width - side)
        y0 = min(max(0, round(y * k)), height - side)
        rows.append(np.concatenate([im[y0 : y0 + side, x0 : x0 + side] for im in images], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="3000x2000", help="layer WxH")
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--working", type=int, default=512, help="long side of the last scale")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "resolution")
    ap.add_argument("--bicubic", type=Path, help="an engine result to reuse (no engine run)")
    add_metric_argument(ap)
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    content = sharp_collage(width, height)
    style = demo.PAINTINGS["swirls"](512)
    paths = {n: out / f"{n}.png" for n in ("content", "style", "bicubic", "restored")}
    Image.fromarray(content).save(paths["content"])
    Image.fromarray(style).save(paths["style"])
    working_hw = working_size(height, width, args.working)
    print(f"layer {width}x{height}, working size {working_hw[1]}x{working_hw[0]}")

    from nst_client.params import PARAM_NAMES

    knows_param = "restore_detail" in PARAM_NAMES
    if args.bicubic is not None:
        bicubic = np.asarray(Image.open(args.bicubic).convert("RGB"))
        print(f"engine: reused {args.bicubic}")
    else:
        bicubic, seconds = engine_run(
            content, style, args.working, args.iterations, False if knows_param else None
        )
        print(f"engine (restore_detail off): {seconds:.1f} s")
    Image.fromarray(bicubic).save(paths["bicubic"])

    stylized_t, content_t = to_tensor(bicubic), to_tensor(content)
    t0 = time.perf_counter()
    restored_t = restore_detail(stylized_t, content_t, working_hw)
    restore_s = time.perf_counter() - t0
    restored = to_u8(restored_t)
    Image.fromarray(restored).save(paths["restored"])
    measured = [("bicubic", bicubic), ("restored", restored)]

    if knows_param and args.bicubic is None:
        engine_restored, seconds = engine_run(content, style, args.working, args.iterations, True)
        if np.array_equal(engine_restored, bicubic):
            print("engine (restore_detail on): same pixels as off; the engine ignores it so far")
        else:
            print(f"engine (restore_detail on): {seconds:.1f} s")
            paths["engine_restored"] = out / "engine_restored.png"
            Image.fromarray(engine_restored).save(paths["engine_restored"])
            measured.append(("engine_restored", engine_restored))
    save_crops(out / "crops.png", [content, bicubic, restored], width, height)

    hf_content = high_frequency_energy(content)
    figures = quality(
        args.metric, paths["content"], paths["style"], [paths[n] for n, _ in measured]
    )
    print(f"\nhigh-frequency energy (detail.high_frequency_energy, sigma {detail.HF_SIGMA} px)")
    print(f"  {'content':16s} {hf_content:.3e}  1.000")
    for name, image in measured:
        hf = high_frequency_energy(image)
        print(f"  {name:16s} {hf:.3e}  {hf / hf_content:.3f}")
    print("quality at full size (style: lower = more style; content: lower = content kept)")
    for name, _ in measured:
        st, ct = figures.get(paths[name].name, (float("nan"), float("nan")))
        print(f"  {name:16s} style {st:.4f}  content {ct:.4f}")
    print(f"restore_detail at {width}x{height}: {restore_s:.2f} s (first call, these images)")
    print(
        f"restore_detail at {width}x{height}: "
        f"{time_restore(height, width, working_hw):.2f} s (median of 3, random pixels)"
    )
    print(
        "restore_detail at 4096x4096: "
        f"{time_restore(4096, 4096, working_size(4096, 4096, args.working)):.2f} s (median of 3)"
    )
    print(f"images: {out}")


if __name__ == "__main__":
    main()
