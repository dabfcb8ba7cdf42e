"""The GIMP plug-in without GIMP (fast, no root, no processes): its installer, its thinness,
and the rules in nst_gimp_job.py, with a scripted daemon behind a real nst_client Client."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from scripted_transport import Reply, ScriptedTransport

import nst_client
from nst_client import protocol as P
from nst_client.client import Client, DaemonUnavailable, JobCancelled
from nst_client.progress import Progress
from nst_client.settings import CONFIG_NAME, Settings
from nst_plugins import gimp_installer as installer
from nst_plugins import install as shared

PLUGIN_DIR = shared.payload_dir("gimp") / installer.PLUGIN_NAME
SCRIPT = PLUGIN_DIR / f"{installer.PLUGIN_NAME}.py"
sys.path.insert(0, str(PLUGIN_DIR))  # as the script does: the pure module sits beside it
import nst_gimp_job as job  # noqa: E402

# --- the installer ---------------------------------------------------------------------------


def _assigned(path: Path, name: str) -> object:
    """The value a module assigns to NAME, read without importing the module."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise KeyError(name)


def test_install_and_uninstall(tmp_path: Path) -> None:
    dest = tmp_path / "plug-ins"
    target = installer.install(dest, "tcp://127.0.0.1:6000", "bridge")
    assert target == dest / "plug-in-nst-stylize"
    script = target / "plug-in-nst-stylize.py"
    assert os.access(script, os.X_OK)
    assert (target / "nst_gimp_job.py").is_file()
    client_dir = target / "nst_client"
    for name in (
        "__init__.py",
        "client.py",
        "protocol.py",
        "layouts.py",
        "settings.py",
        "progress.py",
        "strength.py",
        "bridge.py",
    ):
        assert (client_dir / name).is_file(), name
    assert not list(client_dir.rglob("__pycache__"))
    assert _assigned(client_dir / "__init__.py", "__version__") == nst_client.__version__
    config = json.loads((target / CONFIG_NAME).read_text())
    assert config["endpoint"] == "tcp://127.0.0.1:6000" and config["transport"] == "bridge"
    assert Path(config["python"]).exists()
    # What the plug-in reads back is what was installed.
    settings = job.load_settings(target, env={})
    assert (settings.endpoint, settings.transport) == ("tcp://127.0.0.1:6000", "bridge")
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


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    return imported | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }


def test_plugin_stays_thin() -> None:
    """GIMP's bundled Python has no torch, numpy or PIL: the plug-in must not need them."""
    heavy = {"torch", "numpy", "PIL", "zmq", "msgpack", "nst_core", "nst_daemon"}
    files = sorted(PLUGIN_DIR.glob("*.py"))
    assert [f.name for f in files] == ["nst_gimp_job.py", "plug-in-nst-stylize.py"]
    for path in files:
        assert not _imports(path) & heavy, (path.name, _imports(path))
    # The pure module runs without GIMP; the script is what GIMP runs.
    assert "gi" not in _imports(PLUGIN_DIR / "nst_gimp_job.py")
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")
    assert SCRIPT.read_text().rstrip().endswith("Gimp.main(NstStylize.__gtype__, sys.argv)")
    if os.name == "posix":
        assert os.access(SCRIPT, os.X_OK), "GIMP 3 runs only an executable plug-in script"


# --- the procedure's values --------------------------------------------------------------------


def test_build_params_are_engine_params() -> None:
    from nst_core.params import make_params  # pure Python, no torch

    args = job.JobArgs(
        style_path="/s.png",
        strength=70.0,
        iterations=40,
        size=256,
        preserve_colors=True,
        seed=7,
        endpoint="tcp://x:1",
    )
    params = job.build_params(args)
    assert params == {
        "iterations": 40,
        "size": 256,
        "strength": 70.0,
        "preserve_colors": True,
        "seed": 7,
    }
    made = make_params(params)  # every name is the engine's, every value in its range
    assert (made.iterations, made.size, made.strength, made.seed) == (40, 256, 70.0, 7)
    assert job.build_params(job.JobArgs("/s.png", strength=250.0))["strength"] == 100.0
    # The procedure's ranges are the engine's.
    assert job.STRENGTH == (0.0, 100.0, 50.0)
    for low, high, default in (job.ITERATIONS, job.SIZE, job.SEED):
        assert low <= default <= high
    make_params({"iterations": job.ITERATIONS[1], "size": job.SIZE[0], "seed": job.SEED[1]})


def test_style_size_limit() -> None:
    assert job.style_limit(512) == 1024
    assert job.style_limit(64) == 512  # a tiny working size keeps 256 x 2
    assert job.style_size(800, 600, 512) == (800, 600)  # within: unchanged
    assert job.style_size(4000, 3000, 512) == (1024, 768)
    assert job.style_size(3000, 4000, 512) == (768, 1024)
    assert job.style_size(10000, 3, 512) == (1024, 1)  # never 0 pixels


