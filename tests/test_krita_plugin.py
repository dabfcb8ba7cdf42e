"""Unit tests of the Krita plug-in's pure parts and its installer (no Krita, no Qt needed).

The plug-in package's __init__ imports `krita`, so its modules are loaded here under a bare
package object that points at the source folder (link.py then falls back to nst_daemon's
client, exactly as it would in a source checkout).
"""

from __future__ import annotations

import ast
import importlib
import json
import struct
import sys
import types
from pathlib import Path

import pytest

from nst_core import layouts
from nst_core.params import StyleParams, make_params, strength_to_style_weight
from nst_plugins.krita import installer

PLUGIN = Path(installer.__file__).resolve().parent / "neural_style"


@pytest.fixture(scope="module")
def plugin() -> types.SimpleNamespace:
    package = types.ModuleType("neural_style_under_test")
    package.__path__ = [str(PLUGIN)]  # type: ignore[attr-defined]
    sys.modules[package.__name__] = package
    return types.SimpleNamespace(
        **{
            name: importlib.import_module(f"{package.__name__}.{name}")
            for name in ("pixels", "job_params", "link")
        }
    )


def test_only_qt_module_imports_pyqt_and_nothing_heavy() -> None:
    """All PyQt imports live in qt.py (Krita 6 = PyQt6); no torch/numpy/PIL anywhere."""
    for path in PLUGIN.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                top = name.split(".")[0]
                assert top not in ("torch", "numpy", "PIL"), f"{path.name}: {name}"
                assert top != "nst_core" or name == "nst_core.layouts", name
                if top in ("PyQt5", "PyQt6"):
                    assert path.name == "qt.py", f"{path.name} imports {name}"


def test_mask_alpha_composites_through_a_soft_selection(plugin: types.SimpleNamespace) -> None:
    px = plugin.pixels
    rgba = bytes([10, 20, 30, 200] * 4)
    out = px.mask_alpha(rgba, "u8", bytes([0, 255, 128, 1]))
    assert list(out) == [0, 0, 0, 0, 10, 20, 30, 200, 10, 20, 30, 100, 10, 20, 30, 1]
    r16 = struct.pack("<4H", 1, 2, 3, 65535) * 3
    out16 = struct.unpack("<12H", px.mask_alpha(r16, "u16", bytes([0, 128, 255])))
    assert out16 == (0, 0, 0, 0, 1, 2, 3, 32896, 1, 2, 3, 65535)
    with pytest.raises(ValueError, match="does not match"):
        px.mask_alpha(rgba, "u8", bytes(3))


def test_pixel_helpers(plugin: types.SimpleNamespace) -> None:
    px = plugin.pixels
    assert px.alpha_is_empty(bytes(8), "u8")
    assert not px.alpha_is_empty(struct.pack("<4H", 5, 5, 5, 256), "u16")
    values = bytes([0, 1, 128, 255])
    assert layouts.convert_dtype(layouts.convert_dtype(values, "u8", "u16"), "u16", "u8") == values
    assert struct.unpack("<2H", layouts.convert_dtype(bytes([1, 255]), "u8", "u16")) == (257, 65535)
    rgba = px.add_alpha(bytes([1, 2, 3, 4, 5, 6]), 3, "u8")
    assert list(rgba) == [1, 2, 3, 255, 4, 5, 6, 255]
    assert list(px.copy_alpha(rgba, bytes([0, 0, 0, 9, 0, 0, 0, 8]), "u8")) == [
        1,
        2,
        3,
        9,
        4,
        5,
        6,
        8,
    ]


def test_the_slider_sends_the_engines_strength_scale(plugin: types.SimpleNamespace) -> None:
    jp = plugin.job_params
    assert jp.STRENGTH_DEFAULT == StyleParams().strength
    for slider in (0, 50, 100):
        params = jp.build_params(
            iterations=20, size=512, strength=slider, preserve_colors=False, area=(64, 48)
        )
        assert params["strength"] == slider and "style_weight" not in params
        assert make_params(params).beta == strength_to_style_weight(slider)


def test_params_are_engine_params(plugin: types.SimpleNamespace) -> None:
    params = plugin.job_params.build_params(
        iterations=20, size=512, strength=70, preserve_colors=True, area=(64, 48)
    )
    assert params["size"] == 64  # never above the area's own long side
    make_params(params)  # the engine accepts every name and value


