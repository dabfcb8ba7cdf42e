"""The GIMP plug-in's installer and the plug-in's thinness, without GIMP (fast, no root)."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import pytest

from nst_plugins import install as shared
from nst_plugins.gimp import installer

PLUGIN = installer.SOURCE_DIR / "plug-in-nst-stylize.py"


def test_install_and_uninstall(tmp_path: Path) -> None:
    dest = tmp_path / "plug-ins"
    target = installer.install(dest, "tcp://127.0.0.1:6000", "bridge")
    assert target == dest / "plug-in-nst-stylize"
    script = target / "plug-in-nst-stylize.py"
    assert os.access(script, os.X_OK)
    for name in ("__init__.py", "client.py", "protocol.py", "layouts.py"):
        assert (target / "nst_client" / name).is_file()
    config = json.loads((target / shared.CONFIG_NAME).read_text())
    assert config["endpoint"] == "tcp://127.0.0.1:6000" and config["transport"] == "bridge"
    assert Path(config["python"]).exists()
    # Reinstalling replaces the folder; stale files go.
    (target / "stale.txt").write_text("x")
    installer.install(dest, "tcp://127.0.0.1:6001", "auto")
    assert not (target / "stale.txt").exists()
    assert installer.uninstall(dest) == [target] and not target.exists()
    assert installer.uninstall(dest) == []


def test_bad_transport(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="transport"):
        installer.install(tmp_path, "tcp://127.0.0.1:6000", "carrier-pigeon")


def test_plugin_folders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    native, flatpak = installer.candidate_dirs()
    assert native == tmp_path / ".config/GIMP/3.0/plug-ins"
    assert flatpak == tmp_path / ".var/app/org.gimp.GIMP/config/GIMP/3.0/plug-ins"
    assert installer.find_plugins_dir() == native  # no profile yet: the native one
    flatpak.parent.mkdir(parents=True)
    assert installer.find_plugins_dir() == flatpak  # only Flatpak GIMP has run
    monkeypatch.setattr(sys, "platform", "darwin")
    assert installer.candidate_dirs() == [
        tmp_path / "Library/Application Support/GIMP/3.0/plug-ins"
    ]
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    assert installer.candidate_dirs() == [tmp_path / "Roaming/GIMP/3.0/plug-ins"]


def test_plugin_stays_thin() -> None:
    """GIMP's bundled Python has no torch, numpy or PIL: the plug-in must not need them."""
    tree = ast.parse(PLUGIN.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"torch", "numpy", "PIL", "zmq", "msgpack", "nst_core"}, imported
    assert PLUGIN.read_text().startswith("#!/usr/bin/env python3")
