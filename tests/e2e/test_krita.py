"""The Krita docker in a real Krita 5.1 (Debian's, under Xvfb) against the product's engine.

tests/hosts/krita_host.sh apt-installs Krita when missing. Each Krita run gets its own HOME,
XDG folders and TMPDIR, copied from a profile primed once (Krita spends ~30 s building its
resource database on a fresh profile) and kept in $NST_TEST_CACHE (~/.cache/nst-tests). The
plug-in goes in through the product's installer (`nst install-plugin krita` from the wheel's
venv, tests/e2e/product.py); a driver plug-in (tests/hosts/krita_driver.py) uses the docker's
widgets as a user would and dumps layers; this side judges the pixels with nst_core (Gram
style cost) and keeps screenshots and timings under $NST_ARTIFACTS (default ./artifacts).

Two Krita sessions:
- on demand (1920x1080): nothing answers at the endpoint; the first Stylize starts the
  product's engine, the other jobs find it warm, and it exits by itself after its idle time.
  One job makes the README's pictures: the astronaut photo at 384x288 in the swirls painting,
  zoomed to fill the canvas, the whole docker showing (during the run and with the result).
- fallback (1366x768): Krita's Python really without pyzmq (krita_host.sh without-zmq), so the
  plug-in reaches a hand-started engine through the bridge; its Engine settings turn starting
  on demand off, and a job after the engine stopped says so in both lines.
- regions (1920x1080): a style per region, each added from a selection with the docker's
  button, against a hand-started engine: two halves in two styles (each half judged against
  both styles), refused input, and the picture of the docker with two regions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import product
import pytest
from daemon_process import DaemonProc, free_port
from other_user import ROGUE, as_nobody

from nst_client import launcher, layouts
from nst_client.keyfiles import local_keys
from nst_client.settings import CONFIG_NAME, Settings, load
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
#: The docker's own defaults: the normal preset, the planner's working size (Auto), which on
#: a 64x48 layer is one scale at the layer's size: a job of seconds.
QUALITY = "normal"
#: The working size the planner picks for these layers (their long side): the style's size.
SIZE = 64
SELECTION = (16, 12, 32, 24)
#: The README's picture: a layer large enough to look like a picture, at the docker's defaults
#: (normal, Auto size: two scales, the last at the layer's size; ~30 s on 2 CPU cores).
README_W, README_H = 384, 288
README_STRENGTH = 40
#: The cancelled job: a time limit long enough that only the cancel ends it.
CANCEL_TIME_LIMIT_S = 600
#: Result vs style Gram cost must be below this fraction of source vs style.
STYLE_COST_RATIO = 0.5
#: The regions picture: astronaut 384x288, the left part in swirls, the right in mosaic, the
#: two selections fading into each other over REGIONS_FEATHER px, the job fitted into
#: REGIONS_PICTURE_TIME_S.
REGIONS_FEATHER = 48
REGIONS_PICTURE_TIME_S = 120
KRITA_TIMEOUT_S = 420
#: The idle time of the engine the on-demand session starts (the product's default: 30 min).
IDLE_EXIT_S = 20
SCREENS = {"ondemand": (1920, 1080), "fallback": (1366, 768), "regions": (1920, 1080)}
TIMINGS: dict[str, float] = {}


# --- host, profile, runs --------------------------------------------------------------------


@pytest.fixture(scope="module")
def krita_host() -> None:
    """Krita, Xvfb and Krita's python3 modules, installed on first use (root)."""
    if sys.platform != "linux":
        pytest.skip("the Krita host recipe is for Debian/Linux")
    proc = subprocess.run([str(HOST_SH), "install"], capture_output=True, text=True, timeout=900)
    if proc.returncode == 2:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, f"krita_host.sh install failed:\n{proc.stderr[-4000:]}"


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
    # The user's local engine keys, as one user's settings folder has them: the engine the
    # tests start (host_daemon) and Krita's plug-in are the same user's programs.
    keys = base / "config" / "nst" / "engine-keys"
    shutil.rmtree(keys, ignore_errors=True)
    shutil.copytree(local_keys().folder, keys)
    keys.chmod(0o700)
    return base


