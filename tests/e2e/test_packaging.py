"""What the editors and a wheel get: the client package alone, and the plug-in files.

Subprocesses, so these sit in the e2e lane: an editor's Python is not the product's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

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
        "import sys, nst_client.client, nst_core.params, nst_core.errors, nst_daemon.requests, "
        "nst_daemon.runner, nst_daemon.server, nst_plugins.install; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"


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
    assert "nst_plugins/gimp/plug-in-nst-stylize/plug-in-nst-stylize.py" in names
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
