"""The Krita docker in a real Krita 5.1 (Debian's, under Xvfb) against a real daemon process.

tests/hosts/krita_host.sh apt-installs Krita when missing. Each Krita run gets its own HOME,
XDG folders and TMPDIR, copied from a profile primed once (Krita spends ~30 s building its
resource database on a fresh profile) and kept in $NST_TEST_CACHE (~/.cache/nst-tests). The
plug-in goes in through the real installer; a driver plug-in (tests/hosts/krita_driver.py)
uses the docker's widgets as a user would and dumps layers; this side judges the pixels with
nst_core (Gram style cost) and saves screenshots under $NST_ARTIFACTS (default ./artifacts).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daemon_process import DaemonProc

from nst_client import layouts
from nst_plugins import install as plugin_install
from nst_plugins import krita_installer

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
HOSTS = REPO / "tests" / "hosts"
HOST_SH = HOSTS / "krita_host.sh"
DRIVER = HOSTS / "krita_driver.py"
CACHE = Path(os.environ.get("NST_TEST_CACHE", "~/.cache/nst-tests")).expanduser()
ARTIFACTS = Path(os.environ.get("NST_ARTIFACTS", REPO / "artifacts")) / "krita"
PROFILE_DIRS = ("home", "config", "data", "cache")
W, H = 64, 48
ITERATIONS, SIZE = 20, 64
SELECTION = (16, 12, 32, 24)
#: Result vs style Gram cost must be below this fraction of source vs style.
STYLE_COST_RATIO = 0.5
KRITA_TIMEOUT_S = 300
TIMINGS: dict[str, float] = {}


# --- host, daemon, profile ------------------------------------------------------------------


@pytest.fixture(scope="module")
def krita_host() -> None:
    """Krita, Xvfb and Krita's python3 modules, installed on first use (root)."""
    if sys.platform != "linux":
        pytest.skip("the Krita host recipe is for Debian/Linux")
    proc = subprocess.run([str(HOST_SH), "install"], capture_output=True, text=True, timeout=900)
    if proc.returncode == 2:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, f"krita_host.sh install failed:\n{proc.stderr[-4000:]}"


@pytest.fixture(scope="module")
def daemon_endpoint(host_daemon: DaemonProc) -> Iterator[str]:
    """The host daemon's endpoint; its log is kept with the screenshots."""
    try:
        yield host_daemon.endpoint
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "daemon.log").write_text(host_daemon.log_text())


def _krita_version() -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "krita"], capture_output=True, text=True
    )
    return proc.stdout.strip() or "unknown"


def _new_run(base: Path, profile: Path | None) -> Path:
    """A folder for one isolated Krita run, starting from a copy of the primed profile."""
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    for name in PROFILE_DIRS:
        if profile is not None and (profile / name).exists():
            shutil.copytree(profile / name, base / name, symlinks=True)
        else:
            (base / name).mkdir()
    for name in ("tmp", "runtime", "out"):
        (base / name).mkdir()
    (base / "runtime").chmod(0o700)
    return base


def _env(run: Path) -> dict[str, str]:
    return {
        "HOME": str(run / "home"),
        "XDG_CONFIG_HOME": str(run / "config"),
        "XDG_DATA_HOME": str(run / "data"),
        "XDG_CACHE_HOME": str(run / "cache"),
        "XDG_RUNTIME_DIR": str(run / "runtime"),
        "TMPDIR": str(run / "tmp"),
    }


def _install_driver(run: Path) -> None:
    pykrita = krita_installer.pykrita_dir(_env(run))
    (pykrita / "nst_test_driver").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DRIVER, pykrita / "nst_test_driver" / "__init__.py")
    (pykrita / "nst_test_driver.desktop").write_text(
        "[Desktop Entry]\nType=Service\nServiceTypes=Krita/PythonPlugin\n"
        "X-KDE-Library=nst_test_driver\nX-Python-2-Compatible=false\nName=NST test driver\n"
    )
    krita_installer.set_enabled(krita_installer.kritarc_path(_env(run)), True, "nst_test_driver")


