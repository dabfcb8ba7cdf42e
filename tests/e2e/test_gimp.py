"""The GIMP 3 plug-in in a real GIMP 3.0 (Debian 13 chroot), against a real daemon process.

tests/hosts/gimp_rootfs.sh builds (first run, ~2-4 min) or reuses (~/.cache/nst-tests) a
trixie rootfs with GIMP 3; the plug-in goes into the chroot user's plug-ins folder through the
product's installer (`nst install-plugin gimp`, tests/e2e/product.py); gimp-console-3.0 runs
tests/hosts/gimp_driver.py, which calls plug-in-nst-stylize non-interactively and dumps pixels
into the shared /io folder; this side judges them with nst_core (style cost). The dialogs run
on Xvfb (screenshots under $NST_ARTIFACTS/gimp, default ./artifacts), and the engine on
demand runs the product itself inside the chroot (bound in read-only). Needs root (chroot,
mounts); skipped otherwise. docs/hosts.md describes the host and how it is driven.
"""

from __future__ import annotations

import contextlib
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

import nst_client
from nst_client import launcher, layouts
from nst_client.client import DaemonUnavailable, connect
from nst_client.errors import ForeignListener
from nst_client.keyfiles import local_keys
from nst_client.settings import CONFIG_NAME, Settings, load
from nst_core.pixels import from_unit_float, to_unit_float

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
HOSTS = REPO / "tests" / "hosts"
ROOTFS_SH = HOSTS / "gimp_rootfs.sh"
TESTER_PLUGINS = "home/tester/.config/GIMP/3.0/plug-ins"
#: The local engine keys of the chroot's user (an engine GIMP starts there makes them).
TESTER_KEYS = "home/tester/.config/nst/engine-keys"
#: GIMP's last-used values of an interactive run (plug-in-settings/PROC.last).
TESTER_LAST_VALUES = "home/tester/.config/GIMP/3.0/plug-in-settings"
#: Where an engine started on demand by the chroot's user writes its log (launcher.log_dir).
TESTER_ENGINE_LOGS = "home/tester/.local/state/nst"
ARTIFACTS = Path(os.environ.get("NST_ARTIFACTS", REPO / "artifacts")) / "gimp"
W, H = 64, 48
#: Most cases are scripts' calls (the PDB's hidden `iterations`, a fixed size): fast, known.
ITERATIONS, SIZE = 20, 64
#: A preset as the dialog sends it: the normal quality, Auto size, no iterations (on a 64x48
#: layer one scale at the layer's size, 30 iterations).
PRESET = {"quality": "normal", "size": 0, "iterations": 0}
#: A time limit as the dialog sends it (the quality then does not apply).
TIME_LIMITED = {"quality": "final", "time-limit": 5, "size": 0, "iterations": 0}
TIMEOUT_S = 3.0
#: What the bridge run's plug-in claims to be (the daemon is nst_client.__version__).
STALE_VERSION = "0.0.1-stale"
#: Result vs style Gram cost must be below this fraction of source vs style.
STYLE_COST_RATIO = 0.5
#: The idle time of the engine the on-demand test starts (the product's default is 30 min).
IDLE_EXIT_S = 15


def _needs_root() -> None:
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("chroot"):
        pytest.skip("the GIMP host is a chroot: needs Linux and root")


