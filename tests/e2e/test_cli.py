"""The `nst` command as a user runs it: a real process, real files, real exit codes."""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import product
import pytest
from PIL import Image

from nst_app import cli, engine_commands
from nst_app.options import UserError, daemon_params, params_from_args
from nst_client.engine_words import precision_words
from nst_client.params import StyleParams
from nst_core.imageio import read_image, write_image

NST = [product.bin_path("nst")]


def run_nst(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NST, *args], capture_output=True, text=True, timeout=timeout)


def stylize_files(files: dict[str, Path], *options: str) -> subprocess.CompletedProcess[str]:
    """`nst stylize` of the fixture's content and style into its output, with `options`."""
    return run_nst(
        "stylize", str(files["content"]), str(files["style"]), "-o", str(files["out"]), *options
    )


@pytest.fixture()
def files(tmp_path: Path, photo: np.ndarray, style_image: np.ndarray) -> dict[str, Path]:
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray(photo).save(content)
    Image.fromarray(style_image).save(style)
    return {"content": content, "style": style, "out": tmp_path / "out.png", "dir": tmp_path}


def _parsed(*options: str) -> StyleParams:
    """The params `nst stylize c.png s.png -o o.png OPTIONS` runs with (in this process)."""
    argv = ["stylize", "c.png", "s.png", "-o", "o.png", *options]
    params: StyleParams = params_from_args(cli.build_parser().parse_args(argv))
    return params


def test_the_plan_is_the_planners_unless_told() -> None:
    """No options: the normal preset, the planner's size and iterations, the detail put
    back; a daemon job sends none of it (the daemon's defaults are the same)."""
    p = _parsed()
    assert (p.quality, p.time_budget, p.iterations, p.size, p.restore_detail) == (
        "normal",
        None,
        None,
        None,
        True,
    )
    assert daemon_params(p) == {}
    p = _parsed("--quality", "draft", "--time-budget", "1m30s", "--size", "full")
    assert daemon_params(_parsed("--no-restore-detail")) == {"restore_detail": False}
    assert daemon_params(p) == {"quality": "draft", "time_budget": 90.0, "size": "full"}
    for words in ("90", "90s", "1.5m", "1:30", "1 min 30 s"):
        assert _parsed("--time-budget", words).time_budget == 90.0
    scripts = _parsed("--iterations", "300", "--size", "512", "--precision", "fp16")
    assert daemon_params(scripts) == {"iterations": 300, "size": 512, "precision": "fp16"}
    with pytest.raises(UserError, match="give one of them"):
        _parsed("--iterations", "5", "--time-budget", "60")
    demo = cli.build_parser().parse_args(["demo"])  # the default preset too
    assert (demo.quality, demo.time_budget, demo.size, demo.iterations) == (
        "normal",
        None,
        None,
        None,
    )


PROFILE = {
    "precision": "bf16",
    "channels_last": False,
    "s_per_mpix": 5.3,
    "measured": {"fp32": 2.27, "bf16": 1.4},
    "size": 512,
}


