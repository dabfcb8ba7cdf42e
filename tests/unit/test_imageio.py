"""Image files from careless or hostile hands: pixel bombs, truncation, bad outputs (no torch)."""

from __future__ import annotations

import os
import struct
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import png
import pytest
from PIL import Image, ImageFile

from nst_app import cli, stylize
from nst_client.protocol import DEFAULT_MAX_PIXELS
from nst_core import imageio
from nst_core.imageio import ImageFileError


def bomb_png(path: Path, width: int, height: int, bitdepth: int = 16) -> Path:
    """A grey PNG that declares width x height but holds one zero row: ~100 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, bitdepth, 0, 0, 0, 0)
    row = bytes(1 + width * bitdepth // 8)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(row, 9))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture()
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any pixel decoding (pypng or Pillow) fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(png.Reader, "asDirect", refuse)
    monkeypatch.setattr(png.Reader, "read", refuse)
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize("bitdepth", [16, 8])
@pytest.mark.parametrize("side", [20000, 10000, 8193])
def test_a_pixel_bomb_is_refused_from_its_header(
    tmp_path: Path, no_decoding: None, bitdepth: int, side: int
) -> None:
    """Over the limit on every decoder path (pypng for 16-bit, Pillow for 8-bit), whether Pillow
    would warn (10000^2), refuse with its own message (20000^2) or say nothing (8193^2)."""
    path = bomb_png(tmp_path / f"bomb{bitdepth}.png", side, side, bitdepth)
    assert path.stat().st_size < 400
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would fail here
        with pytest.raises(ImageFileError) as err:
            imageio.read_image(path)
    assert time.monotonic() - start < 0.5
    message = str(err.value)
    assert str(path) in message and f"{side} x {side}" in message, message
    assert f"{DEFAULT_MAX_PIXELS:,}" in message and "--max-pixels" in message, message
    assert "decompression bomb" not in message.lower()


def test_the_limit_is_a_parameter_and_pillows_own_limit_stays_out_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "small.png"
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(path)
    with pytest.raises(ImageFileError, match=r"30 x 20 = 600 pixels, over the limit of 599"):
        imageio.read_image(path, max_pixels=599)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow would refuse 600 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert imageio.read_image(path, max_pixels=600).shape == (20, 30, 1)
    assert Image.MAX_IMAGE_PIXELS == 100  # left as it was for everyone else


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_truncated_file_is_an_image_file_error(tmp_path: Path, dtype: type) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "cut.png"
    imageio.write_image(path, rng.integers(0, 200, (64, 64, 3)).astype(dtype))
    data = path.read_bytes()
    for keep in (len(data) // 2, 40, 20):
        path.write_bytes(data[:keep])
        with pytest.raises(ImageFileError, match="cut.png: cannot read"):
            imageio.read_image(path)


@pytest.mark.parametrize(
    ("name", "like", "message"),
    [
        ("folder", np.uint8, "is a folder"),
        ("no/such/out.png", np.uint8, "output folder does not exist"),
        ("out.jpg", np.uint16, "16-bit results can only be written as .png"),
        ("out.jpg", np.float32, "16-bit results can only be written as .png"),
        ("out.xyz", np.uint8, "no image format for '.xyz'"),
        ("out", np.uint8, "no image format for ''"),
        ("rgba.jpg", "rgba", "cannot write"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_up_front(
    tmp_path: Path, name: str, like: Any, message: str
) -> None:
    (tmp_path / "folder").mkdir()
    arr = np.zeros((2, 2, 4), np.uint8) if like == "rgba" else np.zeros((2, 2, 3), like)
    with pytest.raises(ImageFileError, match=message):
        imageio.check_output(tmp_path / name, arr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]  # nothing left behind


def test_an_unwritable_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)  # root may write anywhere
    with pytest.raises(ImageFileError, match="cannot write in this folder"):
        imageio.check_output(tmp_path / "out.png")


@pytest.mark.parametrize(
    ("name", "arr"),
    [
        ("a.png", np.zeros((2, 2, 4), np.uint16)),
        ("a.png", np.zeros((2, 2, 1), np.float32)),
        ("a.jpg", np.zeros((2, 2, 3), np.uint8)),
        ("a.TIF", np.zeros((2, 2, 2), np.uint8)),
        ("a.webp", np.zeros((2, 2, 4), np.uint8)),
    ],
)
def test_writable_outputs_pass_the_check(tmp_path: Path, name: str, arr: np.ndarray) -> None:
    imageio.check_output(tmp_path / name, arr)
    imageio.write_image(tmp_path / name, arr)
    assert imageio.read_image(tmp_path / name).shape[:2] == (2, 2)


def _fail_midway(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both encoders write a little and then fail, as on a full disk."""

    def pypng(self: Any, outfile: Any, rows: Any) -> None:
        outfile.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    def pillow(self: Any, fp: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(fp, (str, Path)):
            fp = Path(fp).open("wb")  # the old code handed Pillow the destination's path
        fp.write(b"partial")
        fp.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(png.Writer, "write_packed", pypng)
    monkeypatch.setattr(Image.Image, "save", pillow)


@pytest.mark.parametrize(
    ("name", "arr"),
    [("out.png", np.ones((8, 8, 3), np.uint16)), ("out.jpg", np.ones((8, 8, 3), np.uint8))],
)
def test_a_failed_write_keeps_the_good_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, arr: np.ndarray
) -> None:
    out = tmp_path / name
    out.write_bytes(b"an earlier good result")
    _fail_midway(monkeypatch)
    with pytest.raises(ImageFileError, match=f"{name}: cannot write.*No space left"):
        imageio.write_image(out, arr)
    assert out.read_bytes() == b"an earlier good result"
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_a_write_into_a_missing_folder_is_an_image_file_error(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match="cannot write"):
        imageio.write_image(tmp_path / "gone" / "out.png", np.zeros((2, 2, 3), np.uint16))