def _env(run: Path) -> dict[str, str]:
    """The run's own folders, and nothing of this process's NST_* settings."""
    return {
        "HOME": str(run / "home"),
        "XDG_CONFIG_HOME": str(run / "config"),
        "XDG_DATA_HOME": str(run / "data"),
        "XDG_CACHE_HOME": str(run / "cache"),
        "XDG_RUNTIME_DIR": str(run / "runtime"),
        "TMPDIR": str(run / "tmp"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
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


def _run_krita(
    run: Path, job: dict[str, Any], screen: tuple[int, int], without_zmq: bool = False
) -> dict[str, Any]:
    """Start Krita on the run's profile with the driver, on an Xvfb screen of this size (and
    with Debian's pyzmq hidden from it when without_zmq); returns the driver's report."""
    width, height = screen
    job = {
        "out": str(run / "out"),
        "artifacts": str(ARTIFACTS),
        "watchdog_s": KRITA_TIMEOUT_S - 20,
        "screen": [width, height],
        "tag": f"{width}x{height}",
        **job,
    }
    (run / "job.json").write_text(json.dumps(job))
    env = {**_env(run), "NST_KRITA_JOB": str(run / "job.json")}
    xvfb = f"-screen 0 {width}x{height}x24 -nolisten tcp -noreset"
    cmd = ["xvfb-run", "-a", "-s", xvfb, "krita", "--nosplash"]
    if without_zmq:
        cmd = [str(HOST_SH), "without-zmq", *cmd]
    cmd = ["timeout", "-k", "10", str(KRITA_TIMEOUT_S), *cmd]
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
    report = _run_krita(run, {"prime": True}, (1600, 1200))
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


def _install_plugin(run: Path, endpoint: str, *options: str) -> Path:
    """The product's `nst install-plugin krita` for this run's profile, as a user runs it;
    returns the plug-in package. It records the product's Python and engine."""
    done = subprocess.run(
        [product.bin_path("nst"), "install-plugin", "krita", "--endpoint", endpoint, *options],
        env=_env(run),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "restart Krita" in done.stdout, done.stdout
    package = run / "data" / "krita" / "pykrita" / "neural_style"
    # Krita puts pykrita on sys.path: the client package sits beside the plug-in package.
    assert (package.parent / "nst_client" / "launcher.py").is_file()
    assert not (package / "nst_client").exists()
    assert "enable_neural_style=true" in (run / "config" / "kritarc").read_text()
    settings = load(package / CONFIG_NAME, env={})
    assert settings.endpoint == endpoint and settings.transport == "auto"
    assert settings.python == product.python()
    assert settings.daemon == [product.bin_path("nst-daemon")], settings.daemon
    _install_driver(run)
    return package


# --- images --------------------------------------------------------------------------------


def _content_float(width: int = W, height: int = H) -> np.ndarray:
    """RGB 0..1 (64x48 unless told): the astronaut photo (smooth areas and edges), cropped
    to 4:3."""
    from PIL import Image
    from skimage import data

    photo = data.astronaut()[32:416, 0:512]
    small = Image.fromarray(photo).resize((width, height), Image.Resampling.LANCZOS)
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


def _from_krita(path: str, depth: str, width: int = W, height: int = H) -> np.ndarray:
    wire, dtype = layouts.krita_to_wire(Path(path).read_bytes(), depth)
    return layouts.to_array(layouts.describe(width, height, 4, dtype, 1), wire)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from PIL import Image

    from nst_app.demo import mosaic, swirls

    folder = tmp_path_factory.mktemp("krita-images")
    content = _content_float()
    style = _style_u8()
    Image.fromarray(style).save(folder / "bold_stripes.png")
    files = {"style": str(folder / "bold_stripes.png"), "style_array": style}
    # The README's pair: a painting an artist recognises as one, a photo at a real size.
    # In a folder of the kind an artist keeps paintings in: the docker shows the path's end.
    paintings = folder / "Pictures" / "Paintings"
    paintings.mkdir(parents=True)
    painting = swirls(256)
    Image.fromarray(painting).save(paintings / "swirls.png")
    files["swirls_array"] = painting
    files["swirls"] = str(paintings / "swirls.png")
    Image.fromarray(mosaic(256)).save(paintings / "mosaic.png")
    files["mosaic"] = str(paintings / "mosaic.png")
    readme = _rgba(_content_float(README_W, README_H), "u8")
    (folder / "readme_U8.raw").write_bytes(_krita_bytes(readme))
    files["readme"] = str(folder / "readme_U8.raw")
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

        from nst_client.params import DEFAULT_STYLE_LAYER_WEIGHTS
        from nst_core import costs, vgg

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


# --- the sessions --------------------------------------------------------------------------


def _case(name: str, depth: str, images: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "kind": "stylize",
        "name": name,
        "depth": depth,
        "width": W,
        "height": H,
        "content": images[depth],
        "style": images["style"],
        "quality": QUALITY,
        **extra,
    }


def _readme_case(images: dict[str, Any]) -> dict[str, Any]:
    """The job behind the README's pictures: one document tab, the image zoomed to fill the
    canvas, the docker 300 px wide below only the Layers docker, so all of it shows."""
    return _case(
        "readme",
        "U8",
        images,
        width=README_W,
        height=README_H,
        content=images["readme"],
        style=images["swirls"],
        strength=README_STRENGTH,
        zoom="fit",
        tool="PanTool",
        screenshots=True,
        during_at=0.6,
        close_others=True,
        file_name="astronaut.kra",
        dockers={"width": 300, "keep": {"Layers": 250}},
        timeout_s=180,
    )


def _process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.fixture(scope="module")
def ondemand_run(
    primed_profile: Path, images: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One Krita session (1920x1080, zmq: Debian's python3 has pyzmq) with no engine running:
    the first job starts the product's engine, which exits IDLE_EXIT_S after the last job."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    assert launcher.probe(Settings(endpoint=endpoint)).phase == launcher.STOPPED
    run = _new_run(tmp_path_factory.mktemp("krita") / "ondemand", primed_profile)
    _install_plugin(run, endpoint, "--idle-exit", str(IDLE_EXIT_S))
    steps = [
        _case("cold", "U8", images, shot_starting=True, timeout_s=300),
        _case("rgba8", "U8", images, screenshots=True, undo=True),
        _case("rgba16", "U16", images),
        _case("selection", "U8", images, selection=list(SELECTION), screenshots=True),
        _case(
            "cancel",
            "U8",
            images,
            quality="final",
            time_limit_s=CANCEL_TIME_LIMIT_S,
            cancel=True,
            timeout_s=90,
        ),
        _case("missing_style", "U8", images, style="/nonexistent/style.png"),
        _case("group_active", "U8", images, active="group"),
        _readme_case(images),  # last: it closes the other documents and moves the slider
        {"kind": "layout"},
        {"kind": "await_engine_exit", "timeout_s": IDLE_EXIT_S + 45},
    ]
    pid = None
    try:
        report = _run_krita(run, {"steps": steps}, SCREENS["ondemand"])
        pid = report["cases"]["cold"].get("engine_pid")
        report["endpoint_after"] = launcher.probe(Settings(endpoint=endpoint)).phase
        report["process_after"] = _process_state(pid) if pid else "unknown"
        # The engine's own log, where the launcher puts it (launcher.log_dir in the run's HOME).
        logs = sorted((run / "home" / ".local" / "state" / "nst").glob("engine-*.log"))
        report["engine_log"] = "".join(p.read_text(errors="replace") for p in logs)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "engine-ondemand.log").write_text(report["engine_log"])
        TIMINGS["ondemand_session_s"] = report["seconds"]
        yield report
    finally:
        if pid and _process_state(pid) not in ("gone", "Z"):
            os.kill(pid, signal.SIGTERM)  # the engine this Krita run started outlived its test


@pytest.fixture(scope="module")
def fallback_run(
    primed_profile: Path,
    host_daemon: DaemonProc,
    images: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """One Krita session (1366x768) whose Python cannot import zmq, in front of an engine
    started by hand (the product's nst-daemon): transport auto falls back to the bridge. At
    its end the docker is pointed at an address where another user (`nobody`) listens."""
    run = _new_run(tmp_path_factory.mktemp("krita") / "fallback", primed_profile)
    _install_plugin(run, host_daemon.endpoint)
    shared = Path(tempfile.mkdtemp(prefix="nst-rogue-"))
    shared.chmod(0o1777)  # the other user writes what it receives here
    rogue_port = free_port()
    rogue, rogue_uid = as_nobody(ROGUE, str(rogue_port), str(shared / "received"))
    assert rogue.stdout is not None and rogue.stdout.readline().strip() == "listening"
    steps = [
        _case("bridge8", "U8", images),
        {"kind": "layout"},
        {"kind": "settings", "values": {"start_on_demand": False}},
        {"kind": "stop_engine"},
        _case("engine_gone", "U8", images),
        {"kind": "settings", "values": {"endpoint": f"tcp://127.0.0.1:{rogue_port}"}},
        _case("other_users_listener", "U8", images),
    ]
    try:
        report = _run_krita(run, {"steps": steps}, SCREENS["fallback"], without_zmq=True)
    finally:
        rogue.kill()
        rogue.wait()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "daemon-fallback.log").write_text(host_daemon.log_text())
    received = shared / "received"
    report["rogue_uid"] = rogue_uid
    report["rogue_received"] = len(received.read_bytes()) if received.exists() else 0
    shutil.rmtree(shared, ignore_errors=True)
    report["daemon_log"] = host_daemon.log_text()
    report["kritarc"] = (run / "config" / "kritarc").read_text()
    TIMINGS["fallback_session_s"] = report["seconds"]
    return report


def _regions_picture_case(images: dict[str, Any]) -> dict[str, Any]:
    """The picture of regions: the README's photo, its left part in swirls (strength 60), its
    right part in mosaic (strength 45), the selections fading into each other, the docker
    300 px wide below a short Layers docker so that both regions and the result show."""
    half, feather = README_W // 2, REGIONS_FEATHER // 2
    return _case(
        "regions_picture",
        "U8",
        images,
        width=README_W,
        height=README_H,
        content=images["readme"],
        style=images["swirls"],
        regions=[
            {
                "rect": [0, 0, half + feather, README_H],
                "feather": ["right", REGIONS_FEATHER],
                "style": images["swirls"],
                "strength": 60,
            },
            {
                "rect": [half - feather, 0, README_W - half + feather, README_H],
                "feather": ["left", REGIONS_FEATHER],
                "style": images["mosaic"],
                "strength": 45,
            },
        ],
        deselect=True,
        show_regions=True,
        zoom="fit",
        tool="PanTool",
        screenshots=True,
        during_at=0.6,
        close_others=True,
        file_name="astronaut-regions.kra",
        dockers={"width": 300, "keep": {"Layers": 190}},
        # Fitted into a time (the docker's Time limit), so that the session's length does not
        # hang on how busy the machine is.
        time_limit_s=REGIONS_PICTURE_TIME_S,
        timeout_s=REGIONS_PICTURE_TIME_S + 90,
    )


@pytest.fixture(scope="module")
def regions_run(
    primed_profile: Path,
    images: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """One Krita session (1920x1080) in front of an engine started by hand: regions added
    from selections with the docker's button, as a user adds them. The engine is its own:
    the fallback session stops the shared one, and the plug-in would then start one on demand
    that outlives the tests."""
    daemon = DaemonProc(f"tcp://127.0.0.1:{free_port()}", "--device", "cpu")
    try:
        run = _new_run(tmp_path_factory.mktemp("krita") / "regions", primed_profile)
        _install_plugin(run, daemon.endpoint)
        halves = [
            {"rect": [0, 0, W // 2, H], "style": images["style"], "strength": 50},
            {"rect": [W // 2, 0, W - W // 2, H], "style": images["swirls"], "strength": 50},
        ]
        refused = [
            {"rect": None},  # nothing selected
            {"rect": [0, 0, W // 2, H]},  # the main style cannot be read: no style for it
        ]
        steps = [
            _case("two_regions", "U8", images, regions=halves),
            _case("bad_regions", "U8", images, style="/nonexistent/style.png", regions=refused),
            _regions_picture_case(images),
        ]
        report = _run_krita(run, {"steps": steps}, SCREENS["regions"])
        TIMINGS["regions_session_s"] = report["seconds"]
        yield report
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "daemon-regions.log").write_text(daemon.log_text())
        daemon.stop()


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
    assert rec["engine"].startswith("Style engine ready (CPU)"), rec["engine"]
    # The docker's controls as the job left them: a preset, no time limit, the planner's size.
    assert rec["controls"] == {
        "quality": QUALITY,
        "quality_enabled": True,
        "time_limit": "Off",
        "size": "Auto",
    }, rec["controls"]
    return rec


def _seen(rec: dict[str, Any], which: str) -> list[str]:
    return [text for _, w, text in rec["seen"] if w == which]


def _style_ratio(meter: StyleMeter, source: np.ndarray, result: np.ndarray) -> float:
    return meter.cost(result) / meter.cost(source)


# --- on demand -------------------------------------------------------------------------------


def test_the_first_stylize_starts_the_engine(
    ondemand_run: dict[str, Any], images: dict[str, Any], meter: StyleMeter
) -> None:
    assert ondemand_run["docker_found"] and ondemand_run["transport"] == "zmq"
    at_start = ondemand_run["engine_at_start"]
    assert at_start == "Style engine not running: it starts with the first job", at_start
    rec = _check_stylized(ondemand_run, "cold", "U8", images)
    bar, engine = _seen(rec, "bar"), _seen(rec, "engine")
    starting = [t for t in bar if t.startswith("Starting the style engine…")]
    assert starting, bar
    assert any(t != "Starting the style engine… 0%" for t in starting), "no load progress"
    # The engine line went from "not running" through "Starting…" to ready or busy.
    assert engine[0] == ondemand_run["engine_at_start"], engine
    first_start = next(i for i, t in enumerate(engine) if t.startswith("Starting the style"))
    first_up = next(
        i for i, t in enumerate(engine) if t.startswith(("Style engine ready", "Style engine busy"))
    )
    assert first_start < first_up, engine
    # The product's engine, started for this job and told to exit when idle.
    cmdline = rec["engine_cmdline"]
    assert product.bin_path("nst-daemon") in cmdline, cmdline
    assert cmdline[cmdline.index("--idle-exit") + 1] == str(IDLE_EXIT_S)
    assert "--on-demand" in cmdline
    ratio = _style_ratio(meter, images["U8_array"], _from_krita(rec["result"], "U8"))
    assert ratio < STYLE_COST_RATIO, f"style cost only fell to {ratio:.2f} of the source's"
    TIMINGS["click_to_first_feedback_cold_s"] = rec["first_feedback_s"]
    TIMINGS["click_to_first_progress_cold_s"] = rec["first_progress_s"]
    assert rec["first_feedback_s"] < 3.0, f"{rec['first_feedback_s']} s without a sign"
    shot = Path(rec["screenshots"]["starting"])
    assert shot.exists() and shot.stat().st_size > 2000, shot


def test_the_next_job_finds_the_engine_warm(ondemand_run: dict[str, Any]) -> None:
    cold, warm = ondemand_run["cases"]["cold"], ondemand_run["cases"]["rgba8"]
    assert not [t for t in _seen(warm, "bar") if t.startswith("Starting")], _seen(warm, "bar")
    assert warm["engine_pid"] == cold["engine_pid"], "a second engine was started"
    TIMINGS["click_to_first_feedback_warm_s"] = warm["first_feedback_s"]
    TIMINGS["click_to_first_progress_warm_s"] = warm["first_progress_s"]
    assert warm["first_progress_s"] < cold["first_progress_s"]


def test_docker_stylizes_8bit_layer_and_undo_removes_it(
    ondemand_run: dict[str, Any], images: dict[str, Any], meter: StyleMeter
) -> None:
    rec = _check_stylized(ondemand_run, "rgba8", "U8", images)
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
    ondemand_run: dict[str, Any], images: dict[str, Any], meter: StyleMeter
) -> None:
    rec = _check_stylized(ondemand_run, "rgba16", "U16", images)
    result = _from_krita(rec["result"], "U16")
    assert result.dtype == np.uint16
    # Real 16-bit output, not 8-bit values widened: most values are not multiples of 257.
    assert np.mean(result[:, :, :3] % 257 != 0) > 0.5
    ratio = _style_ratio(meter, images["U16_array"], result)
    TIMINGS["style_cost_ratio_rgba16"] = ratio
    assert ratio < STYLE_COST_RATIO, f"style cost only fell to {ratio:.2f} of the source's"


def test_docker_stylizes_only_the_selection(
    ondemand_run: dict[str, Any], images: dict[str, Any], meter: StyleMeter
) -> None:
    rec = _check_stylized(ondemand_run, "selection", "U8", images)
    result = _from_krita(rec["result"], "U8")
    x, y, w, h = SELECTION
    inside = np.zeros((H, W), dtype=bool)
    inside[y : y + h, x : x + w] = True
    assert (result[~inside] == 0).all(), "pixels outside the selection are not transparent"
    assert (result[inside][:, 3] == 255).all()
    source = images["U8_array"]
    changed = np.abs(result[inside][:, :3].astype(int) - source[inside][:, :3]).mean()
    assert changed > 10, f"the selected part barely changed (mean {changed:.1f} levels)"


def test_the_readme_pictures(ondemand_run: dict[str, Any]) -> None:
    """A 384x288 layer stylized with the swirls painting: a new layer that differs from the
    photo, and whole-window pictures during the run and with the result (looked at by eye)."""
    from PIL import Image

    rec = ondemand_run["cases"]["readme"]
    assert rec["outcomes"] == ["done"], rec["status"]
    assert rec["layers_after"] == ["Photo", "Photo (swirls style)", "Top"], rec["layers_after"]
    assert rec["active_after"] == "Photo (swirls style)"
    size = (README_W, README_H)
    source = _from_krita(rec["source_before"], "U8", *size)
    result = _from_krita(rec["result"], "U8", *size)
    assert (result[:, :, 3] == 255).all()
    changed = np.abs(result[:, :, :3].astype(int) - source[:, :, :3]).mean()
    assert changed > 10, f"the result barely differs from the photo (mean {changed:.1f} levels)"
    assert rec["zoom"] >= 2.0, rec["zoom"]
    TIMINGS["readme_job_s"] = rec["job_s"]
    for key, name in (
        ("during", "krita_readme_during_run.png"),
        ("result", "krita_readme_result.png"),
    ):
        shot = Path(rec["screenshots"][key])
        assert shot.name == name and shot.exists(), shot
        with Image.open(shot) as picture:
            assert picture.size == SCREENS["ondemand"], picture.size


def test_cancel_adds_no_layer(ondemand_run: dict[str, Any]) -> None:
    rec = ondemand_run["cases"]["cancel"]
    assert rec["outcomes"] == ["cancelled"], rec["status"]
    # A time limit: the quality does not apply, and the docker greys it.
    assert rec["controls"] == {
        "quality": "final",
        "quality_enabled": False,
        "time_limit": "10 min",
        "size": "Auto",
    }, rec["controls"]
    assert rec["layers_after"] == ["Photo", "Top"]
    assert rec["job_s"] < 60, "cancel took too long"
    assert Path(rec["source_after"]).read_bytes() == Path(rec["source_before"]).read_bytes()


def test_missing_style_gives_clear_message(ondemand_run: dict[str, Any]) -> None:
    rec = ondemand_run["cases"]["missing_style"]
    assert rec["outcomes"] == ["failed"]
    assert "style image not found: /nonexistent/style.png" in rec["status"]
    assert rec["layers_after"] == ["Photo", "Top"]


def test_group_layer_is_refused_with_a_message(ondemand_run: dict[str, Any]) -> None:
    rec = ondemand_run["cases"]["group_active"]
    assert rec["outcomes"] == ["failed"]
    assert "the active layer 'Group' is a grouplayer; select a paint layer" in rec["status"]
    assert rec["layers_after"] == ["Photo", "Top", "Group"]


def test_the_engine_exits_when_idle(ondemand_run: dict[str, Any]) -> None:
    rec = ondemand_run["engine_exit"]
    assert rec["said_not_running"], rec["engine"]
    assert rec["engine"] == "Style engine not running: it starts with the first job"
    assert rec["process"] == "gone", f"the engine's process is {rec['process']}"
    assert rec["waited_s"] < IDLE_EXIT_S + 30
    assert ondemand_run["endpoint_after"] == launcher.STOPPED
    assert ondemand_run["process_after"] == "gone"
    log = ondemand_run["engine_log"]
    assert f"no job for {IDLE_EXIT_S:g} s (--idle-exit): exiting" in log, log[-2000:]


# --- layout ----------------------------------------------------------------------------------


@pytest.mark.parametrize("session", ["ondemand", "fallback"])
def test_the_docker_fits_260_px(session: str, request: pytest.FixtureRequest) -> None:
    report = request.getfixturevalue(f"{session}_run")
    rec = report["layout"]
    width, height = SCREENS[session]
    assert rec["window"] == [width, height]
    assert not rec["floating"] and rec["dock"][0] <= 270, rec["dock"]
    for key in ("collapsed", "settings"):
        assert rec[key]["problems"] == [], (key, rec[key]["problems"])
        assert rec[key]["viewport"][0] <= 260
        shot = Path(rec[key]["screenshot"])
        assert shot.exists() and shot.stat().st_size > 2000, shot
    assert Path(rec["content_screenshot"]).stat().st_size > 2000


# --- fallback to the bridge ------------------------------------------------------------------


def test_without_pyzmq_the_docker_falls_back_to_the_bridge(
    fallback_run: dict[str, Any], images: dict[str, Any], meter: StyleMeter
) -> None:
    assert not fallback_run["zmq_importable"], "Krita's Python still imports zmq"
    assert fallback_run["transport"] == "bridge"
    assert fallback_run["bridge_command"] == [product.python()]
    assert fallback_run["engine_at_start"] == "Style engine ready (CPU)"
    assert "transport bridge" in fallback_run["engine_details_at_start"]
    rec = _check_stylized(fallback_run, "bridge8", "U8", images)
    ratio = _style_ratio(meter, images["U8_array"], _from_krita(rec["result"], "U8"))
    assert ratio < STYLE_COST_RATIO
    assert "krita-neural-style/bridge" in fallback_run["daemon_log"]


def test_engine_settings_and_a_failure_replacing_the_state(fallback_run: dict[str, Any]) -> None:
    """Start on demand turned off in the docker (saved in kritarc), the engine stopped: the
    job fails saying so, and the engine line says "not running", never "ready"."""
    assert fallback_run["settings_message"] == "Saved; the docker uses these settings now."
    assert "[neural_style]" in fallback_run["kritarc"]
    assert "start_on_demand=false" in fallback_run["kritarc"]
    assert fallback_run["engine_stopped"] and fallback_run["engine_line_followed_stop"]
    rec = fallback_run["cases"]["engine_gone"]
    assert rec["outcomes"] == ["failed"], rec["status"]
    assert "starting the engine when needed is turned off" in rec["status"], rec["status"]
    assert rec["engine"].startswith("Style engine not running: starting the engine"), rec
    assert "ready" not in rec["engine"]
    assert rec["layers_after"] == ["Photo", "Top"]


def test_another_users_listener_gets_nothing_from_the_docker(fallback_run: dict[str, Any]) -> None:
    """`nobody` listens on the address the docker is set to: the job fails at once saying
    whose process holds it, the listener receives not one byte, the document is unchanged."""
    rec = fallback_run["cases"]["other_users_listener"]
    assert rec["outcomes"] == ["failed"], rec["status"]
    words = f"nother user's process (uid {fallback_run['rogue_uid']}) holds tcp://127.0.0.1:"
    assert words in rec["status"], rec["status"]
    assert rec["layers_after"] == ["Photo", "Top"]
    assert fallback_run["rogue_received"] == 0


# --- regions ---------------------------------------------------------------------------------


def _halves_nearer_their_own_style(
    meters: dict[str, StyleMeter], source: np.ndarray, result: np.ndarray
) -> dict[str, dict[str, float]]:
    """For each half: its style cost against each style, as a fraction of the source's."""
    half = W // 2
    parts = {"left": np.s_[:, :half], "right": np.s_[:, half:]}
    return {
        side: {
            name: meter.cost(result[part]) / meter.cost(source[part])
            for name, meter in meters.items()
        }
        for side, part in parts.items()
    }


def test_docker_stylizes_two_regions_each_in_its_style(
    regions_run: dict[str, Any], images: dict[str, Any], meter: StyleMeter
) -> None:
    """Left half in the bold stripes, right half in the swirls, each added from a selection
    (the last one still active: the regions say where, not the selection): one new layer,
    the source untouched, each half moved nearer its own style than the other's."""
    rec = regions_run["cases"]["two_regions"]
    assert rec["outcomes"] == ["done"], rec["status"]
    assert rec["region_messages"] == [
        f"Added region 1 from the selection ({W // 2}x{H} px; bold_stripes.png).",
        f"Added region 2 from the selection ({W - W // 2}x{H} px; bold_stripes.png).",
    ]
    assert rec["region_labels"] == ["1. Selection\nbold_stripes.png", "2. Selection\nswirls.png"]
    assert rec["region_strengths"] == [50, 50]
    assert rec["region_thumbnails"] == [[44, 33], [44, 33]]  # the canvas's 4:3
    assert rec["region_style_icons"] == [True, True]
    name = "Photo (bold_stripes + swirls style)"
    assert rec["layers_before"] == ["Photo", "Top"]
    assert rec["layers_after"] == ["Photo", name, "Top"], rec["layers_after"]
    assert rec["result_name"] == name and rec["active_after"] == name
    before = Path(rec["source_before"]).read_bytes()
    assert before == Path(images["U8"]).read_bytes()
    assert Path(rec["source_after"]).read_bytes() == before, "the source layer was modified"
    assert rec["preview_has_image"], "no live preview was shown"
    assert rec["gui_max_gap_s"] < 1.5, f"Krita's GUI froze for {rec['gui_max_gap_s']:.2f} s"
    source, result = images["U8_array"], _from_krita(rec["result"], "U8")
    assert (result[:, :, 3] == 255).all()  # the two halves cover the layer
    meters = {"stripes": meter, "swirls": StyleMeter(images["swirls_array"])}
    ratios = _halves_nearer_their_own_style(meters, source, result)
    for side, by_style in ratios.items():
        for style_name, ratio in by_style.items():
            TIMINGS[f"regions_{side}_half_{style_name}_cost_ratio"] = ratio
    left, right = ratios["left"], ratios["right"]
    assert left["stripes"] < min(left["swirls"], STYLE_COST_RATIO), ratios
    assert right["swirls"] < min(right["stripes"], STYLE_COST_RATIO), ratios


def test_bad_regions_are_refused_with_words(regions_run: dict[str, Any]) -> None:
    """Adding a region with nothing selected, and a region with no style: each said in the
    docker's job line, nothing added to the document."""
    rec = regions_run["cases"]["bad_regions"]
    nothing, no_style = rec["region_messages"]
    assert nothing.startswith("Cannot add a region: nothing is selected: select where"), nothing
    assert (
        no_style
        == f"Added region 1 from the selection ({W // 2}x{H} px; no style yet: choose one)."
    )
    assert rec["region_labels"] == ["1. Selection\nno style yet"]
    assert rec["outcomes"] == ["failed"]
    assert rec["status"] == (
        "Cannot stylize: region 1 (selection) has no style image: choose one with its style button"
    )
    assert rec["layers_after"] == ["Photo", "Top"]
    assert Path(rec["source_after"]).read_bytes() == Path(rec["source_before"]).read_bytes()


def test_the_regions_picture(regions_run: dict[str, Any]) -> None:
    """The README's photo in two regions fading into each other: the left part swirls at 60,
    the right mosaic at 45; the docker shows both rows and the canvas the result (looked at
    by eye: docs/screenshots/krita-regions.jpg is made from it)."""
    from PIL import Image

    rec = regions_run["cases"]["regions_picture"]
    assert rec["outcomes"] == ["done"], rec["status"]
    assert rec["region_labels"] == ["1. Selection\nswirls.png", "2. Selection\nmosaic.png"]
    assert rec["region_strengths"] == [60, 45]
    name = "Photo (swirls + mosaic style)"
    assert rec["layers_after"] == ["Photo", name, "Top"], rec["layers_after"]
    size = (README_W, README_H)
    source = _from_krita(rec["source_before"], "U8", *size)
    result = _from_krita(rec["result"], "U8", *size)
    assert (result[:, :, 3] == 255).all()
    for part in (np.s_[:, : README_W // 3], np.s_[:, -README_W // 3 :]):
        changed = np.abs(result[part][:, :, :3].astype(int) - source[part][:, :, :3]).mean()
        assert changed > 10, f"a region barely differs from the photo ({changed:.1f} levels)"
    TIMINGS["regions_picture_job_s"] = rec["job_s"]
    shot = Path(rec["screenshots"]["result"])
    assert shot.name == "krita_regions_picture_result.png" and shot.exists(), shot
    with Image.open(shot) as picture:
        assert picture.size == SCREENS["regions"], picture.size


def teardown_module() -> None:
    if TIMINGS:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "timings.json").write_text(json.dumps(TIMINGS, indent=1))