def _run_krita(run: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Start Krita on the run's profile with the driver; returns the driver's report."""
    job = {
        "out": str(run / "out"),
        "artifacts": str(ARTIFACTS),
        "watchdog_s": KRITA_TIMEOUT_S - 20,
        **job,
    }
    (run / "job.json").write_text(json.dumps(job))
    env = {
        **_env(run),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "NST_KRITA_JOB": str(run / "job.json"),
    }
    cmd = [
        "timeout",
        "-k",
        "10",
        str(KRITA_TIMEOUT_S),
        "xvfb-run",
        "-a",
        "-s",
        "-screen 0 1600x1200x24 -nolisten tcp -noreset",
        "krita",
        "--nosplash",
    ]
    started = time.monotonic()
    with open(run / "krita.log", "w") as log:
        proc = subprocess.run(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=KRITA_TIMEOUT_S + 30
        )
    took = time.monotonic() - started
    report_path = run / "out" / "report.json"
    tail = (run / "krita.log").read_text(errors="replace")[-3000:]
    assert report_path.exists(), f"Krita wrote no report (exit {proc.returncode}):\n{tail}"
    report = json.loads(report_path.read_text())
    report["exit_code"], report["seconds"] = proc.returncode, took
    assert not report["errors"], "errors inside Krita:\n" + "\n".join(report["errors"])
    assert proc.returncode == 0, f"Krita exited with {proc.returncode}:\n{tail}"
    return report


@pytest.fixture(scope="module")
def primed_profile(krita_host: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Krita profile whose resource database is built (once per Krita version)."""
    profile = CACHE / "krita-profile"
    stamp = profile / "stamp"
    version = _krita_version()
    if stamp.exists() and stamp.read_text() == version:
        return profile
    run = _new_run(tmp_path_factory.mktemp("krita") / "prime", None)
    _install_driver(run)
    report = _run_krita(run, {"prime": True})
    TIMINGS["fresh_profile_run_s"] = report["seconds"]
    if profile.exists():
        shutil.rmtree(profile)
    profile.mkdir(parents=True)
    for name in PROFILE_DIRS:
        shutil.copytree(
            run / name, profile / name, symlinks=True, ignore=shutil.ignore_patterns("pykrita")
        )
    # The driver's enable line stays harmless: no driver files are copied with the profile.
    stamp.write_text(version)
    return profile


# --- images --------------------------------------------------------------------------------


def _content_float() -> np.ndarray:
    """64x48 RGB 0..1: the astronaut photo (smooth areas and edges), cropped to 4:3."""
    from PIL import Image
    from skimage import data

    photo = data.astronaut()[32:416, 0:512]
    small = Image.fromarray(photo).resize((W, H), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.float64) / 255.0


def _style_u8() -> np.ndarray:
    """A bold coloured pattern: diagonal stripes and dots, nothing like a photo's statistics."""
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float64)
    stripes = (np.sin((xx + yy) * 0.6) > 0).astype(np.float64)
    dots = ((np.sin(xx * 0.9) * np.sin(yy * 0.9)) > 0.6).astype(np.float64)
    rgb = np.stack([0.95 * stripes + 0.05, 0.2 + 0.7 * dots, 0.9 * (1 - stripes)], axis=2)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def _rgba(rgb01: np.ndarray, dtype: str) -> np.ndarray:
    top = 255 if dtype == "u8" else 65535
    rgb = np.clip(np.rint(rgb01 * top), 0, top).astype(np.uint8 if dtype == "u8" else np.uint16)
    alpha = np.full(rgb.shape[:2] + (1,), top, dtype=rgb.dtype)
    return np.concatenate([rgb, alpha], axis=2)


def _krita_bytes(rgba: np.ndarray) -> bytes:
    desc, data = layouts.from_array(rgba, 1)
    return layouts.wire_to_krita(data, desc["dtype"])


def _from_krita(path: str, depth: str) -> np.ndarray:
    wire, dtype = layouts.krita_to_wire(Path(path).read_bytes(), depth)
    return layouts.to_array(layouts.describe(W, H, 4, dtype, 1), wire)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("krita-images")
    content = _content_float()
    style = _style_u8()
    Image.fromarray(style).save(folder / "bold_stripes.png")
    files = {"style": str(folder / "bold_stripes.png"), "style_array": style}
    for depth, dtype in (("U8", "u8"), ("U16", "u16")):
        rgba = _rgba(content, dtype)
        (folder / f"content_{depth}.raw").write_bytes(_krita_bytes(rgba))
        files[depth] = str(folder / f"content_{depth}.raw")
        files[f"{depth}_array"] = rgba
    return files


