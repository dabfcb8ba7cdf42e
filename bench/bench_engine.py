"""Engine benchmark: seconds per iteration and peak memory, ours vs pastiche, same settings.

Both run as fresh subprocesses on the same content/style files, single scale, L-BFGS, same
size and iteration count, so the ratio compares like with like. Prints a table; a GPU adds
1024 px. Usage: python bench/bench_engine.py [--sizes 256 512] [--iterations 6] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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
stamps = []
stylize(read_image({str(content)!r}), [read_image({str(style)!r})],
        {{'size': {size}, 'iterations': {iterations}, 'min_scale': {size}, 'device': {device!r},
          'tile_size': {tile_size}, 'precision': {precision!r}}},
        progress=lambda p: stamps.append(time.monotonic()), model=model)
cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
print(json.dumps({{'load_s': t_load, 'stamps': stamps, 'cuda_mib': cuda}}))
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


def main() -> None:
    import torch
    from PIL import Image

    from nst_core.demo import default_content, swirls
    from nst_core.engine import resolve_precision
    from nst_core.imageio import write_image
    from nst_core.plan import tile_spans

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--big", type=int, default=1024, help="large-layer side for the memory run")
    parser.add_argument("--tile", type=int, default=512, help="tile size for the memory run")
    args = parser.parse_args()
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
    auto = resolve_precision("auto", torch.device(args.device))
    print(f"precision 'auto' here = {auto or 'fp32'}; pastiche always runs fp32")
    print(
        f"{'size':>5} {'precision':>9} {'ours s/it':>10} {'pastiche s/it':>14} {'speed-up':>9} "
        f"{'ours peak MiB':>14} {'pastiche peak MiB':>18} {'mem ratio':>9}"
    )
    for size in sizes:
        theirs = run_pastiche(
            content, style, size, args.iterations, args.device, tmp / f"p{size}.png"
        )
        for precision in ("fp32", "auto") if auto is not None else ("fp32",):
            ours = run_ours(content, style, size, args.iterations, args.device, precision=precision)
            print(
                f"{size:>5} {precision:>9} {ours['s_per_it']:>10.3f} "
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