def test_progress_text(plugin: types.SimpleNamespace) -> None:
    jp = plugin.job_params
    header = {
        "iteration": 30,
        "iterations": 120,
        "scale": 2,
        "scales": 3,
        "eta_s": 75.2,
        "elapsed_s": 20.0,
    }
    assert jp.progress_fraction(header) == pytest.approx(0.25)
    assert jp.progress_text(header) == "25% · 1:15 left · scale 2/3"
    assert jp.progress_text({"iteration": 0, "iterations": 0}) == "0%"


def test_settings_env_overrides_and_errors(plugin: types.SimpleNamespace, tmp_path: Path) -> None:
    link = plugin.link
    config = tmp_path / "nst_config.json"
    config.write_text(
        '{"endpoint": "tcp://127.0.0.1:9", "transport": "zmq", '
        '"python": "/opt/nst/python", "timeout_s": 2}'
    )
    s = link.load_settings(config, env={})
    assert (s.endpoint, s.transport, s.python, s.timeout_s) == (
        "tcp://127.0.0.1:9",
        "zmq",
        "/opt/nst/python",
        2.0,
    )
    s = link.load_settings(config, env={"NST_TRANSPORT": "bridge"})
    assert s.resolved_transport() == "bridge"
    with pytest.raises(link.SettingsError, match="transport must be one of"):
        link.load_settings(config, env={"NST_TRANSPORT": "carrier-pigeon"})
    config.write_text("{not json")
    with pytest.raises(link.SettingsError, match="nst install-plugin krita"):
        link.load_settings(config, env={})
    assert link.load_settings(tmp_path / "missing.json", env={}).transport == "auto"


def test_platform_paths() -> None:
    env = {
        "HOME": "/home/a",
        "APPDATA": r"C:\Users\a\AppData\Roaming",
        "LOCALAPPDATA": r"C:\Users\a\AppData\Local",
    }
    assert installer.pykrita_dir(env, "linux") == Path("/home/a/.local/share/krita/pykrita")
    assert installer.kritarc_path(env, "linux") == Path("/home/a/.config/kritarc")
    xdg = {**env, "XDG_DATA_HOME": "/x/data", "XDG_CONFIG_HOME": "/x/config"}
    assert installer.pykrita_dir(xdg, "linux") == Path("/x/data/krita/pykrita")
    assert installer.kritarc_path(xdg, "linux") == Path("/x/config/kritarc")
    assert installer.pykrita_dir(env, "darwin") == Path(
        "/home/a/Library/Application Support/krita/pykrita"
    )
    assert installer.pykrita_dir(env, "win32") == Path(env["APPDATA"]) / "krita" / "pykrita"
    assert installer.kritarc_path(env, "win32") == Path(env["LOCALAPPDATA"]) / "kritarc"


def test_kritarc_enable_line(tmp_path: Path) -> None:
    rc = tmp_path / "kritarc"
    assert installer.set_enabled(rc, True)
    assert rc.read_text() == "[python]\nenable_neural_style=true\n"
    assert not installer.set_enabled(rc, True)  # idempotent
    rc.write_text("[General]\nx=1\n")
    installer.set_enabled(rc, True)
    assert rc.read_text() == "[General]\nx=1\n\n[python]\nenable_neural_style=true\n"
    installer.set_enabled(rc, False)
    assert "enable_neural_style" not in rc.read_text()
    assert rc.read_text().startswith("[General]\nx=1\n")


def test_install_and_uninstall(tmp_path: Path) -> None:
    dest, rc = tmp_path / "pykrita", tmp_path / "kritarc"
    original = "[General]\nfoo=1\n\n[python]\nenable_other=true\n"
    rc.write_text(original)
    package = installer.install(dest, "tcp://127.0.0.1:1", "bridge", kritarc=rc)
    assert (package / "nst_client" / "client.py").exists()
    assert (dest / "neural_style.desktop").exists()
    config = json.loads((package / "nst_config.json").read_text())
    assert config["transport"] == "bridge"
    assert "style_weight" not in config  # strength goes to the engine, which maps it
    assert "enable_neural_style=true" in rc.read_text()
    removed = installer.uninstall(dest, kritarc=rc)
    assert set(removed) == {package, dest / "neural_style.desktop", rc}
    assert not package.exists() and rc.read_text() == original
    with pytest.raises(ValueError, match="transport must be"):
        installer.install(dest, "tcp://127.0.0.1:1", "pigeon", kritarc=rc)