class StyleMeter:
    """Gram style cost against the style image, with the engine's VGG-19 and cost functions."""

    def __init__(self, style_u8: np.ndarray) -> None:
        import torch

        from nst_core import costs, vgg
        from nst_core.params import DEFAULT_STYLE_LAYER_WEIGHTS

        self.torch, self.costs = torch, costs
        self.layers = [name for name, _ in DEFAULT_STYLE_LAYER_WEIGHTS]
        self.weights = DEFAULT_STYLE_LAYER_WEIGHTS
        self.model = vgg.build("caffe")
        # The engine sizes the style to the working size (long side SIZE, style_scale 1).
        from PIL import Image

        small = Image.fromarray(style_u8).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
        self.style = self._features(np.asarray(small, dtype=np.float64) / 255.0)

    def _features(self, rgb01: np.ndarray) -> dict[str, Any]:
        x = self.torch.tensor(rgb01[:, :, :3], dtype=self.torch.float32)
        with self.torch.no_grad():
            return self.model(x.permute(2, 0, 1)[None].contiguous(), self.layers)

    def cost(self, rgba: np.ndarray) -> float:
        top = 255.0 if rgba.dtype == np.uint8 else 65535.0
        with self.torch.no_grad():
            value = self.costs.style_cost(self.style, self._features(rgba / top), self.weights)
        return float(value)


@pytest.fixture(scope="module")
def meter(images: dict[str, Any]) -> StyleMeter:
    return StyleMeter(images["style_array"])


# --- the runs ------------------------------------------------------------------------------


def _case(name: str, depth: str, images: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "depth": depth,
        "width": W,
        "height": H,
        "content": images[depth],
        "style": images["style"],
        "iterations": ITERATIONS,
        "size": SIZE,
        **extra,
    }