def test_result_layer_name_and_texts() -> None:
    assert job.result_layer_name("Background", "/x/starry-night.jpg") == "Background (starry-night)"
    assert job.result_layer_name("Layer", "") == "Layer (style)"
    p = Progress(5, 20, 2, 3, 1.0, 0.5, 0.5, elapsed_s=30.0, eta_s=90.0)
    assert job.progress_text(p) == "Neural style transfer: 25% · 1:30 left · scale 2/3"
    assert job.done_text(75.2) == "Neural style transfer: done in 1:15"


def test_load_settings(tmp_path: Path) -> None:
    assert job.load_settings(tmp_path, env={}).endpoint == P.DEFAULT_ENDPOINT  # no file
    Settings(endpoint="tcp://10.0.0.2:6000", timeout_s=2.0).save(tmp_path / CONFIG_NAME)
    assert job.load_settings(tmp_path, env={}).endpoint == "tcp://10.0.0.2:6000"
    env = {"NST_ENDPOINT": "tcp://10.0.0.3:7000", "NST_TRANSPORT": "bridge"}
    from_env = job.load_settings(tmp_path, env=env)
    assert (from_env.endpoint, from_env.transport) == ("tcp://10.0.0.3:7000", "bridge")
    # The procedure's endpoint wins over both; blank means the installed one.
    assert job.load_settings(tmp_path, " tcp://h:1 ", env).endpoint == "tcp://h:1"
    assert job.load_settings(tmp_path, "  ", env).endpoint == "tcp://10.0.0.3:7000"
    with pytest.raises(job.PluginError, match="expected tcp://HOST:PORT"):
        job.load_settings(tmp_path, "localhost:5757", env={})
    with pytest.raises(job.PluginError, match="NST_TRANSPORT"):
        job.load_settings(tmp_path, env={"NST_TRANSPORT": "pigeon"})
    (tmp_path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(job.PluginError, match="nst install-plugin"):
        job.load_settings(tmp_path, env={})


# --- one job through a Client, against a scripted daemon -------------------------------------

W, H = 4, 3
CONTENT = (P.ImageDesc(width=W, height=H, channels=4, dtype="u8", frame=0), bytes(range(48)))
STYLE = (P.ImageDesc(width=2, height=2, channels=3, dtype="u8", frame=0), bytes(12))
STATS = {"elapsed_s": 1.0, "queued_s": 0.0, "iterations": 20, "scales": 1}


def _welcome(version: str = nst_client.__version__) -> dict[str, Any]:
    return {"type": "welcome", "protocol": 1, "version": version, "defaults": {}}


def _result(width: int = W, height: int = H, data: bytes | None = None) -> Reply:
    image = {"width": width, "height": height, "channels": 4, "dtype": "u8", "frame": 1}
    pixels = bytes(width * height * 4) if data is None else data
    return {"type": "result", "image": image, "stats": STATS}, [pixels]


PROGRESS: Reply = (
    {
        "type": "progress",
        "iteration": 10,
        "iterations": 20,
        "scale": 1,
        "scales": 1,
        "loss": {"total": 1.0, "content": 0.5, "style": 0.5},
        "elapsed_s": 2.0,
        "eta_s": 2.0,
    },
    [],
)


SETTINGS = Settings(endpoint="tcp://127.0.0.1:1", timeout_s=0.05)


def _run(
    daemon: ScriptedTransport, style_path: str, **kwargs: Any
) -> tuple[Any, list[str], list[str]]:
    """run_job against DAEMON; returns (result, client names that connected, style reads)."""
    names: list[str] = []
    reads: list[str] = []

    def connect(settings: Settings, name: str) -> Client:
        names.append(name)
        return Client(
            settings.endpoint, transport=daemon, timeout_s=settings.timeout_s, client_name=name
        )

    def read_style(path: str) -> tuple[P.ImageDesc, bytes]:
        reads.append(path)
        return STYLE

    params = job.build_params(job.JobArgs(style_path, iterations=20, size=64))
    done = job.run_job(
        SETTINGS, CONTENT, style_path, read_style, params, connect_fn=connect, **kwargs
    )
    return done, names, reads


@pytest.fixture
def style_file(tmp_path: Path) -> str:
    path = tmp_path / "swirls.png"
    path.write_bytes(b"not read here: read_style stands in for GIMP's loaders")
    return str(path)


def test_job_success(style_file: str) -> None:
    daemon = ScriptedTransport(
        {"hello": [_welcome()], "stylize": [{"type": "accepted"}, PROGRESS, _result()]}
    )
    seen: list[Progress] = []
    notes: list[str] = []
    done, names, reads = _run(daemon, style_file, on_progress=seen.append, on_note=notes.append)
    assert (done.image["width"], done.image["height"]) == (W, H) and done.data == bytes(48)
    assert done.stats["iterations"] == 20
    assert names == [job.CLIENT_NAME] and reads == [style_file] and notes == []
    hello, stylize = daemon.of_type("hello")[0], daemon.of_type("stylize")[0]
    assert hello["client"] == "gimp-plug-in"
    assert stylize["params"] == {
        "iterations": 20,
        "size": 64,
        "strength": 50.0,
        "preserve_colors": False,
        "seed": 0,
    }
    assert stylize["content"] == {**CONTENT[0], "frame": 1}
    assert stylize["styles"] == [{**STYLE[0], "frame": 2, "weight": 1.0}]
    assert daemon.frames[daemon.sent.index(stylize)] == 2
    assert [(p.iteration, p.fraction) for p in seen] == [(10, 0.5)]
    assert daemon.closed


def test_version_note_shown_and_job_still_runs(style_file: str) -> None:
    daemon = ScriptedTransport({"hello": [_welcome("9.9.9")], "stylize": [_result()]})
    notes: list[str] = []
    done, _, _ = _run(daemon, style_file, on_note=notes.append)
    assert done.data == bytes(48)
    [note] = notes
    assert "9.9.9" in note and nst_client.__version__ in note
    assert "`nst install-plugin gimp`" in note
    # Without a listener the note is dropped, never an error.
    daemon = ScriptedTransport({"hello": [_welcome("9.9.9")], "stylize": [_result()]})
    assert _run(daemon, style_file)[0].data == bytes(48)


def test_daemon_error(style_file: str) -> None:
    refusal = {"type": "error", "code": "too_large", "message": "the image is too large"}
    daemon = ScriptedTransport({"hello": [_welcome()], "stylize": [{"type": "accepted"}, refusal]})
    with pytest.raises(job.PluginError) as info:
        _run(daemon, style_file)
    assert str(info.value) == "The NST daemon refused the job: too_large: the image is too large"
    assert daemon.closed
    # An error reply to hello (an old daemon, say) is a refusal too, before any style read.
    daemon = ScriptedTransport({"hello": [{**refusal, "code": "unsupported_protocol"}]})
    with pytest.raises(job.PluginError, match="unsupported_protocol"):
        _run(daemon, style_file)


def test_cancel(style_file: str) -> None:
    daemon = ScriptedTransport(
        {
            "hello": [_welcome()],
            "stylize": [{"type": "accepted"}, PROGRESS],
            "cancel": [{"type": "cancelled"}],
        }
    )
    with pytest.raises(JobCancelled):  # not a PluginError: the user asked for it
        _run(daemon, style_file, should_cancel=lambda: True)
    [cancel] = daemon.of_type("cancel")
    assert cancel["job"] == daemon.of_type("stylize")[0]["id"]
    assert daemon.closed


def test_daemon_unavailable(style_file: str) -> None:
    daemon = ScriptedTransport({})  # nothing answers hello
    with pytest.raises(job.PluginError) as info:
        _run(daemon, style_file)
    message = str(info.value)
    assert "tcp://127.0.0.1:1" in message and "nst-daemon" in message
    assert daemon.closed and not daemon.of_type("stylize")


def test_no_client_to_be_had(style_file: str) -> None:
    def no_bridge(settings: Settings, name: str) -> Client:
        raise DaemonUnavailable("cannot start the bridge '/nope/python': not found")

    def no_zmq(settings: Settings, name: str) -> Client:
        raise ImportError("No module named 'zmq'")

    with pytest.raises(job.PluginError, match='cannot start the bridge.*"python"'):
        job.open_client(SETTINGS, no_bridge)
    with pytest.raises(job.PluginError, match='"transport": "bridge"'):
        job.open_client(SETTINGS, no_zmq)


def test_missing_style_file(tmp_path: Path) -> None:
    daemon = ScriptedTransport({"hello": [_welcome()]})
    for path in ("", str(tmp_path / "gone.png"), str(tmp_path)):
        with pytest.raises(job.PluginError, match="does not exist: choose an image file"):
            _run(daemon, path)
    assert daemon.sent == []  # nothing was sent for a style that is not there


def test_wrong_size_or_malformed_result(style_file: str) -> None:
    daemon = ScriptedTransport({"hello": [_welcome()], "stylize": [_result(2, 2)]})
    with pytest.raises(job.PluginError, match="returned 2x2 pixels for a 4x3 layer"):
        _run(daemon, style_file)
    daemon = ScriptedTransport({"hello": [_welcome()], "stylize": [_result(data=b"short")]})
    with pytest.raises(job.PluginError, match="malformed result"):
        _run(daemon, style_file)
