"""The GIMP 3 plug-in in a real GIMP 3.0 (Debian 13 chroot), against a real daemon process.

tests/hosts/gimp_rootfs.sh builds (first run, ~2-4 min) or reuses (~/.cache/nst-tests) a
trixie rootfs with GIMP 3; the plug-in goes into the chroot user's plug-ins folder through the
real installer; gimp-console-3.0 runs tests/hosts/gimp_driver.py, which calls
plug-in-nst-stylize non-interactively and dumps pixels into the shared /io folder; this side
judges them with nst_core (style cost). Needs root (chroot, mounts); skipped otherwise.
docs/hosts.md describes the host and how it is driven.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daemon_process import DaemonProc, free_port

import nst_client
from nst_client import layouts
from nst_client.settings import CONFIG_NAME, load
from nst_core.pixels import from_unit_float, to_unit_float

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
HOSTS = REPO / "tests" / "hosts"
ROOTFS_SH = HOSTS / "gimp_rootfs.sh"
TESTER_PLUGINS = "home/tester/.config/GIMP/3.0/plug-ins"
W, H = 64, 48
ITERATIONS, SIZE = 20, 64
TIMEOUT_S = 3.0
#: What the bridge run's plug-in claims to be (the daemon is nst_client.__version__).
STALE_VERSION = "0.0.1-stale"
#: Result vs style Gram cost must be below this fraction of source vs style.
STYLE_COST_RATIO = 0.5


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

    from nst_core.demo import default_content

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

    from nst_core.demo import swirls

    style = swirls(96)
    Image.fromarray(style).save(io / "swirls.png")
    return style.astype(np.float32) / 255.0


def _cases(io: Path, transport: str, dead_endpoint: str) -> list[dict[str, Any]]:
    common: dict[str, Any] = {
        "style": "/io/swirls.png",
        "args": {"iterations": ITERATIONS, "size": SIZE},
    }
    cases: list[dict[str, Any]] = [
        {"name": "rgba_u8", "content": _content("rgba_u8", 4, "u8", io), "offset": [7, 5]},
        {"name": "rgb_u16", "content": _content("rgb_u16", 3, "u16", io)},
    ]
    if transport == "zmq":
        cases += [
            {"name": "rgb_u8", "content": _content("rgb_u8", 3, "u8", io), "offset": [3, 0]},
            {"name": "rgba_u16", "content": _content("rgba_u16", 4, "u16", io)},
            {"name": "rgba_f32", "content": _content("rgba_f32", 4, "f32", io)},
            {"name": "greya_u8", "content": _content("greya_u8", 2, "u8", io)},
            {
                "name": "selection",
                "content": _content("selection", 4, "u8", io),
                "offset": [4, 6],
                "selection": [14, 12, 36, 28],
            },
            {
                "name": "no_daemon",
                "content": _content("no_daemon", 4, "u8", io),
                "expect_error": "nst-daemon",
                "args": {"endpoint": dead_endpoint},
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

        from nst_core import costs, params, vgg

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


def _install_plugin(gimp_root: Path, endpoint: str, version: str | None = None) -> Path:
    """`nst install-plugin gimp --dest` into the chroot user's GIMP 3 plug-ins folder.

    version: make the plug-in's client copy claim this version (a plug-in an upgrade left
    behind), so that it warns and still works.
    """
    dest = gimp_root / TESTER_PLUGINS
    nst = Path(sys.executable).with_name("nst")
    done = subprocess.run(
        [str(nst), "install-plugin", "gimp", "--dest", str(dest), "--endpoint", endpoint],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    plugin_dir = dest / "plug-in-nst-stylize"
    assert str(plugin_dir) in done.stdout, done.stdout
    script = plugin_dir / "plug-in-nst-stylize.py"
    assert os.access(script, os.X_OK) and (plugin_dir / "nst_gimp_job.py").is_file()
    assert (plugin_dir / "nst_client" / "client.py").is_file()
    settings = load(plugin_dir / CONFIG_NAME, env={})
    assert settings.endpoint == endpoint and settings.transport == "auto"
    # The bridge runs in the chroot, so it needs a Python that exists there.
    settings.python, settings.timeout_s = "/io/nst-python", TIMEOUT_S
    settings.save(plugin_dir / CONFIG_NAME)
    if version is not None:
        init = plugin_dir / "nst_client" / "__init__.py"
        line = f'__version__ = "{nst_client.__version__}"'
        assert line in init.read_text()
        init.write_text(init.read_text().replace(line, f'__version__ = "{version}"'))
    subprocess.run(
        ["chown", "-R", "1000:1000", str(gimp_root / "home" / "tester" / ".config")], check=True
    )
    return plugin_dir


@pytest.mark.parametrize("transport", ["zmq", "bridge"])
def test_gimp_plugin(transport: str, gimp_root: Path, daemon_endpoint: str, tmp_path: Path) -> None:
    io = _new_io(tmp_path)
    style = _style(io)
    _bridge_files(io)
    cases = _cases(io, transport, f"tcp://127.0.0.1:{free_port()}")
    (io / "cases.json").write_text(json.dumps(cases, indent=1))
    shutil.copyfile(HOSTS / "gimp_driver.py", io / "driver.py")
    _open_io(io)
    # The bridge run doubles as a stale plug-in's: it tells the user and works all the same.
    stale = STALE_VERSION if transport == "bridge" else None
    _install_plugin(gimp_root, daemon_endpoint, stale)

    env = {"NST_TRANSPORT": "bridge"} if transport == "bridge" else {}
    started = time.monotonic()
    run = _run_gimp(io, env)
    gimp_s = time.monotonic() - started
    log = run.stdout
    assert run.returncode == 0, f"gimp-console failed ({run.returncode}):\n{log[-6000:]}"
    results = {r["name"]: r for r in json.loads((io / "out" / "results.json").read_text())}
    assert set(results) == {c["name"] for c in cases}, log[-6000:]

    bridge_log = io / "out" / "bridge-starts.log"
    if transport == "bridge":
        starts = bridge_log.read_text().splitlines() if bridge_log.exists() else []
        assert len(starts) == len(cases), f"bridge starts: {starts}\n{log[-4000:]}"
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


def test_gimp_interactive_cancel(gimp_root: Path, daemon_endpoint: str, tmp_path: Path) -> None:
    """Dialogs on a virtual display: OK, then Cancel while the job runs, ends the daemon job."""
    io = _new_io(tmp_path)
    _style(io)
    from PIL import Image

    _content("interactive", 4, "u8", io)
    raw = (io / "interactive_content.raw").read_bytes()
    Image.frombytes("RGBA", (W, H), raw).save(io / "content.png")
    (io / "interactive.json").write_text(
        json.dumps(
            {
                "content": "/io/content.png",
                "style": "/io/swirls.png",
                # Long enough that only a cancel ends it within the test's time.
                "args": {"iterations": 5000, "size": SIZE},
            }
        )
    )
    for name in ("gimp_interactive.sh", "gimp_interactive_driver.py"):
        shutil.copyfile(HOSTS / name, io / name.replace("gimp_", ""))
    _open_io(io)
    _install_plugin(gimp_root, daemon_endpoint)

    run = _run_in_chroot(io, ["sh", "/io/interactive.sh"], {})
    user = (io / "out" / "user.log").read_text() if (io / "out" / "user.log").exists() else ""
    assert run.returncode == 0, f"{run.stdout[-6000:]}\nuser: {user}"
    assert "pressed Escape" in user, user
    result = json.loads((io / "out" / "interactive.json").read_text())
    assert result["status"] == "cancel", result
    assert len(result["layers"]) == 1, f"a cancelled run added a layer: {result}"
    assert result["seconds"] < 60, result
    daemon = result["daemon"]
    assert daemon["running"] is None and daemon["jobs_cancelled"] >= 1, daemon
    print(
        f"\n[interactive] cancelled after {result['seconds']:.1f} s; daemon: "
        f"{daemon['jobs_cancelled']} job(s) cancelled"
    )