@pytest.fixture(scope="module")
def gimp_root() -> Path:
    """The prepared trixie rootfs (built once, then cached outside the repository)."""
    _needs_root()
    proc = subprocess.run([str(ROOTFS_SH), "prepare"], capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"rootfs prepare failed:\n{proc.stderr[-4000:]}"
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def daemon_endpoint(host_daemon: DaemonProc) -> str:
    """The host daemon's endpoint; the chroot shares the host's network namespace."""
    return host_daemon.endpoint


# --- test images ---------------------------------------------------------------------------


def _content_rgb() -> np.ndarray:
    """The astronaut photo at W x H, float in 0..1."""
    from PIL import Image

    from nst_app.demo import default_content

    img = Image.fromarray(default_content()).resize((W, H), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def _alpha() -> np.ndarray:
    """Transparent on the left edge, opaque on the right: a ramp the result must keep."""
    return np.tile(np.linspace(0.0, 1.0, W, dtype=np.float32), (H, 1))[:, :, None]


def _encode(values: np.ndarray, dtype: str) -> bytes:
    return layouts.from_array(from_unit_float(values, dtype), 0)[1]


def _content(name: str, channels: int, dtype: str, io: Path) -> dict[str, Any]:
    rgb = _content_rgb()
    colour = rgb if channels >= 3 else _grey(rgb)
    values = np.concatenate([colour, _alpha()], axis=2) if channels in (2, 4) else colour
    path = io / f"{name}_content.raw"
    path.write_bytes(_encode(values, dtype))
    return {
        "width": W,
        "height": H,
        "channels": channels,
        "dtype": dtype,
        "file": f"/io/{path.name}",
    }


def _style(io: Path) -> np.ndarray:
    from PIL import Image

    from nst_app.demo import swirls

    style = swirls(96)
    Image.fromarray(style).save(io / "swirls.png")
    return style.astype(np.float32) / 255.0


def _cases(
    io: Path, transport: str, dead_endpoint: str, rogue: tuple[str, int]
) -> list[dict[str, Any]]:
    """The jobs of a GIMP run; rogue: the address another user listens on, and their uid."""
    common: dict[str, Any] = {
        "style": "/io/swirls.png",
        "args": {"iterations": ITERATIONS, "size": SIZE},
    }
    cases: list[dict[str, Any]] = [
        {
            "name": "rgba_u8",
            "content": _content("rgba_u8", 4, "u8", io),
            "offset": [7, 5],
            "args": PRESET,
        },
        {"name": "rgb_u16", "content": _content("rgb_u16", 3, "u16", io)},
    ]
    if transport == "zmq":
        cases += [
            {"name": "rgb_u8", "content": _content("rgb_u8", 3, "u8", io), "offset": [3, 0]},
            {
                "name": "rgba_u16",
                "content": _content("rgba_u16", 4, "u16", io),
                "args": TIME_LIMITED,
            },
            {"name": "rgba_f32", "content": _content("rgba_f32", 4, "f32", io)},
            {"name": "greya_u8", "content": _content("greya_u8", 2, "u8", io)},
            {
                "name": "selection",
                "content": _content("selection", 4, "u8", io),
                "offset": [4, 6],
                "selection": [14, 12, 36, 28],
            },
            {
                # Nothing at a local address and starting it turned off: the field to change.
                "name": "no_daemon",
                "content": _content("no_daemon", 4, "u8", io),
                "expect_error": '"Start the engine when needed" in the dialog is off',
                "args": {"endpoint": dead_endpoint, "start-on-demand": False},
            },
            {
                # An engine on another computer is never started from here.
                "name": "remote_engine",
                "content": _content("remote_engine", 4, "u8", io),
                "expect_error": "is on another computer: it is started there",
                "args": {"endpoint": f"tcp://192.0.2.1:{free_port()}"},
            },
            {
                # Another user (nobody) listens where the engine would: refused by name.
                "name": "other_users_listener",
                "content": _content("other_users_listener", 4, "u8", io),
                "expect_error": f"nother user's process (uid {rogue[1]}) holds {rogue[0]}",
                "args": {"endpoint": rogue[0]},
            },
            {
                # No style file: the argument allows none, so the plug-in's own message shows.
                "name": "no_style",
                "content": _content("no_style", 4, "u8", io),
                "style": None,
                "expect_error": 'No style image was chosen: choose an image file as "Style image"',
            },
            {
                "name": "not_an_image",
                "content": _content("not_an_image", 4, "u8", io),
                "style": "/io/cases.json",
                "expect_error": "cannot open the style image",
            },
        ]
    out = []
    for case in cases:
        merged = {**common, **case, "args": {**common["args"], **case.get("args", {})}}
        out.append(merged)
    return out


# --- judging -------------------------------------------------------------------------------


def _read(io: Path, info: dict[str, Any], dtype: str) -> np.ndarray:
    """A dumped layer as float (H, W, C) in 0..1."""
    channels = len(info["format"].split()[0].replace("'", ""))
    desc = layouts.describe(info["width"], info["height"], channels, dtype, 1)
    data = (io / "out" / Path(info["file"]).name).read_bytes()
    return to_unit_float(layouts.to_array(desc, data))


class StyleJudge:
    """Gram-matrix style cost (nst_core.costs) of an image against the style image."""

    def __init__(self, style: np.ndarray) -> None:
        import torch

        from nst_client import params
        from nst_core import costs, vgg

        self.torch, self.costs = torch, costs
        self.layers = [(n, float(w)) for n, w in params.StyleParams().style_layers]
        self.net = vgg.build()
        self.style_feats = self._feats(style)
        self.grey_style_feats = self._feats(_grey(style))

    def _feats(self, rgb: np.ndarray) -> dict[str, Any]:
        if rgb.shape[2] == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        t = self.torch.from_numpy(np.ascontiguousarray(rgb[:, :, :3])).permute(2, 0, 1)[None]
        with self.torch.no_grad():
            return self.net(t.float(), [n for n, _ in self.layers])

    def cost(self, img: np.ndarray) -> float:
        """Grey images are judged against the grey style: colour they cannot have."""
        target = self.grey_style_feats if img.shape[2] == 1 else self.style_feats
        with self.torch.no_grad():
            return float(self.costs.style_cost(target, self._feats(img), self.layers))


def _grey(rgb: np.ndarray) -> np.ndarray:
    return (rgb[:, :, :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]


def _colour(img: np.ndarray) -> np.ndarray:
    return img[:, :, :3] if img.shape[2] >= 3 else img[:, :, :1]


def _bridge_files(io: Path) -> None:
    """An in-chroot Python that runs the real bridge (`python -m nst_client.bridge`, standard
    library + pyzmq/msgpack, which the chroot has), logging each start."""
    shutil.copytree(
        Path(nst_client.__file__).parent,
        io / "pylib" / "nst_client",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    wrapper = io / "nst-python"
    wrapper.write_text(
        '#!/bin/sh\necho "$$ $*" >> /io/out/bridge-starts.log\n'
        'PYTHONPATH=/io/pylib exec /usr/bin/python3 "$@"\n'
    )
    wrapper.chmod(0o755)


def _run_in_chroot(
    io: Path, command: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """COMMAND as the chroot's user with IO at /io; mounts are always undone."""
    cmd = [str(ROOTFS_SH), "run", str(io), *command]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env, "NST_CHROOT_ENV": " ".join(env)},
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"GIMP did not finish within 600 s:\n{out[-6000:]}")
    finally:
        subprocess.run([str(ROOTFS_SH), "umount"], check=False)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def _run_gimp(io: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run_in_chroot(
        io,
        [
            "gimp-console-3.0",
            "-i",
            "--batch-interpreter=python-fu-eval",
            "-b",
            'exec(open("/io/driver.py").read())',
            "--quit",
        ],
        env,
    )


def _new_io(tmp_path: Path) -> Path:
    io = tmp_path / "io"
    (io / "out").mkdir(parents=True)
    return io


def _open_io(io: Path) -> None:
    """The chroot user (uid 1000) reads and writes the shared folder."""
    for path in [io, *io.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    for script in io.glob("*.sh"):
        script.chmod(0o755)
    if (io / "nst-python").exists():
        (io / "nst-python").chmod(0o755)


def _host_keys(io: Path) -> dict[str, str]:
    """The host engine's keys for the chroot's user, who is another user to it (root's
    engine admits only root's programs): its public key and the clients' pair, given as a
    remote engine's are, in a folder of the chroot user's alone; the environment that names
    them."""
    keys = local_keys()
    folder = io / "keys"
    folder.mkdir(mode=0o700)
    shutil.copyfile(keys.public("engine"), folder / "engine.key")
    shutil.copyfile(keys.secret("client"), folder / "client.key_secret")
    (folder / "client.key_secret").chmod(0o600)
    subprocess.run(["chown", "-R", "1000:1000", str(folder)], check=True)
    return {
        "NST_CURVE_SERVER_KEY": "/io/keys/engine.key",
        "NST_CURVE_CLIENT_CERT": "/io/keys/client.key_secret",
    }


def _install_plugin(
    gimp_root: Path, endpoint: str, version: str | None = None, *options: str
) -> Path:
    """The product's `nst install-plugin gimp --dest` into the chroot user's GIMP 3 plug-ins
    folder, as a user runs it; OPTIONS go to the installer.

    version: make the plug-in's client copy claim this version (a plug-in an upgrade left
    behind), so that it warns and still works.
    """
    dest = gimp_root / TESTER_PLUGINS
    command = [product.bin_path("nst"), "install-plugin", "gimp", "--dest", str(dest)]
    done = subprocess.run(
        [*command, "--endpoint", endpoint, *options], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    plugin_dir = dest / "plug-in-nst-stylize"
    assert str(plugin_dir) in done.stdout, done.stdout
    script = plugin_dir / "plug-in-nst-stylize.py"
    assert os.access(script, os.X_OK) and (plugin_dir / "nst_gimp_job.py").is_file()
    assert (plugin_dir / "nst_client" / "client.py").is_file()
    assert (plugin_dir / "nst_client" / "launcher.py").is_file()
    settings = load(plugin_dir / CONFIG_NAME, env={})
    assert settings.endpoint == endpoint and settings.transport == "auto"
    # What the plug-in starts when no engine answers: the product's own engine.
    assert settings.daemon == [product.bin_path("nst-daemon")], settings.daemon
    assert settings.start_on_demand
    if version is not None:
        init = plugin_dir / "nst_client" / "__init__.py"
        line = f'__version__ = "{nst_client.__version__}"'
        assert line in init.read_text()
        init.write_text(init.read_text().replace(line, f'__version__ = "{version}"'))
    subprocess.run(
        ["chown", "-R", "1000:1000", str(gimp_root / "home" / "tester" / ".config")], check=True
    )
    return plugin_dir


def _bridge_in_chroot(plugin_dir: Path) -> None:
    """The bridge's Python is /io/nst-python (see _bridge_files), with a short timeout."""
    settings = load(plugin_dir / CONFIG_NAME, env={})
    settings.python, settings.timeout_s = "/io/nst-python", TIMEOUT_S
    settings.save(plugin_dir / CONFIG_NAME)


@pytest.mark.parametrize("transport", ["zmq", "bridge"])
def test_gimp_plugin(transport: str, gimp_root: Path, daemon_endpoint: str, tmp_path: Path) -> None:
    io = _new_io(tmp_path)
    style = _style(io)
    _bridge_files(io)
    shared = Path(tempfile.mkdtemp(prefix="nst-rogue-"))
    shared.chmod(0o1777)  # the other user writes what it receives here
    rogue_port = free_port()
    rogue, rogue_uid = as_nobody(ROGUE, str(rogue_port), str(shared / "received"))
    assert rogue.stdout is not None and rogue.stdout.readline().strip() == "listening"
    rogue_endpoint = f"tcp://127.0.0.1:{rogue_port}"
    cases = _cases(io, transport, f"tcp://127.0.0.1:{free_port()}", (rogue_endpoint, rogue_uid))
    (io / "cases.json").write_text(json.dumps(cases, indent=1))
    shutil.copyfile(HOSTS / "gimp_driver.py", io / "driver.py")
    _open_io(io)
    # The bridge run doubles as a stale plug-in's: it tells the user and works all the same.
    stale = STALE_VERSION if transport == "bridge" else None
    _bridge_in_chroot(_install_plugin(gimp_root, daemon_endpoint, stale))

    env = {"NST_TRANSPORT": "bridge"} if transport == "bridge" else {}
    env.update(_host_keys(io))
    started = time.monotonic()
    try:
        run = _run_gimp(io, env)
    finally:
        rogue.kill()
        rogue.wait()
    gimp_s = time.monotonic() - started
    received = shared / "received"
    assert not received.exists() or received.read_bytes() == b"", "the other user got bytes"
    shutil.rmtree(shared, ignore_errors=True)
    log = run.stdout
    assert run.returncode == 0, f"gimp-console failed ({run.returncode}):\n{log[-6000:]}"
    results = {r["name"]: r for r in json.loads((io / "out" / "results.json").read_text())}
    assert set(results) == {c["name"] for c in cases}, log[-6000:]

    bridge_log = io / "out" / "bridge-starts.log"
    if transport == "bridge":
        # Two a job: the launcher's look at the engine (a status request), then the job.
        starts = bridge_log.read_text().splitlines() if bridge_log.exists() else []
        assert len(starts) == 2 * len(cases), f"bridge starts: {starts}\n{log[-4000:]}"
        assert all("-m nst_client.bridge" in s for s in starts)
    else:
        assert not bridge_log.exists(), "auto transport should use pyzmq inside GIMP"
    notes = [line for line in log.splitlines() if "reinstall the plug-in" in line]
    if stale is not None:
        assert len(notes) == len(cases), log[-6000:]
        assert all(stale in n and "`nst install-plugin gimp`" in n for n in notes), notes
    else:
        assert not notes, notes

    judge = StyleJudge(style)
    report = []
    for case in cases:
        res = results[case["name"]]
        if "expect_error" in case:
            assert res["status"] == "execution-error", res
            assert case["expect_error"] in res["error"], res["error"]
            assert res["seconds"] < TIMEOUT_S + 10, res
            report.append(f"{case['name']}: error in {res['seconds']:.1f} s: {res['error']}")
            continue
        assert res["status"] == "success", f"{case['name']}: {res}\n{log[-6000:]}"
        dtype = case["content"]["dtype"]
        # A new layer directly above the source, named after it and the style.
        assert res["layers"] == ["top", "source (swirls)", "source"], res["layers"]
        new = res["new"]
        assert new["name"] == "source (swirls)"
        ox, oy = case.get("offset", [0, 0])
        assert res["source_offsets"] == [ox, oy]
        # The source layer is bit-identical to before.
        before = (io / "out" / f"{case['name']}_source_before.raw").read_bytes()
        after = (io / "out" / f"{case['name']}_source_after.raw").read_bytes()
        assert before == after, f"{case['name']}: the source layer was modified"
        source = _read(io, res["source_before"], dtype)
        result = _read(io, new, dtype)
        assert new["is_gray"] == (case["content"]["channels"] <= 2)
        if "selection" in case:
            sx, sy, sw, sh = case["selection"]
            assert new["offsets"] == [sx, sy] and (new["width"], new["height"]) == (sw, sh)
            mask = _read(io, res["mask"], "u8")[:, :, 0]
            assert mask[sh // 2, sw // 2] == 1.0 and mask[0, 0] == 0.0, "mask is not the ellipse"
            x0, y0 = sx - ox, sy - oy
            source = source[y0 : y0 + sh, x0 : x0 + sw]
        else:
            assert new["offsets"] == [ox, oy] and (new["width"], new["height"]) == (W, H)
            assert "mask" not in res
        # The source's alpha is kept (an alpha-less source gives an opaque layer).
        step = 2e-6 if dtype == "f32" else 1.0 / layouts.DTYPES[dtype][2]
        if case["content"]["channels"] in (2, 4):
            np.testing.assert_allclose(result[:, :, -1], source[:, :, -1], atol=step / 2)
        else:
            assert np.all(result[:, :, -1] == 1.0)
        # Stylized: far closer to the style's Gram statistics than the source was.
        c_src, c_new = judge.cost(_colour(source)), judge.cost(_colour(result))
        report.append(
            f"{case['name']}: style cost {c_src:.4g} -> {c_new:.4g} "
            f"({c_new / c_src:.2f}) in {res['seconds']:.1f} s"
        )
        assert c_new < STYLE_COST_RATIO * c_src, report[-1]
    report += [f"note: {n}" for n in notes[:1]]
    print(f"\n[{transport}] gimp-console {gimp_s:.1f} s\n  " + "\n  ".join(report))


#: A style per region: the left half of the layer is saved as a channel for style 2 (dots),
#: style 1 (swirls) takes the rest. Columns this close to the seam are not judged (the two
#: regions' styles meet there).
SPLIT, SEAM = W // 2, 4


def _dots_style(io: Path) -> np.ndarray:
    """The second style, far from swirls in Gram terms, as /io/dots.png."""
    from PIL import Image

    from nst_app.demo import dots

    style = dots(96)
    Image.fromarray(style).save(io / "dots.png")
    return style.astype(np.float32) / 255.0


def test_gimp_style_per_region(gimp_root: Path, daemon_endpoint: str, tmp_path: Path) -> None:
    """Two styles in one run of the filter in real GIMP: dots on a saved selection (a channel
    of the left half), swirls on the rest. One new layer; each half moved towards its own style
    more than towards the other; the source layer untouched. A channel that covers none of the
    layer is refused by name before any job."""
    io = _new_io(tmp_path)
    swirls_style, dots_style = _style(io), _dots_style(io)
    region: dict[str, Any] = {
        "style": "/io/swirls.png",
        "files": {"style-file-2": "/io/dots.png"},
        "args": {"iterations": ITERATIONS, "size": SIZE, "region-2": "channel"},
    }
    cases = [
        {
            **region,
            "name": "regions",
            "content": _content("regions", 4, "u8", io),
            "offset": [5, 3],  # the channel is in the image's coordinates, the layer is not
            "channels": [{"name": "left", "rect": [0, 0, SPLIT, H]}],
            "channel_args": {"region-channel-2": "left"},
        },
        {
            **region,
            "name": "empty_region",
            "content": _content("empty_region", 4, "u8", io),
            "channels": [{"name": "nothing", "rect": [0, 0, 0, 0]}],
            "channel_args": {"region-channel-2": "nothing"},
            "expect_error": 'Style 2\'s region, the channel "nothing", is empty: it covers none of',
        },
    ]
    (io / "cases.json").write_text(json.dumps(cases, indent=1))
    shutil.copyfile(HOSTS / "gimp_driver.py", io / "driver.py")
    _open_io(io)
    _install_plugin(gimp_root, daemon_endpoint)
    run = _run_gimp(io, _host_keys(io))
    assert run.returncode == 0, f"gimp-console failed ({run.returncode}):\n{run.stdout[-6000:]}"
    results = {r["name"]: r for r in json.loads((io / "out" / "results.json").read_text())}

    refused = results["empty_region"]
    assert refused["status"] == "execution-error", refused
    assert cases[1]["expect_error"] in refused["error"], refused["error"]

    res = results["regions"]
    assert res["status"] == "success", f"{res}\n{run.stdout[-6000:]}"
    # One new layer directly above the source, named after both styles, the layer's size.
    assert res["layers"] == ["top", "source (swirls + dots)", "source"], res["layers"]
    new = res["new"]
    assert new["offsets"] == [5, 3] and (new["width"], new["height"]) == (W, H), new
    assert "mask" not in res, "regions need no layer mask: the photo is kept where none reaches"
    before = (io / "out" / "regions_source_before.raw").read_bytes()
    assert before == (io / "out" / "regions_source_after.raw").read_bytes(), "source modified"
    source, result = _read(io, res["source_before"], "u8"), _read(io, new, "u8")
    np.testing.assert_allclose(result[:, :, 3], source[:, :, 3], atol=0.5 / 255)
    judges = {"swirls": StyleJudge(swirls_style), "dots": StyleJudge(dots_style)}
    halves = {"dots": np.s_[:, : SPLIT - SEAM, :3], "swirls": np.s_[:, SPLIT + SEAM :, :3]}
    report = []
    for own, half in halves.items():
        ratios = {
            name: judge.cost(result[half]) / judge.cost(source[half])
            for name, judge in judges.items()
        }
        other = next(name for name in judges if name != own)
        report.append(
            f"{own} half: style cost ratio to {own} {ratios[own]:.2f}, to {other} "
            f"{ratios[other]:.2f}"
        )
        assert ratios[own] < STYLE_COST_RATIO, report[-1]
        assert ratios[own] < ratios[other], report[-1]
    print(
        f"\n[regions] {res['seconds']:.1f} s; refused: {refused['error']}\n  " + "\n  ".join(report)
    )


def _content_png(io: Path, name: str) -> np.ndarray:
    """The RGBA u8 test content as /io/content.png; returns it as float (H, W, 4)."""
    from PIL import Image

    _content(name, 4, "u8", io)
    raw = (io / f"{name}_content.raw").read_bytes()
    Image.frombytes("RGBA", (W, H), raw).save(io / "content.png")
    desc = layouts.describe(W, H, 4, "u8", 1)
    return to_unit_float(layouts.to_array(desc, raw))


def _judge_new_layer(
    judge: StyleJudge, source: np.ndarray, res: dict[str, Any], io: Path, what: str
) -> str:
    """A new layer the driver dumped as R'G'B'A u8: the source's size and alpha, stylized."""
    new = res["new"]
    assert new["name"] == "Background (swirls)" and (new["width"], new["height"]) == (W, H), res
    desc = layouts.describe(W, H, 4, "u8", 1)
    data = (io / "out" / Path(new["file"]).name).read_bytes()
    result = to_unit_float(layouts.to_array(desc, data))
    np.testing.assert_allclose(result[:, :, 3], source[:, :, 3], atol=0.5 / 255)
    c_src, c_new = judge.cost(source[:, :, :3]), judge.cost(result[:, :, :3])
    line = f"{what}: style cost {c_src:.4g} -> {c_new:.4g} ({c_new / c_src:.2f})"
    assert c_new < STYLE_COST_RATIO * c_src, line
    return line


def _forget_last_values(gimp_root: Path) -> None:
    """An interactive run starts from GIMP's last-used values of the procedure (saved after a
    successful interactive run, also by earlier test runs): start from the test's values.
    GIMP 3.0 names the file GimpProcedureConfigRun-plug-in-nst-stylize.last."""
    for path in (gimp_root / TESTER_LAST_VALUES).glob("*plug-in-nst-stylize.*"):
        path.unlink()


def _interactive_files(io: Path, runs: list[dict[str, Any]], status: bool) -> None:
    """The interactive scenario's files in IO: its runs, the user's script, the driver."""
    (io / "interactive.json").write_text(
        json.dumps(
            {
                "content": "/io/content.png",
                "style": "/io/swirls.png",
                "runs": runs,
                "status": status,
            }
        )
    )
    for name in ("gimp_interactive.sh", "gimp_interactive_driver.py", "gimp_screenshot.py"):
        shutil.copyfile(HOSTS / name, io / name.replace("gimp_", ""))
    _open_io(io)


def _save_artifact(path: Path) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(path, ARTIFACTS / path.name))


def test_gimp_interactive(gimp_root: Path, daemon_endpoint: str, tmp_path: Path) -> None:
    """Dialogs on a virtual display: OK, then Cancel while the job runs, ends the daemon job;
    OK again and the job runs to its end (a new layer). The dialogs' pictures are saved."""
    io = _new_io(tmp_path)
    style = _style(io)
    source = _content_png(io, "interactive")
    runs = [
        # A time limit long enough that only a cancel ends it within the test's time.
        {"name": "cancel", "args": {"time-limit": 600, "size": 0}},
        # The final preset, Auto size: 60 iterations on this layer (~2 s on 2 CPU cores),
        # long enough for a picture of the progress dialog at work (1 s in).
        {
            "name": "complete",
            "args": {"quality": "final", "time-limit": 0, "size": 0},
            "dump": "/io/out/interactive_new.raw",
        },
    ]
    _interactive_files(io, runs, status=True)
    _install_plugin(gimp_root, daemon_endpoint)
    _forget_last_values(gimp_root)

    run = _run_in_chroot(io, ["sh", "/io/interactive.sh", "job"], _host_keys(io))
    (io / "out" / "gimp.log").write_text(run.stdout)
    user = (io / "out" / "user.log").read_text() if (io / "out" / "user.log").exists() else ""
    assert run.returncode == 0, f"{run.stdout[-6000:]}\nuser: {user}"
    assert "pressed Escape" in user and "job ended" in user, user
    results = json.loads((io / "out" / "interactive.json").read_text())
    cancelled, complete = results["cancel"], results["complete"]
    assert cancelled["status"] == "cancel", cancelled
    assert len(cancelled["layers"]) == 1, f"a cancelled run added a layer: {cancelled}"
    assert cancelled["seconds"] < 60, cancelled
    daemon = results["daemon"]
    assert daemon["running"] is None and daemon["jobs_cancelled"] >= 1, daemon
    assert complete["status"] == "success", f"{complete}\n{run.stdout[-4000:]}"
    assert complete["layers"] == ["Background (swirls)", "Background"], complete
    judged = _judge_new_layer(StyleJudge(style), source, complete, io, "dialog run")
    shots = []
    for name in (
        "gimp-procedure-dialog",
        "gimp-procedure-dialog-time-limit",  # the quality greyed (looked at by eye)
        "gimp-progress-dialog",
    ):
        picture = io / "out" / f"{name}.png"
        assert picture.is_file(), f"no picture of the {name}: {user}"
        from PIL import Image

        width, height = Image.open(picture).size
        assert width >= 200 and height >= 50, (name, width, height)
        shots.append(f"{_save_artifact(picture)} ({width}x{height})")
    print(
        f"\n[interactive] cancelled after {cancelled['seconds']:.1f} s; daemon: "
        f"{daemon['jobs_cancelled']} job(s) cancelled; completed in {complete['seconds']:.1f} s"
        f"; {judged}\n  " + "\n  ".join(shots)
    )


# --- the engine on demand -------------------------------------------------------------------


def _product_binds() -> list[str]:
    """The product as installed on GIMP's machine, bound read-only at the same paths in the
    chroot: its venv and the Python the venv was made from (pyvenv.cfg's home). A development
    venv (an editable install, the stand-in when there is no product venv) needs the
    checkout too."""
    venv = product.venv()
    config = dict(
        line.split(" = ", 1)
        for line in (venv / "pyvenv.cfg").read_text().splitlines()
        if " = " in line
    )
    home = Path(config["home"].strip())
    base = home.parent if home.name == "bin" else home
    editable = list(venv.glob("lib/python*/site-packages/__editable__*"))
    return [str(REPO if editable else venv), str(base)]


def _answers(endpoint: str, gimp_root: Path) -> dict[str, Any] | None:
    """The status of the engine GIMP's user started in the chroot, asked from the host, or
    None when nothing answers within a second. That engine admits only its user's programs:
    the host asks with the chroot user's keys (root may read them), once there are any."""
    keys = gimp_root / TESTER_KEYS
    named = Settings(
        endpoint=endpoint,
        timeout_s=1.0,
        curve_server_key=str(keys / "engine.key"),
        curve_client_cert=str(keys / "client.key_secret"),
    )
    settings = named if keys.is_dir() else Settings(endpoint=endpoint, timeout_s=1.0)
    try:
        with connect(settings, client_name="gimp-e2e-host") as client:
            return dict(client.status())
    except DaemonUnavailable:
        return None


def _alive(pid: int) -> bool:
    """True while PID runs (a zombie has ended: its status is Z)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextlib.contextmanager
def _chroot_held(io: Path, command: list[str], binds: list[str]) -> Iterator[dict[str, Any]]:
    """COMMAND in the chroot with BINDS (the product) bound in, until it touches
    /io/out/gimp-done (GIMP has quit). An engine GIMP started lives on inside the chroot, so
    the command keeps the chroot's mounts until /io/release exists: the block checks the
    engine meanwhile; afterwards the dict holds the command's returncode and output."""
    env = {**os.environ, "NST_CHROOT_BINDS": " ".join(binds), "NST_CHROOT_ENV": ""}
    run = subprocess.Popen(
        [str(ROOTFS_SH), "run", str(io), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    done = io / "out" / "gimp-done"
    held: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 900
        while not done.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        held["done_at"] = time.monotonic()
        if not done.exists():
            run.kill()
            out = run.communicate(timeout=30)[0]
            user = io / "out" / "user.log"
            pytest.fail(
                f"GIMP did not finish:\n{out[-6000:]}\n"
                f"user: {user.read_text() if user.exists() else ''}"
            )
        yield held
    finally:
        (io / "release").touch()
        try:
            held["out"] = run.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGTERM)
            held["out"] = run.communicate(timeout=30)[0]
        held["returncode"] = run.returncode
        subprocess.run([str(ROOTFS_SH), "umount"], check=False)


def _engine_log(gimp_root: Path, endpoint: str) -> str:
    """The log of the engine started on demand for ENDPOINT inside the chroot."""
    path = gimp_root / TESTER_ENGINE_LOGS / f"engine-{launcher.endpoint_key(endpoint)}.log"
    return path.read_text(errors="replace") if path.exists() else f"(no log at {path})"


def _check_engine_in_chroot(gimp_root: Path, endpoint: str, pid: int) -> None:
    """Seen from the host: PID runs in GIMP's machine (the chroot), it is the product's engine
    started on demand with the test's idle time, and it answers at ENDPOINT."""
    log = _engine_log(gimp_root, endpoint)[-3000:]
    assert _alive(pid), f"the engine {pid} is gone already: {log}"
    assert os.path.realpath(f"/proc/{pid}/root") == os.path.realpath(gimp_root)
    cmdline = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    assert product.bin_path("nst-daemon") in " ".join(cmdline), cmdline
    assert "--on-demand" in cmdline, cmdline
    assert cmdline[cmdline.index("--idle-exit") + 1] == str(IDLE_EXIT_S), cmdline
    status = _answers(endpoint, gimp_root)
    assert status is not None and status["pid"] == pid, (status, log)


def test_gimp_engine_on_demand(gimp_root: Path, tmp_path: Path) -> None:
    """No engine running: the filter in GIMP starts the product's engine (inside GIMP's
    machine, the chroot), stylizes, a second GIMP finds it warm, and it exits on its own after
    its idle time. Prints the time from the call to the first progress, cold and warm."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    assert _answers(endpoint, gimp_root) is None
    io = _new_io(tmp_path)
    style = _style(io)
    source = _content_png(io, "ondemand")
    (io / "ondemand.json").write_text(
        json.dumps(
            {
                "content": "/io/content.png",
                "style": "/io/swirls.png",
                "args": {"iterations": ITERATIONS, "size": SIZE, "start-on-demand": True},
            }
        )
    )
    for name in ("gimp_ondemand.sh", "gimp_ondemand_driver.py"):
        shutil.copyfile(HOSTS / name, io / name.replace("gimp_", ""))
    _open_io(io)
    plugin_dir = _install_plugin(gimp_root, endpoint, None, "--idle-exit", str(IDLE_EXIT_S))
    assert load(plugin_dir / CONFIG_NAME, env={}).idle_exit_s == IDLE_EXIT_S

    binds = _product_binds()
    pid = 0
    with _chroot_held(io, ["sh", "/io/ondemand.sh"], binds) as held:
        try:
            cold, warm = (
                json.loads((io / "out" / f"ondemand-{phase}.json").read_text())
                for phase in ("cold", "warm")
            )
            engine_log = _engine_log(gimp_root, endpoint)
            for res in (cold, warm):
                assert res["status"] == "success", f"{res}\nengine log: {engine_log}"
            judge = StyleJudge(style)
            judged = [
                _judge_new_layer(judge, source, res, io, res["phase"]) for res in (cold, warm)
            ]
            # One engine served both GIMPs: the one the first started, on demand.
            pid = int(cold["engine"]["pid"])
            assert warm["engine"]["pid"] == pid and cold["engine"]["on_demand"] is True, warm
            assert warm["engine"]["idle_exit_s"] == IDLE_EXIT_S, warm
            marks = (cold["marks"], warm["marks"])
            assert all("first_progress" in m for m in marks), marks
            _check_engine_in_chroot(gimp_root, endpoint, pid)
            # ... and it exits on its own once idle, and the endpoint goes quiet.
            limit = time.monotonic() + IDLE_EXIT_S + 60
            while _alive(pid) and time.monotonic() < limit:
                time.sleep(0.2)
            gone_s = time.monotonic() - held["done_at"]
            assert not _alive(pid), f"the engine still runs {gone_s:.0f} s after the last job"
            assert _answers(endpoint, gimp_root) is None, (
                "the endpoint still answers after the engine exit"
            )
            last_line = _engine_log(gimp_root, endpoint).strip().splitlines()[-1]
        finally:
            if pid and _alive(pid):  # a failed check must not leave the test's engine behind
                os.kill(pid, signal.SIGTERM)
    assert held["returncode"] == 0, held["out"][-4000:]

    def timing(res: dict[str, Any]) -> str:
        marks = res["marks"]
        return (
            f"{marks['first_progress']:.1f} s to the first progress (the engine answered "
            f"after {marks.get('answered', float('nan')):.1f} s, ready after "
            f"{marks.get('ready', float('nan')):.1f} s; job done after {res['seconds']:.1f} s)"
        )

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    timings = {res["phase"]: {"seconds": res["seconds"], **res["marks"]} for res in (cold, warm)}
    (ARTIFACTS / "ondemand-timings.json").write_text(json.dumps(timings, indent=1))
    print(
        f"\n[on demand] engine pid {pid} from {product.venv()}; binds: {' '.join(binds)}"
        f"\n  cold: {timing(cold)}\n  warm: {timing(warm)}"
        f"\n  the engine exited {gone_s:.1f} s after the second GIMP finished "
        f"(idle exit {IDLE_EXIT_S} s); its log's last line: {last_line}\n  " + "\n  ".join(judged)
    )
    assert warm["marks"]["first_progress"] < cold["marks"]["first_progress"], timings


def test_gimp_cancel_while_the_engine_starts(gimp_root: Path, tmp_path: Path) -> None:
    """No engine running: OK, then Cancel while the progress dialog says the engine is
    starting. The run ends at once without a layer; the engine, started detached for every
    editor, comes up all the same (it would end itself when idle); the host, another user to
    it, may not stop it through the protocol (`nst daemon stop` refuses) and sends it SIGTERM."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    assert _answers(endpoint, gimp_root) is None
    io = _new_io(tmp_path)
    _style(io)
    _content_png(io, "start")
    args = {"iterations": ITERATIONS, "size": SIZE, "start-on-demand": True}
    _interactive_files(io, [{"name": "start_cancel", "args": args}], status=False)
    _install_plugin(gimp_root, endpoint, None, "--idle-exit", str(IDLE_EXIT_S))
    _forget_last_values(gimp_root)

    pid = 0
    with _chroot_held(io, ["sh", "/io/interactive.sh", "start"], _product_binds()) as held:
        try:
            user = (io / "out" / "user.log").read_text()
            assert "pressed Escape" in user, user
            result = json.loads((io / "out" / "interactive.json").read_text())["start_cancel"]
            assert result["status"] == "cancel", result
            assert result["layers"] == ["Background"], f"a cancelled run added a layer: {result}"
            # The engine started before the cancel comes up and is stopped from the host.
            limit = time.monotonic() + 120
            while (status := _answers(endpoint, gimp_root)) is None and time.monotonic() < limit:
                time.sleep(0.2)
            assert status is not None, _engine_log(gimp_root, endpoint)[-3000:]
            pid = int(status["pid"])
            _check_engine_in_chroot(gimp_root, endpoint, pid)
            # Cancelled before any job was sent: the engine never saw one.
            assert status["jobs_done"] == status["jobs_cancelled"] == 0, status
            assert status["running"] is None and status["queue"] == [], status
            # The host's user (root) is another user to the chroot user's engine: its client
            # sends that engine nothing and says so. The engine is stopped by its signal.
            with pytest.raises(ForeignListener, match=r"another user's process \(uid \d+\)"):
                launcher.stop(Settings(endpoint=endpoint))
            os.kill(pid, signal.SIGTERM)
            limit = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < limit:
                time.sleep(0.2)
            assert not _alive(pid) and _answers(endpoint, gimp_root) is None, (
                "the engine did not stop"
            )
        finally:
            if pid and _alive(pid):
                os.kill(pid, signal.SIGTERM)
    assert held["returncode"] == 0, held["out"][-4000:]
    picture = io / "out" / "gimp-progress-starting.png"
    assert picture.is_file(), user
    print(
        f"\n[cancel while starting] the run took {result['seconds']:.1f} s (dialog included), "
        f"without a layer; the engine (pid {pid}) came up and was stopped"
        f"\n  {_save_artifact(picture)}"
    )