def test_written_files_have_the_usual_mode_and_links_are_written_through(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        target, link = tmp_path / "target.png", tmp_path / "link.png"
        target.write_bytes(b"old")
        link.symlink_to(target)
        imageio.write_image(link, np.zeros((2, 2, 3), np.uint8))
        imageio.write_image(tmp_path / "new.png", np.zeros((2, 2, 3), np.uint16))
    finally:
        os.umask(umask)
    assert link.is_symlink() and imageio.read_image(target).shape == (2, 2, 3)
    assert (tmp_path / "new.png").stat().st_mode & 0o777 == 0o644
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png", "new.png", "target.png"]


# The CLI refuses bad input and output before any work: the run itself must not be reached.


@pytest.fixture()
def no_run(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The local and daemon runs, replaced by a stand-in that records the output it was given."""
    ran: list[Path] = []

    def run(content: Any, styles: Any, params: Any, args: Any, output: Path, *rest: Any) -> int:
        ran.append(output)
        return 0

    monkeypatch.setattr(stylize, "_stylize_local", run)
    monkeypatch.setattr(stylize, "_stylize_daemon", run)
    return ran


@pytest.fixture()
def images(tmp_path: Path) -> dict[str, str]:
    paths = {
        "dir": tmp_path,
        "u8": tmp_path / "u8.png",
        "rgba": tmp_path / "rgba.png",
        "u16": tmp_path / "u16.png",
        "style": tmp_path / "style.png",
    }
    imageio.write_image(paths["u8"], np.zeros((64, 64, 3), np.uint8))
    imageio.write_image(paths["rgba"], np.zeros((64, 64, 4), np.uint8))
    imageio.write_image(paths["u16"], np.zeros((64, 64, 3), np.uint16))
    imageio.write_image(paths["style"], np.zeros((96, 96, 3), np.uint8))
    (tmp_path / "folder.png").mkdir()
    return {k: str(v) for k, v in paths.items()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{u8}", "{style}", "-o", "{dir}/folder.png"], "folder.png: is a folder"),
        (["{u8}", "{style}", "-o", "{dir}/no/out.png"], "output folder does not exist"),
        (["{u16}", "{style}", "-o", "{dir}/out.jpg"], "only be written as .png"),
        (["{rgba}", "{style}", "-o", "{dir}/out.jpg"], "out.jpg: cannot write"),
        (["{u8}", "{style}", "-o", "{dir}/out.xyz"], "no image format for '.xyz'"),
        (["{u8}", "{style}", "-o", "{dir}/folder.png", "--daemon"], "is a folder"),
        (["{u8}", "{style}", "-o", "{dir}/out.png", "--max-pixels", "4095"], "u8.png: 64 x 64"),
        (
            ["{u8}", "{style}", "-o", "{dir}/out.png", "--max-pixels", "5000"],
            "style.png: 96 x 96 = 9,216 pixels, over the limit of 5,000",
        ),
        (
            ["{u8}", "{style}", "-o", "{dir}/out.png", "--curve-server-key", "{dir}/s.key"],
            "go with --daemon",
        ),
    ],
)
def test_the_cli_refuses_before_any_work(
    images: dict[str, str],
    no_run: list[Path],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    assert cli.main(["stylize", *[a.format(**images) for a in args]]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("nst: error: ") and message in err and err.count("\n") == 1, err
    assert no_run == []


def test_the_cli_checks_the_save_every_names(
    images: dict[str, str], no_run: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    Path(images["dir"], "out_iter0005.png").mkdir()
    argv = ["stylize", images["u8"], images["style"], "-o", f"{images['dir']}/out.png"]
    assert cli.main([*argv, "--save-every", "5"]) == cli.EXIT_USAGE
    assert "out_iter0005.png: is a folder" in capsys.readouterr().err
    assert cli.main([*argv, "--max-pixels", "9216"]) == 0  # the style, exactly at the limit
    assert no_run == [Path(images["dir"], "out.png")]
