"""The `nst` command as a user runs it: a real process, real files, real exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst_core.imageio import read_image, write_image

NST = [sys.executable, "-m", "nst_core.cli"]


def run_nst(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NST, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def files(tmp_path: Path, photo: np.ndarray, style_image: np.ndarray) -> dict[str, Path]:
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray(photo).save(content)
    Image.fromarray(style_image).save(style)
    return {"content": content, "style": style, "out": tmp_path / "out.png", "dir": tmp_path}


def test_stylize_writes_the_result(files: dict[str, Path]) -> None:
    r = run_nst(
        "stylize",
        str(files["content"]),
        str(files["style"]),
        "-o",
        str(files["out"]),
        "--size",
        "64",
        "--iterations",
        "3",
        "--save-every",
        "2",
    )
    assert r.returncode == 0, r.stderr
    out = read_image(files["out"])
    assert out.shape == (64, 64, 3)
    assert not np.array_equal(out, read_image(files["content"]))
    assert (files["dir"] / "out_iter0002.png").is_file()
    assert "3/3" in r.stderr  # the progress bar reached the end


def test_sixteen_bit_rgba_png_round_trip(files: dict[str, Path], photo: np.ndarray) -> None:
    rgba16 = np.concatenate(
        [photo.astype(np.uint16) * 257, np.full((64, 64, 1), 12345, np.uint16)], axis=2
    )
    src = files["dir"] / "c16.png"
    write_image(src, rgba16)
    assert np.array_equal(read_image(src), rgba16)
    r = run_nst(
        "stylize",
        str(src),
        str(files["style"]),
        "-o",
        str(files["out"]),
        "--size",
        "64",
        "--iterations",
        "2",
    )
    assert r.returncode == 0, r.stderr
    out = read_image(files["out"])
    assert out.dtype == np.uint16 and out.shape == (64, 64, 4)
    assert np.array_equal(out[:, :, 3], rgba16[:, :, 3])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stylize", "{dir}/missing.png", "{style}", "-o", "{out}"], "missing.png: no such file"),
        (["stylize", "{notimage}", "{style}", "-o", "{out}"], "notimage.txt: cannot read"),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--iterations", "-3"],
            "--iterations: must be >= 0",
        ),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--optimizer", "sgd"],
            "--optimizer: must be one of lbfgs, adam",
        ),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--style-weights", "1", "2"],
            "--style-weights: 2 weights for 1 style images",
        ),
        (
            ["stylize", "{content}", "{style}", "-o", "{dir}/no/such/dir/out.png"],
            "output folder does not exist",
        ),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--weights", "{dir}/w.pth"],
            "w.pth' is neither",
        ),
        (["stylize", "{content}", "{style}", "-o", "{out}", "--size", "huge"], "--size"),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--content-weight", "inf"],
            "--content-weight: must be a finite number",
        ),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--tv-weight", "1e308"],
            "--tv-weight: must be <= 1000000.0",
        ),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--tile-size", "64"],
            "--tile-size: must be >= 256",
        ),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--strength", "101"],
            "--strength: must be <= 100.0",
        ),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--style-scale", "20"],
            "--style-scale: must be <= 4.0",
        ),
        (
            ["status", "--endpoint", "tcp://127.0.0.1:1", "--timeout", "0.5"],
            "no NST daemon answered at tcp://127.0.0.1:1",
        ),
    ],
)
def test_errors_are_one_clear_line_with_exit_2(
    files: dict[str, Path], args: list[str], message: str
) -> None:
    (files["dir"] / "notimage.txt").write_text("hello")
    fmt = {k: str(v) for k, v in files.items()} | {"notimage": str(files["dir"] / "notimage.txt")}
    r = run_nst(*[a.format(**fmt) for a in args], timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not files["out"].exists()


def test_a_failed_optimisation_exits_1_and_writes_nothing(files: dict[str, Path]) -> None:
    """Adam with a step of 1e-9 cannot move the pixels: exit 1, and an existing output (from an
    earlier run) is left as it was."""
    files["out"].write_bytes(b"an earlier result")
    r = run_nst(
        "stylize",
        str(files["content"]),
        str(files["style"]),
        "-o",
        str(files["out"]),
        "--size",
        "32",
        "--iterations",
        "3",
        "--optimizer",
        "adam",
        "--learning-rate",
        "1e-9",
    )
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "optimisation failed: scale 1 of 1" in r.stderr and "nothing written" in r.stderr
    assert "Traceback" not in r.stderr
    assert files["out"].read_bytes() == b"an earlier result"


def test_ctrl_c_stops_cleanly_and_writes_the_current_image(files: dict[str, Path]) -> None:
    proc = subprocess.Popen(
        [
            *NST,
            "stylize",
            str(files["content"]),
            str(files["style"]),
            "-o",
            str(files["out"]),
            "--size",
            "64",
            "--iterations",
            "10000",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 120
    while "J=" not in seen and time.monotonic() < deadline:  # the first progress line
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, seen + rest
    assert "interrupted: wrote" in rest and "Traceback" not in rest
    assert read_image(files["out"]).shape == (64, 64, 3)