def _krita_with_plugin(
    tmp: Path, profile: Path, endpoint: str, transport: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A run folder with the plug-in put in place by the product's installer (default paths)."""
    run = _new_run(tmp, profile)
    for key, value in _env(run).items():
        monkeypatch.setenv(key, value)
    package = plugin_install.install("krita", None, endpoint, transport)
    assert package == run / "data" / "krita" / "pykrita" / "neural_style"
    # Krita puts pykrita on sys.path: the client package sits beside the plug-in package.
    assert (package.parent / "nst_client" / "client.py").is_file()
    assert not (package / "nst_client").exists()
    assert "enable_neural_style=true" in (run / "config" / "kritarc").read_text()
    _install_driver(run)
    return run


@pytest.fixture(scope="module")
def zmq_run(
    primed_profile: Path,
    daemon_endpoint: str,
    images: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """One Krita session through the default transport (zmq: Debian's python3 has pyzmq)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        run = _krita_with_plugin(
            tmp_path_factory.mktemp("krita") / "zmq",
            primed_profile,
            daemon_endpoint,
            "auto",
            monkeypatch,
        )
    cases = [
        _case("rgba8", "U8", images, screenshots=True, undo=True),
        _case("rgba16", "U16", images),
        _case("selection", "U8", images, selection=list(SELECTION), screenshots=True),
        _case("cancel", "U8", images, iterations=3000, cancel=True, timeout_s=90),
        _case("missing_style", "U8", images, style="/nonexistent/style.png"),
        _case("group_active", "U8", images, active="group"),
    ]
    report = _run_krita(run, {"cases": cases})
    TIMINGS["primed_zmq_run_s"] = report["seconds"]
    return report


@pytest.fixture(scope="module")
def bridge_run(
    primed_profile: Path,
    daemon_endpoint: str,
    images: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """A second session with the bridge forced by the installed config (transport=bridge)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        run = _krita_with_plugin(
            tmp_path_factory.mktemp("krita") / "bridge",
            primed_profile,
            daemon_endpoint,
            "bridge",
            monkeypatch,
        )
    config = json.loads((run / "data/krita/pykrita/neural_style/nst_config.json").read_text())
    assert config["transport"] == "bridge"
    report = _run_krita(run, {"cases": [_case("bridge8", "U8", images)]})
    TIMINGS["primed_bridge_run_s"] = report["seconds"]
    return report


def _check_stylized(
    report: dict[str, Any], name: str, depth: str, images: dict[str, Any]
) -> dict[str, Any]:
    """The common checks: new layer directly above the source, stylized, source untouched."""
    rec = report["cases"][name]
    assert rec["outcomes"] == ["done"], rec["status"]
    assert rec["active_before"] == "Photo"
    assert rec["layers_before"] == ["Photo", "Top"]
    assert rec["layers_after"] == ["Photo", rec["result_name"], "Top"], rec["layers_after"]
    assert rec["result_name"] == "Photo (bold_stripes style)"
    assert rec["active_after"] == rec["result_name"]
    assert rec["result_depth"] == depth
    before = Path(rec["source_before"]).read_bytes()
    assert before == Path(images[depth]).read_bytes()
    assert Path(rec["source_after"]).read_bytes() == before, "the source layer was modified"
    assert rec["preview_has_image"], "no live preview was shown"
    assert rec["gui_max_gap_s"] < 1.5, f"Krita's GUI froze for {rec['gui_max_gap_s']:.2f} s"
    return rec


def _style_ratio(meter: StyleMeter, source: np.ndarray, result: np.ndarray) -> float:
    return meter.cost(result) / meter.cost(source)


def test_docker_stylizes_8bit_layer_and_undo_removes_it(
    zmq_run: dict[str, Any], images: dict[str, Any], meter: StyleMeter
) -> None:
    assert zmq_run["docker_found"]
    assert zmq_run["daemon_answered"], zmq_run["daemon_status_at_start"]
    status = zmq_run["daemon_status_at_start"]
    assert status.startswith("Daemon connected: cpu via zmq"), status
    assert "reinstall" not in status, "the installed client is not the daemon's version"
    rec = _check_stylized(zmq_run, "rgba8", "U8", images)
    result = _from_krita(rec["result"], "U8")
    assert (result[:, :, 3] == 255).all()
    ratio = _style_ratio(meter, images["U8_array"], result)
    TIMINGS["style_cost_ratio_rgba8"] = ratio
    assert ratio < STYLE_COST_RATIO, f"style cost only fell to {ratio:.2f} of the source's"
    assert rec["layers_after_undo"] == ["Photo", "Top"], "undo did not remove the new layer"
    assert rec["layers_after_redo"] == ["Photo", rec["result_name"], "Top"]
    for key in ("during", "docker_during", "result"):
        shot = Path(rec["screenshots"][key])
        assert shot.exists() and shot.stat().st_size > 2000, shot


def test_docker_handles_16bit_document(
    zmq_run: dict[str, Any], images: dict[str, Any], meter: StyleMeter
) -> None:
    rec = _check_stylized(zmq_run, "rgba16", "U16", images)
    result = _from_krita(rec["result"], "U16")
    assert result.dtype == np.uint16
    # Real 16-bit output, not 8-bit values widened: most values are not multiples of 257.
    assert np.mean(result[:, :, :3] % 257 != 0) > 0.5
    ratio = _style_ratio(meter, images["U16_array"], result)
    TIMINGS["style_cost_ratio_rgba16"] = ratio
    assert ratio < STYLE_COST_RATIO, f"style cost only fell to {ratio:.2f} of the source's"


def test_docker_stylizes_only_the_selection(
    zmq_run: dict[str, Any], images: dict[str, Any], meter: StyleMeter
) -> None:
    rec = _check_stylized(zmq_run, "selection", "U8", images)
    result = _from_krita(rec["result"], "U8")
    x, y, w, h = SELECTION
    inside = np.zeros((H, W), dtype=bool)
    inside[y : y + h, x : x + w] = True
    assert (result[~inside] == 0).all(), "pixels outside the selection are not transparent"
    assert (result[inside][:, 3] == 255).all()
    source = images["U8_array"]
    changed = np.abs(result[inside][:, :3].astype(int) - source[inside][:, :3]).mean()
    assert changed > 10, f"the selected part barely changed (mean {changed:.1f} levels)"


def test_cancel_adds_no_layer(zmq_run: dict[str, Any]) -> None:
    rec = zmq_run["cases"]["cancel"]
    assert rec["outcomes"] == ["cancelled"], rec["status"]
    assert rec["layers_after"] == ["Photo", "Top"]
    assert rec["job_s"] < 60, "cancel took too long"
    assert Path(rec["source_after"]).read_bytes() == Path(rec["source_before"]).read_bytes()


def test_missing_style_gives_clear_message(zmq_run: dict[str, Any]) -> None:
    rec = zmq_run["cases"]["missing_style"]
    assert rec["outcomes"] == ["failed"]
    assert "style image not found: /nonexistent/style.png" in rec["status"]
    assert rec["layers_after"] == ["Photo", "Top"]


def test_group_layer_is_refused_with_a_message(zmq_run: dict[str, Any]) -> None:
    rec = zmq_run["cases"]["group_active"]
    assert rec["outcomes"] == ["failed"]
    assert "the active layer 'Group' is a grouplayer; select a paint layer" in rec["status"]
    assert rec["layers_after"] == ["Photo", "Top", "Group"]


def test_bridge_transport_forced_by_config(
    bridge_run: dict[str, Any], images: dict[str, Any], meter: StyleMeter
) -> None:
    assert "via bridge" in bridge_run["daemon_status_at_start"], bridge_run[
        "daemon_status_at_start"
    ]
    rec = _check_stylized(bridge_run, "bridge8", "U8", images)
    assert "via bridge" in rec["daemon_status"]
    ratio = _style_ratio(meter, images["U8_array"], _from_krita(rec["result"], "U8"))
    assert ratio < STYLE_COST_RATIO


def teardown_module() -> None:
    if TIMINGS:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "timings.json").write_text(json.dumps(TIMINGS, indent=1))