def test_status_says_the_measured_precision(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert precision_words(PROFILE) == ("bf16 (measured fp32 2.27 s, bf16 1.40 s per 512 px pass)")
    assert precision_words(None) is None and precision_words({"measured": {}}) is None
    assert precision_words({"precision": "fp32"}) == "fp32"

    class Engine:
        profile: dict[str, object] | None = PROFILE

        def __enter__(self) -> Engine:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def status(self) -> dict[str, object]:
            return {"type": "status", "id": "1", "state": "ready", "profile": self.profile}

    monkeypatch.setattr(engine_commands, "connect", lambda settings, name: Engine())
    assert cli.main(["status", "--endpoint", "tcp://127.0.0.1:1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "state: ready",
        "precision: bf16 (measured fp32 2.27 s, bf16 1.40 s per 512 px pass)",
        "speed: 5.3 s per megapixel pass",
    ]
    Engine.profile = None  # still starting: nothing measured yet
    assert cli.main(["status", "--endpoint", "tcp://127.0.0.1:1"]) == 0
    assert "precision: not measured yet" in capsys.readouterr().out


def test_a_preset_job_says_its_plan(files: dict[str, Path]) -> None:
    """The default path for people: a preset, the planner's size, the plan and the precision
    on stderr above the progress."""
    r = stylize_files(
        files,
        "--quality",
        "draft",
    )
    assert r.returncode == 0, r.stderr
    assert "plan: draft: 64x64:" in r.stderr and "(the layer's size)" in r.stderr, r.stderr
    assert "precision: " in r.stderr
    out = read_image(files["out"])
    assert out.shape == (64, 64, 3) and not np.array_equal(out, read_image(files["content"]))


def test_verbose_says_where_the_seconds_went(files: dict[str, Path]) -> None:
    """--verbose: after the job, each phase with its seconds, the scales with their
    evaluations, and a total that is the phases' sum."""
    r = stylize_files(
        files,
        "--iterations",
        "3",
        "--verbose",
    )
    assert r.returncode == 0, r.stderr
    lines = r.stderr.split("where the seconds went:\n", 1)[1].splitlines()
    phases = {line.split("  ")[1].strip(): line for line in lines if line.startswith("  ")}
    for phase in (
        "imports (torch, the engine)",
        "loading VGG-19",
        "style targets",
        "writing the image",
    ):
        assert phase in phases, r.stderr
    scale = next(line for line in lines if "scale 1/1 (64x64)" in line)
    assert "3 evaluations" in scale
    seconds = [float(line.split(" s ")[0].split()[-1]) for line in lines[:-1]]
    total = float(lines[-1].split()[-2])
    assert total == pytest.approx(sum(seconds), abs=0.02 * len(seconds))


def test_demo_runs(tmp_path: Path) -> None:
    """The README's first command, `.venv/bin/nst demo` (the development venv, which has the
    demo extra), small: the bundled photo and style, stylized with a preset."""
    out = tmp_path / "demo.png"
    dev_nst = str(Path(sys.executable).with_name("nst"))
    r = subprocess.run(
        [dev_nst, "demo", "-o", str(out), "--quality", "draft", "--size", "32"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "demo_style.png").is_file()
    content = Image.open(tmp_path / "demo_content.png")
    result = Image.open(out)
    assert result.size == content.size, "the result is at the content's own resolution"
    diff = np.abs(np.asarray(result, dtype=float) - np.asarray(content, dtype=float)).mean()
    assert diff > 1.0, f"the demo barely changed the photo (mean {diff:.2f} levels)"


def test_demo_without_its_extra_says_what_to_install(tmp_path: Path) -> None:
    """The wheel alone has no scikit-image (the demo extra): one line naming the extra."""
    r = run_nst("demo", "-o", str(tmp_path / "demo.png"))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "nst: error: the bundled demo photos come from scikit-image: pip install 'nst-studio[demo]'"
    ]
    assert not (tmp_path / "demo.png").exists()


def test_stylize_writes_the_result(files: dict[str, Path]) -> None:
    r = stylize_files(
        files,
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


def test_stylize_with_a_style_per_region(files: dict[str, Path], photo: np.ndarray) -> None:
    """Two styles on two masks (a grey-level PNG and a colour one with transparency), a band
    no mask covers: each region changes, the band stays the photo."""
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :28] = 255
    Image.fromarray(mask).save(files["dir"] / "left.png")
    right = np.zeros((64, 64, 4), np.uint8)
    right[:, 36:] = (255, 255, 255, 255)
    Image.fromarray(right).save(files["dir"] / "right.png")
    Image.fromarray(photo[::-1].copy()).save(files["dir"] / "other.png")
    r = run_nst(
        *("stylize", str(files["content"]), str(files["style"]), str(files["dir"] / "other.png")),
        *("-o", str(files["out"]), "--size", "64", "--iterations", "3"),
        *("--style-masks", str(files["dir"] / "left.png"), str(files["dir"] / "right.png")),
    )
    assert r.returncode == 0, r.stderr
    out = read_image(files["out"])
    content = read_image(files["content"])
    assert np.array_equal(out[:, 28:36], content[:, 28:36])
    assert not np.array_equal(out[:, :28], content[:, :28])
    assert not np.array_equal(out[:, 36:], content[:, 36:])


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
            ["stylize", "{content}", "{style}", "-o", "{out}", "--quality", "best"],
            "--quality: must be one of draft, normal, final",
        ),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--time-budget", "soon"],
            "argument --time-budget: expected seconds or a duration like 90s, 2m or 1m30s",
        ),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--time-budget", "2s"],
            "--time-budget: must be >= 5.0",
        ),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--time-budget", "1m"]
            + ["--iterations", "5"],
            "--iterations fixes the work and --time-budget fits it to a time",
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
            "no style engine answered at tcp://127.0.0.1:1",
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
    r = stylize_files(
        files,
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


def zero_png(path: Path, side: int) -> Path:
    """A valid all-zero 16-bit grey PNG of side x side (a multiple of 100), as small as deflate
    allows: 20000 x 20000 is 800 MB of pixels in ~800 KB. One block of 100 rows is compressed
    once and repeated (a full flush makes each copy stand alone), so it is made in moments."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = bytes(1 + 2 * side) * 100
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(rows) + deflate.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(side // 100):
        adler = zlib.adler32(rows, adler)
    idat = b"\x78\xda" + block * (side // 100) + deflate.flush() + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    png = chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png)
    return path


def test_a_pixel_bomb_is_refused_in_moments(files: dict[str, Path]) -> None:
    """A pixel bomb: 20000 x 20000 16-bit zeros in ~800 KB (decoded in full it takes 13 s and
    1.85 GB). Refused from its header, as content or as style."""
    bomb = zero_png(files["dir"] / "bomb.png", 20000)
    assert bomb.stat().st_size < 1_000_000
    for content, style in ((bomb, files["style"]), (files["content"], bomb)):
        start = time.monotonic()
        r = run_nst("stylize", str(content), str(style), "-o", str(files["out"]), timeout=60)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert time.monotonic() - start < 10
        assert f"{bomb}: 20000 x 20000 = 400,000,000 pixels, over the limit of 67,108,864" in (
            r.stderr
        )
        assert "--max-pixels raises it" in r.stderr and "Traceback" not in r.stderr
    assert not files["out"].exists()


@pytest.mark.parametrize(
    ("content", "output", "extra", "message"),
    [
        ("{content}", "{dir}/folder.png", [], "folder.png: is a folder"),
        ("{c16}", "{dir}/folder.png", [], "folder.png: is a folder"),
        ("{c16}", "{dir}/out.jpg", [], "out.jpg: 16-bit results can only be written as .png"),
        ("{content}", "{dir}/out.xyz", [], "out.xyz: no image format for '.xyz'"),
        ("{content}", "{dir}/out.png", ["--save-every", "2"], "out_iter0002.png: is a folder"),
        ("{content}", "{dir}/out.png", ["--max-pixels", "4095"], "content.png: 64 x 64"),
        ("{content}", "{dir}/out.png", ["--max-pixels", "0"], "--max-pixels: expected a positive"),
    ],
)
def test_bad_files_are_refused_before_the_model_loads(
    files: dict[str, Path], content: str, output: str, extra: list[str], message: str
) -> None:
    """Found in moments, not after minutes of work. The weights named do not exist: had the
    model been loaded first, that would be the error."""
    (files["dir"] / "folder.png").mkdir()
    (files["dir"] / "out_iter0002.png").mkdir()
    write_image(files["dir"] / "c16.png", np.zeros((64, 64, 3), np.uint16))
    fmt = {k: str(v) for k, v in files.items()} | {"c16": str(files["dir"] / "c16.png")}
    start = time.monotonic()
    r = run_nst(
        "stylize",
        content.format(**fmt),
        str(files["style"]),
        "-o",
        output.format(**fmt),
        "--weights",
        str(files["dir"] / "missing.pth"),
        *extra,
        timeout=60,
    )
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert time.monotonic() - start < 10
    assert message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "missing.pth" not in r.stderr and "J=" not in r.stderr
    assert sorted(p.name for p in files["dir"].iterdir()) == [
        "c16.png",
        "content.png",
        "folder.png",
        "out_iter0002.png",
        "style.png",
    ]
