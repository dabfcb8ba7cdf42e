"""The GIMP plug-in without GIMP (fast, no root, no processes): its installer, its thinness,
and the rules in nst_gimp_job.py, with a scripted daemon behind a real nst_client Client and
a stand-in for the launcher (the real one starts processes: tests/e2e/test_gimp.py)."""

from __future__ import annotations

import ast
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from scripted_transport import Reply, ScriptedTransport

import nst_client
from nst_client import launcher
from nst_client import protocol as P
from nst_client.client import Client, DaemonUnavailable, JobCancelled
from nst_client.launcher import EngineState
from nst_client.params import make_params  # pure Python, no torch
from nst_client.progress import Progress
from nst_client.settings import CONFIG_NAME, Settings
from nst_plugins import gimp_installer as installer
from nst_plugins import install as shared

PLUGIN_DIR = shared.payload_dir("gimp") / installer.PLUGIN_NAME
SCRIPT = PLUGIN_DIR / f"{installer.PLUGIN_NAME}.py"
#: The procedure's values and dialogs (GIMP glue beside the script).
UI = PLUGIN_DIR / "nst_gimp_ui.py"
#: The modules that must run without GIMP.
PURE = ("nst_gimp_job.py", "nst_gimp_masks.py", "nst_gimp_state.py")
sys.path.insert(0, str(PLUGIN_DIR))  # as the script does: the pure modules sit beside it
import nst_gimp_job as job  # noqa: E402
import nst_gimp_masks as masks  # noqa: E402
from nst_gimp_state import StateWatcher  # noqa: E402

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
    (done,) = shared.install_hosts("gimp", str(dest), "tcp://127.0.0.1:6000", "bridge")
    target = done.folder
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
    shared.install_hosts("gimp", str(dest), "tcp://127.0.0.1:6001", "auto")
    assert not (target / "stale.txt").exists()
    assert shared.uninstall_hosts("gimp", str(dest)) == {"gimp": [target]}
    assert not target.exists()
    assert shared.uninstall_hosts("gimp", str(dest)) == {"gimp": []}


def test_bad_transport(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="transport"):
        shared.install_hosts("gimp", str(tmp_path), "tcp://127.0.0.1:6000", "carrier-pigeon")


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
    assert [f.name for f in files] == sorted([*PURE, UI.name, SCRIPT.name])
    for path in files:
        assert not _imports(path) & heavy, (path.name, _imports(path))
    # The pure modules run without GIMP; the script is what GIMP runs.
    for name in PURE:
        assert "gi" not in _imports(PLUGIN_DIR / name), name
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")
    assert SCRIPT.read_text().rstrip().endswith("Gimp.main(NstStylize.__gtype__, sys.argv)")
    if os.name == "posix":
        assert os.access(SCRIPT, os.X_OK), "GIMP 3 runs only an executable plug-in script"


# --- the procedure's values --------------------------------------------------------------------


AREA = (4000, 3000)


def test_build_params_are_engine_params() -> None:
    """The dialog's defaults: the normal preset, no time limit, Auto size, no iterations."""
    args = job.JobArgs(
        style_path="/s.png", strength=70.0, preserve_colors=True, seed=7, endpoint="tcp://x:1"
    )
    params = job.build_params(args, AREA)
    assert params == {"quality": "normal", "strength": 70.0, "preserve_colors": True, "seed": 7}
    made = make_params(params)  # every name is the engine's, every value in its range
    assert (made.quality, made.iterations, made.size, made.time_budget) == (
        "normal",
        None,
        None,
        None,
    )
    assert (made.strength, made.seed) == (70.0, 7)
    # The procedure's ranges are the definition's (GIMP's integers are 32-bit).
    assert job.STRENGTH == (0.0, 100.0, 50.0)
    for low, high, default in (job.TIME_LIMIT, job.ITERATIONS, job.SIZE, job.SEED):
        assert low <= default <= high
    assert job.TIME_LIMIT[2] == job.SIZE[2] == job.ITERATIONS[2] == 0  # off, Auto, by quality
    assert job.SEED[1] == job.GINT_MAX
    make_params(
        {
            "iterations": job.ITERATIONS[1],
            "size": job.SIZE[1],
            "seed": job.SEED[1],
            "time_budget": float(job.TIME_LIMIT[1]),
        }
    )


def test_the_presets_and_limits_are_the_definitions() -> None:
    from nst_client.params import MAX_TIME_BUDGET_S, QUALITIES, quality_help

    assert job.TIME_LIMIT[1] == MAX_TIME_BUDGET_S
    assert job.QUALITY_HELP == quality_help()
    for preset in QUALITIES:
        assert f"{preset.label}: " in job.QUALITY_HELP and preset.name == preset.label.lower()


@pytest.mark.parametrize("quality", ["draft", "normal", "final"])
def test_the_quality_choice_is_sent(quality: str) -> None:
    params = job.build_params(job.JobArgs("/s.png", quality=quality), AREA)
    assert params["quality"] == quality
    assert not {"iterations", "size", "time_budget"} & set(params)
    assert make_params(params).quality == quality


def test_a_time_limit_is_sent_as_the_budget() -> None:
    params = job.build_params(job.JobArgs("/s.png", quality="final", time_limit=90), AREA)
    assert params["time_budget"] == 90.0 and params["quality"] == "final"
    assert make_params(params).time_budget == 90.0
    # 1..4 s are below what the engine plans for: its least, never an error.
    assert job.build_params(job.JobArgs("/s.png", time_limit=2), AREA)["time_budget"] == 5.0


def test_an_auto_size_is_not_sent_and_a_chosen_one_is() -> None:
    from nst_client.params import MIN_SIZE

    assert "size" not in job.build_params(job.JobArgs("/s.png", size=0), AREA)
    assert job.build_params(job.JobArgs("/s.png", size=300), AREA)["size"] == 300
    assert job.build_params(job.JobArgs("/s.png", size=3), AREA)["size"] == MIN_SIZE
    # Never above the layer's own long side (as in Krita: the one mapping).
    assert job.build_params(job.JobArgs("/s.png", size=5000), (640, 480))["size"] == 640


def test_iterations_are_sent_only_when_a_script_sets_them() -> None:
    assert "iterations" not in job.build_params(job.JobArgs("/s.png", iterations=0), AREA)
    params = job.build_params(job.JobArgs("/s.png", iterations=40, size=256), AREA)
    assert (params["iterations"], params["size"]) == (40, 256)
    made = make_params(params)
    assert (made.iterations, made.size) == (40, 256)
    # A dialog run (or its repeat) sends none: the dialog does not show the argument, so a
    # count there is a stale saved value (an older version's 300), never the user's choice.
    assert job.run_iterations(300, interactive=True) == 0
    assert job.run_iterations(300, interactive=False) == 300
    assert "run_iterations(" in UI.read_text()


def _registered(*paths: Path) -> tuple[dict[str, str], list[str]]:
    """The procedure arguments the files add by a literal name (name -> how they add them)
    and the dialog's fields."""
    added: dict[str, str] = {}
    fields: list[str] = []
    for node in (n for path in paths for n in ast.walk(ast.parse(path.read_text()))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        kind, args = node.func.attr, node.args
        if kind.startswith("add_") and kind.endswith("_argument") and args:
            first = args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                added[first.value] = kind
        if kind == "fill" and args and isinstance(args[0], ast.List):
            fields = [
                e.value
                for e in args[0].elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
    return added, fields


def test_the_dialog_shows_presets_and_keeps_iterations_for_scripts() -> None:
    added, fields = _registered(SCRIPT, UI)
    assert added["quality"] == "add_choice_argument"
    assert added["time-limit"] == added["size"] == added["iterations"] == "add_int_argument"
    assert "quality" in fields and "time-limit" in fields and "size" in fields
    assert "iterations" not in fields, "iterations are for scripts: not in the dialog"
    assert set(fields) - {"engine-frame", "styles"} <= set(added)
    source = SCRIPT.read_text()
    # The labels and help come from the one definition (nst_client.params).
    for name in ("strength", "quality", "time_budget", "size", "iterations", "preserve_colors"):
        assert f'param_label("{name}")' in source or f"param_label('{name}')" in source, name
    assert job.param_label("time_budget") == "Time _limit"
    assert job.param_label("size") == "_Working size"


def test_style_size_limit() -> None:
    from nst_client.params import STYLE_AUTO_SIDE, style_side_limit

    assert style_side_limit(0) == STYLE_AUTO_SIDE == 2048  # Auto: as the Krita docker
    assert job.style_size(4000, 3000, 0) == (2048, 1536)
    assert style_side_limit(512) == 1024
    assert style_side_limit(64) == 512  # a tiny working size keeps 256 x 2
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
    # The dialog's engine settings win over both; blank means the installed one.
    dialog = job.JobArgs("/s.png", endpoint=" tcp://h:1 ").engine_settings()
    assert job.load_settings(tmp_path, dialog, env).endpoint == "tcp://h:1"
    assert job.load_settings(tmp_path, {"endpoint": "  "}, env).endpoint == "tcp://10.0.0.3:7000"
    off = job.JobArgs("/s.png", start_on_demand=False).engine_settings()
    assert job.load_settings(tmp_path, off, env).start_on_demand is False
    with pytest.raises(job.PluginError, match="NST_TRANSPORT"):
        job.load_settings(tmp_path, env={"NST_TRANSPORT": "pigeon"})
    (tmp_path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(job.PluginError, match="nst install-plugin"):
        job.load_settings(tmp_path, env={})


def test_settings_errors_name_the_dialog_fields(tmp_path: Path) -> None:
    """A bad value typed in the dialog is named by its field there, never by a JSON key."""
    with pytest.raises(job.PluginError) as info:
        job.load_settings(tmp_path, {"endpoint": "localhost:5757"}, env={})
    assert '"Engine address" in the dialog' in str(info.value)
    assert "expected tcp://HOST:PORT" in str(info.value)
    missing = str(tmp_path / "server.key")
    with pytest.raises(job.PluginError) as info:
        job.load_settings(tmp_path, {"curve_server_key": missing}, env={})
    assert '"Engine public key" in the dialog' in str(info.value)
    assert "no such file" in str(info.value) and missing in str(info.value)
    public = tmp_path / "client.key"
    public.write_text('public-key = "' + "a" * 40 + '"\n')
    (tmp_path / "server.key").write_text('public-key = "' + "b" * 40 + '"\n')
    dialog = {"curve_server_key": missing, "curve_client_cert": str(public)}
    with pytest.raises(job.PluginError) as info:
        job.load_settings(tmp_path, dialog, env={})
    assert '"Your secret certificate" in the dialog' in str(info.value)
    assert "no secret key" in str(info.value)
    assert "curve_" not in str(info.value).split(":")[1]  # the field's name, not the key's
    # The same files are good ones once the certificate is the secret one.
    public.write_text(public.read_text() + 'secret-key = "' + "c" * 40 + '"\n')
    public.chmod(0o600)  # and its owner's alone
    good = job.load_settings(tmp_path, dialog, env={})
    assert good.curve_client_cert == str(public) and good.curve_server_key == missing


def test_checkbox_default_is_the_installed_setting(tmp_path: Path) -> None:
    assert job.installed_start_on_demand(tmp_path, env={}) is True  # nothing installed
    Settings(start_on_demand=False).save(tmp_path / CONFIG_NAME)
    assert job.installed_start_on_demand(tmp_path, env={}) is False
    (tmp_path / CONFIG_NAME).write_text("{not json")  # the run says what is wrong
    assert job.installed_start_on_demand(tmp_path, env={}) is True


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
READY = EngineState(launcher.READY, "Style engine ready (CPU)", "tcp://127.0.0.1:1", device="cpu")


class Launcher:
    """Stands in for launcher.ensure_running: replays STATES through on_state (asking
    should_cancel after each, as the real one does while it waits), then returns READY or
    raises FAILURE."""

    def __init__(
        self, states: tuple[EngineState, ...] = (), failure: Exception | None = None
    ) -> None:
        self.states, self.failure = states, failure
        self.calls: list[Settings] = []

    def __call__(
        self,
        settings: Settings,
        on_state: Callable[[EngineState], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> EngineState:
        self.calls.append(settings)
        for state in self.states:
            if on_state is not None:
                on_state(state)
            if should_cancel is not None and should_cancel():
                raise JobCancelled("cancelled while the engine started")
        if self.failure is not None:
            raise self.failure
        return READY


def _run(
    daemon: ScriptedTransport,
    style_path: str,
    settings: Settings = SETTINGS,
    ensure: Launcher | None = None,
    **kwargs: Any,
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

    params = job.build_params(job.JobArgs(style_path, iterations=20, size=64), (64, 64))
    kwargs.setdefault("connect_fn", connect)
    kwargs.setdefault("probe_fn", lambda settings: launcher.not_answering(settings, "gone"))
    done = job.run_job(
        settings,
        CONTENT,
        style_path,
        read_style,
        params,
        ensure_fn=ensure or Launcher(),
        **kwargs,
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
        "quality": "normal",
        "strength": 50.0,
        "preserve_colors": False,
        "seed": 0,
        "size": 64,
        "iterations": 20,
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
    assert str(info.value) == (
        "The style engine refused the job (too_large): the image is too large"
    )
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
        _run(daemon, style_file, should_cancel=lambda: bool(daemon.of_type("stylize")))
    [cancel] = daemon.of_type("cancel")
    assert cancel["job"] == daemon.of_type("stylize")[0]["id"]
    assert daemon.closed
    # Cancelled before the job was sent: nothing is sent.
    early = ScriptedTransport({"hello": [_welcome()]})
    with pytest.raises(JobCancelled):
        _run(early, style_file, should_cancel=lambda: True)
    assert early.of_type("stylize") == []


def test_engine_lost_during_the_job(style_file: str) -> None:
    daemon = ScriptedTransport({})  # the launcher saw it ready; then nothing answers hello
    with pytest.raises(job.PluginError) as info:
        _run(daemon, style_file)
    message = str(info.value)
    assert message.startswith("The style engine stopped answering: ")
    assert "tcp://127.0.0.1:1" in message
    assert daemon.closed and not daemon.of_type("stylize")


STARTING = tuple(
    EngineState(
        launcher.STARTING,
        f"Starting the style engine… loading VGG-19 ({round(f * 100)}%)",
        "pid 42",
        fraction=f,
    )
    for f in (0.0, 0.4, 0.9)
)


def test_engine_started_first(style_file: str) -> None:
    """ensure_running runs before any connection, with the job's on_state and should_cancel:
    the progress dialog shows the start and its Cancel works there."""
    daemon = ScriptedTransport({"hello": [_welcome()], "stylize": [_result()]})
    ensure = Launcher(STARTING)
    seen: list[EngineState] = []
    asked: list[int] = []

    def should_cancel() -> bool:
        asked.append(len(seen))
        return False

    done, names, _ = _run(
        daemon, style_file, ensure=ensure, on_state=seen.append, should_cancel=should_cancel
    )
    assert done.data == bytes(48) and names == [job.CLIENT_NAME]
    assert ensure.calls == [SETTINGS]
    assert [s.fraction for s in seen] == [0.0, 0.4, 0.9, None]  # then the state it returned
    assert seen[-1] == READY
    assert asked[:3] == [1, 2, 3]  # asked while starting, after each state shown


def test_cancel_while_the_engine_starts(style_file: str) -> None:
    daemon = ScriptedTransport({"hello": [_welcome()]})
    seen: list[EngineState] = []
    with pytest.raises(JobCancelled):
        _run(
            daemon,
            style_file,
            ensure=Launcher(STARTING),
            on_state=seen.append,
            should_cancel=lambda: len(seen) == 2,
        )
    assert len(seen) == 2 and daemon.sent == [] and not daemon.closed  # never connected


def test_no_engine_says_which_field_to_change(style_file: str) -> None:
    """When no engine can be had, the message names the dialog's field that changes it."""
    daemon = ScriptedTransport({})
    off = Settings(endpoint="tcp://127.0.0.1:1", start_on_demand=False)
    reason = DaemonUnavailable("the style engine is not running: starting it is turned off")
    with pytest.raises(job.PluginError) as info:
        _run(daemon, style_file, settings=off, ensure=Launcher(failure=reason))
    assert str(info.value) == (
        "The style engine is not running and starting the engine when needed is turned off "
        '("Start the engine when needed" in the dialog is off): turn it on, or start the engine '
        'with `nst daemon start`, or check "Engine address" in the dialog.'
    )
    remote = Settings(endpoint="tcp://192.0.2.7:5757")
    gone = DaemonUnavailable("no style engine answered at tcp://192.0.2.7:5757 within 1 s")
    with pytest.raises(job.PluginError) as info:
        _run(daemon, style_file, settings=remote, ensure=Launcher(failure=gone))
    assert str(info.value) == (
        "No style engine answered at tcp://192.0.2.7:5757 within 1 s. The engine at "
        "tcp://192.0.2.7:5757 is on another computer: it is started there. Check "
        '"Engine address" in the dialog and, for that engine\'s keys, "Engine public key" in '
        'the dialog and "Your secret certificate" in the dialog.'
    )
    # On demand and local: the launcher's own reason (from the engine's log) is the message.
    failed = DaemonUnavailable("the style engine could not start (exit code 1): no torch.")
    with pytest.raises(job.PluginError) as info:
        _run(daemon, style_file, ensure=Launcher(failure=failed))
    assert str(info.value) == "The style engine could not start (exit code 1): no torch."
    assert daemon.sent == []


def test_no_client_to_be_had(style_file: str) -> None:
    def no_bridge(settings: Settings, name: str) -> Client:
        raise DaemonUnavailable("cannot start the bridge '/nope/python': not found")

    def no_zmq(settings: Settings, name: str) -> Client:
        raise ImportError("No module named 'zmq'")

    daemon = ScriptedTransport({"hello": [_welcome()]})
    with pytest.raises(job.PluginError, match="cannot start the bridge.*`nst install-plugin gimp`"):
        _run(daemon, style_file, connect_fn=no_bridge)
    with pytest.raises(job.PluginError, match="`nst install-plugin gimp --transport auto`"):
        _run(daemon, style_file, connect_fn=no_zmq)


def test_missing_style_file(tmp_path: Path) -> None:
    daemon = ScriptedTransport({"hello": [_welcome()]})
    ensure = Launcher()
    with pytest.raises(job.PluginError) as info:
        _run(daemon, "", ensure=ensure)
    assert str(info.value) == 'No style image was chosen: choose an image file as "Style image".'
    for path in (str(tmp_path / "gone.png"), str(tmp_path)):
        with pytest.raises(job.PluginError) as info:
            _run(daemon, path, ensure=ensure)
        assert str(info.value) == (
            f'The style image {path} does not exist: choose an image file as "Style image".'
        )
    assert daemon.sent == [] and ensure.calls == []  # no engine started for a missing style


def test_wrong_size_or_malformed_result(style_file: str) -> None:
    daemon = ScriptedTransport({"hello": [_welcome()], "stylize": [_result(2, 2)]})
    with pytest.raises(job.PluginError, match="returned 2x2 pixels for a 4x3 layer"):
        _run(daemon, style_file)
    daemon = ScriptedTransport({"hello": [_welcome()], "stylize": [_result(data=b"short")]})
    with pytest.raises(job.PluginError, match="malformed result"):
        _run(daemon, style_file)


# --- the dialog's state line -------------------------------------------------------------------


class Monitors:
    """Stand-ins for launcher.EngineMonitor: each polls STATE of its settings' endpoint."""

    def __init__(self, fail_for: str = "") -> None:
        self.made: list[FakeMonitor] = []
        self.fail_for = fail_for

    def __call__(self, settings: Settings) -> FakeMonitor:
        if settings.endpoint == self.fail_for:
            raise ImportError("No module named 'zmq'")
        monitor = FakeMonitor(settings.endpoint)
        self.made.append(monitor)
        return monitor


class FakeMonitor:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.polls = 0
        self.closed = False
        self.thread: threading.Thread | None = None

    def poll(self) -> EngineState:
        assert not self.closed
        self.polls += 1
        self.thread = threading.current_thread()
        return EngineState(launcher.READY, f"ready #{self.polls}", self.endpoint)

    def close(self) -> None:
        self.closed = True


class Posted:
    """What the watcher handed over, with a wait for the next one."""

    def __init__(self) -> None:
        self.states: list[EngineState] = []
        self.cond = threading.Condition()

    def __call__(self, state: EngineState) -> None:
        with self.cond:
            self.states.append(state)
            self.cond.notify_all()

    def wait_for(self, check: Callable[[list[EngineState]], bool], timeout_s: float = 5.0) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: check(self.states), timeout_s), self.states


def test_state_watcher_polls_off_the_caller_thread() -> None:
    posted, monitors = Posted(), Monitors()
    watcher = StateWatcher(posted, monitors, interval_s=0.02)
    time.sleep(0.1)
    assert posted.states == [] and monitors.made == []  # nothing to watch yet
    watcher.watch(Settings(endpoint="tcp://127.0.0.1:1"))
    posted.wait_for(lambda s: len(s) >= 3)  # polled again every interval
    [first] = monitors.made
    assert [s.summary for s in posted.states[:3]] == ["ready #1", "ready #2", "ready #3"]
    assert first.thread is not None and first.thread is not threading.current_thread()
    # New settings (the endpoint edited in the dialog): a new monitor, the old one closed.
    watcher.watch(Settings(endpoint="tcp://127.0.0.1:2"))
    posted.wait_for(lambda s: s[-1].details == "tcp://127.0.0.1:2")
    assert first.closed and len(monitors.made) == 2
    # Settings that cannot be used: no polling until they change.
    watcher.watch(None)
    time.sleep(0.05)
    count = len(posted.states)
    time.sleep(0.1)
    assert len(posted.states) == count and monitors.made[1].closed
    watcher.watch(Settings(endpoint="tcp://127.0.0.1:3"))
    posted.wait_for(lambda s: s[-1].details == "tcp://127.0.0.1:3")
    started = time.monotonic()
    watcher.stop()
    assert time.monotonic() - started < 1.0 and monitors.made[-1].closed
    count = len(posted.states)
    time.sleep(0.1)
    assert len(posted.states) == count  # nothing after stop


def test_state_watcher_reports_a_monitor_it_cannot_make() -> None:
    posted = Posted()
    watcher = StateWatcher(posted, Monitors(fail_for="tcp://127.0.0.1:9"), interval_s=0.02)
    watcher.watch(Settings(endpoint="tcp://127.0.0.1:9", transport="zmq"))
    posted.wait_for(lambda s: len(s) >= 1)
    [state] = posted.states
    assert state.phase == launcher.UNREACHABLE and not state.usable()
    assert state.summary == "Style engine unreachable: No module named 'zmq'"
    assert "tcp://127.0.0.1:9" in state.details
    watcher.stop()


# --- a style per region: the dialog's three style rows -----------------------------------------


def test_the_style_rows_are_arguments_after_those_scripts_know() -> None:
    """Styles 2 and 3 and every row's region are added after the first style's arguments and
    the engine settings, so that a script's call by name or by position still fits."""
    names = [job.argument_name(a, n) for n in (1, 2, 3) for a in job.STYLE_ROW_ARGS]
    assert names[:4] == ["style-file", "strength", "region", "region-channel"]
    assert names[4:8] == ["style-file-2", "strength-2", "region-2", "region-channel-2"]
    assert job.row_label(job.STYLE_LABEL, 1) == "St_yle image"
    assert job.row_label(job.REGION_LABEL, 3) == "Re_gion 3"
    source = SCRIPT.read_text()
    registration = source[source.index("def do_create_procedure") :]
    assert registration.index('"curve-client-cert"') < registration.index("add_style_rows(proc")
    for kind in ("add_file_argument", "add_double_argument", "add_choice_argument"):
        assert kind in source[source.index("def add_style_rows") :], kind
    assert "add_channel_argument(" in source  # a channel chooser, none allowed
    assert list(job.REGIONS) == [job.REST, job.WHOLE, job.SELECTION, job.CHANNEL]
    assert job.default_region(1) == job.REST and job.default_region(2) == job.SELECTION
    assert all("_" in label for label in (job.STYLE_LABEL, job.REGION_LABEL, job.CHANNEL_LABEL))
    # The dialog: a tab per row, each row's channel greyed unless its region is a channel.
    dialog = UI.read_text()
    for part in ('"styles", [f"style-{n}-tab"', "fill_notebook(", '"notify::{region}"'):
        assert part in dialog, part


def _reader(read: list[str]) -> Callable[[str], tuple[P.ImageDesc, bytes]]:
    """A stand-in for GIMP's loaders: STYLE for every file, each read noted in READ."""

    def read_style(path: str) -> tuple[P.ImageDesc, bytes]:
        read.append(path)
        return STYLE

    return read_style


def _files(tmp_path: Path, *names: str) -> list[str]:
    paths = []
    for name in names:
        (tmp_path / name).write_bytes(b"a style image")
        paths.append(str(tmp_path / name))
    return paths


def test_one_style_plans_the_filter_as_it_always_was(tmp_path: Path) -> None:
    (style,) = _files(tmp_path, "swirls.png")
    for region in (job.REST, job.WHOLE):
        plan = job.plan_styles(job.JobArgs(style, region=region), has_selection=True)
        assert not plan.regions and plan.selection_limits  # its part under the selection
        assert plan.paths == (style,)
        assert not job.plan_styles(job.JobArgs(style, region=region), False).selection_limits
    # Rows without a file and with their default region are unused, whatever their strength.
    unused = (job.StyleChoice(2, "", 80.0), job.StyleChoice(3, "", 10.0, job.SELECTION))
    plan = job.plan_styles(job.JobArgs(style, more_styles=unused), True)
    assert not plan.regions and len(plan.styles) == 1
    read: list[str] = []
    [raw] = job.raw_styles(plan, _reader(read))
    assert raw == job.RawStyle(STYLE) and read == [style]  # no mask, the job's strength


def test_regions_plan_which_styles_go_and_whether_the_selection_limits(tmp_path: Path) -> None:
    one, two, three = _files(tmp_path, "one.png", "two.png", "three.png")
    sky = job.StyleChoice(2, two, 70.0, job.SELECTION)
    plan = job.plan_styles(job.JobArgs(one, more_styles=(sky,)), has_selection=True)
    assert plan.regions and not plan.selection_limits  # the selection is style 2's region
    assert [s.number for s in plan.masked] == [2] and plan.paths == (one, two)
    # A channel for style 3: the selection is nobody's region, so it limits the result.
    trees = job.StyleChoice(3, three, 30.0, job.CHANNEL, "Trees")
    plan = job.plan_styles(job.JobArgs(one, more_styles=(trees,)), has_selection=True)
    assert plan.regions and plan.selection_limits and [s.number for s in plan.styles] == [1, 3]
    # One style on a region of its own is a region too (the photo where it does not reach).
    alone = job.JobArgs(one, region=job.CHANNEL, channel="Sky")
    assert job.plan_styles(alone, has_selection=False).regions
    both_whole = job.JobArgs(
        one, region=job.WHOLE, more_styles=(job.StyleChoice(2, two, 50.0, job.WHOLE),)
    )
    assert job.plan_styles(both_whole, False).regions  # mixed everywhere, a strength each


@pytest.mark.parametrize(
    ("args", "has_selection", "message"),
    [
        (
            job.JobArgs(""),
            False,
            'No style image was chosen: choose an image file as "Style image"',
        ),
        (
            job.JobArgs("{one}", more_styles=(job.StyleChoice(2, "", 50.0, job.CHANNEL, "Sky"),)),
            False,
            'Style 2 has a region, a channel (saved selection), but no image: choose its "Style '
            'image 2", or set its "Region 2" back to the current selection.',
        ),
        (
            job.JobArgs("{one}", more_styles=(job.StyleChoice(3, "{missing}"),)),
            True,
            'The style image {missing} does not exist: choose an image file as "Style image 3"',
        ),
        (
            job.JobArgs("{one}", more_styles=(job.StyleChoice(2, "{two}"),)),
            False,
            "Style 2's region is the current selection, but nothing is selected",
        ),
        (
            job.JobArgs("{one}", more_styles=(job.StyleChoice(2, "{two}", 50.0, job.CHANNEL),)),
            True,
            "no channel is chosen: choose one of the image's channels (a saved selection) as "
            '"Channel 2"',
        ),
        (
            job.JobArgs("{one}", more_styles=(job.StyleChoice(2, "{two}", 50.0, job.WHOLE),)),
            False,
            "Style 1's region, the rest of the image, is empty: style 2 covers the whole image",
        ),
        (job.JobArgs("{one}", region="sky"), False, "Style 1's region 'sky' is not one of"),
    ],
)
def test_style_rows_that_cannot_run_say_what_to_change(
    args: job.JobArgs, has_selection: bool, message: str, tmp_path: Path
) -> None:
    one, two = _files(tmp_path, "one.png", "two.png")
    names = {"one": one, "two": two, "missing": str(tmp_path / "missing.png")}

    def filled(text: str) -> str:
        return text.format(**names)

    rows = tuple(
        job.StyleChoice(s.number, filled(s.path), s.strength, s.region, s.channel)
        for s in args.more_styles
    )
    args = job.JobArgs(filled(args.style_path), region=args.region, more_styles=rows)
    with pytest.raises(job.PluginError) as info:
        job.plan_styles(args, has_selection)
    assert filled(message) in str(info.value)


def _mask(rows: list[str]) -> bytes:
    """A u8 mask from rows of '.' (0), '#' (255) and digits (their ninth of 255)."""
    values = {".": 0, "#": 255, **{str(d): round(255 * d / 9) for d in range(1, 9)}}
    return bytes(values[c] for row in rows for c in row)


def _u16(mask: bytes) -> bytes:
    from nst_client.layouts import convert_dtype

    return convert_dtype(mask, "u8", "u16")


def test_mask_pixels_bounds_crop_and_rest() -> None:
    left = _mask(["##..", "#4..", "....", "...."])
    assert masks.mask_bounds(left, 4, "u8") == (0, 0, 2, 2)
    assert masks.mask_bounds(bytes(16), 4, "u8") is None
    assert masks.crop_mask(left, 4, "u8", (1, 0, 2, 2)) == bytes([255, 0, 113, 0])
    left16 = _u16(left)
    assert masks.mask_bounds(left16, 4, "u16") == (0, 0, 2, 2)
    corner = _u16(_mask(["....", "...1"]))  # one low value in the last column
    assert masks.mask_bounds(corner, 4, "u16") == (3, 1, 1, 1)
    assert masks.crop_mask(left16, 4, "u16", (0, 1, 2, 1)) == _u16(bytes([255, 113]))
    # The rest: what the regions leave, so that a soft edge is shared and nothing is lost.
    assert masks.rest_of([left], "u8") == bytes(255 - v for v in left)
    right = _mask(["4.##", ".4##", "4...", "...."])  # overlaps left at (0, 0): never below 0
    rest = masks.rest_of([left, right], "u8")
    assert rest == bytes([0, 0, 0, 0, 0, 29, 0, 0, 142, 255, 255, 255, 255, 255, 255, 255])
    assert masks.rest_of([left16, _u16(right)], "u16") == _u16(rest)
    assert masks.mask_dtype("u8") == "u8" and masks.mask_dtype("f32") == "u16"
    assert masks.mask_format("u16") == "Y u16"  # linear: the selection's values as GIMP keeps them


def _two_regions(tmp_path: Path, first: str = job.REST) -> job.StylePlan:
    """Style 1 on FIRST, style 2 (strength 80) on the channel "Sky"."""
    one, two = _files(tmp_path, "one.png", "two.png")
    sky = job.StyleChoice(2, two, 80.0, job.CHANNEL, "Sky")
    return job.plan_styles(job.JobArgs(one, 40.0, region=first, more_styles=(sky,)), False)


def test_region_masks_over_the_layer_with_the_rest(tmp_path: Path) -> None:
    plan = _two_regions(tmp_path)
    sky = _mask(["####", "##3.", "....", "...."])
    regions = job.region_masks(plan, (4, 4), {2: sky}, "u8")
    assert regions.box == (0, 0, 4, 4)  # the rest reaches everywhere: the whole layer goes
    assert regions.masks == {2: sky, 1: masks.rest_of([sky], "u8")}
    # The job: each style with its mask (at the box's size) and its own strength.
    read: list[str] = []
    raw = job.raw_styles(plan, _reader(read), regions, "u8")
    assert [r.strength for r in raw] == [40.0, 80.0] and [r.weight for r in raw] == [1.0, 1.0]
    mask_desc = P.ImageDesc(width=4, height=4, channels=1, dtype="u8", frame=0)
    assert raw[0].mask == (mask_desc, masks.rest_of([sky], "u8")) and raw[1].mask == (
        mask_desc,
        sky,
    )
    assert read == list(plan.paths)
    # The whole image for style 1: no mask, style 2 mixed in on the sky.
    whole = job.region_masks(_two_regions(tmp_path, job.WHOLE), (4, 4), {2: sky}, "u8")
    assert whole.box == (0, 0, 4, 4) and whole.masks == {1: None, 2: sky}


def test_regions_alone_send_only_their_bounds(tmp_path: Path) -> None:
    one, two = _files(tmp_path, "one.png", "two.png")
    args = job.JobArgs(
        one,
        region=job.CHANNEL,
        channel="Trees",
        more_styles=(job.StyleChoice(2, two, 60.0, job.SELECTION),),
    )
    plan = job.plan_styles(args, has_selection=True)
    trees = _mask(["......", "......", ".##...", ".#2...", "......"])
    selected = _mask(["......", "......", "...1..", "......", "......"])
    regions = job.region_masks(plan, (6, 5), {1: trees, 2: selected}, "u8")
    # Where no region reaches the result is the photo: the box is the regions' union.
    assert regions.box == (1, 2, 3, 2)
    assert regions.masks[1] == _mask(["##.", "#2."]) and regions.masks[2] == _mask(["..1", "..."])


def test_regions_that_cover_nothing_are_named(tmp_path: Path) -> None:
    plan = _two_regions(tmp_path)
    with pytest.raises(job.PluginError) as info:
        job.region_masks(plan, (4, 2), {2: bytes(8)}, "u8")
    assert str(info.value).startswith(
        'Style 2\'s region, the channel "Sky", is empty: it covers none of the layer.'
    )
    with pytest.raises(job.PluginError) as info:
        job.region_masks(plan, (4, 2), {2: bytes([255] * 8)}, "u8")
    assert "Style 1's region, the rest of the image, is empty: the other styles' regions cover" in (
        str(info.value)
    )
    selected = job.StyleChoice(2, plan.paths[1], 50.0, job.SELECTION)
    limited = job.StylePlan((plan.styles[0], selected), True, True)
    with pytest.raises(job.PluginError, match="the current selection, is empty: it covers none"):
        job.region_masks(limited, (4, 2), {2: bytes(8)}, "u8")
    assert job.foreign_channel_message(plan.styles[1]) == (
        'The channel "Sky" chosen for style 2 is not in this image: choose one of this '
        'image\'s channels as "Channel 2".'
    )


def test_result_layer_name_of_several_styles() -> None:
    assert job.result_layer_name("Photo", "/a/sky.png", "/b/swirls.jpg") == "Photo (sky + swirls)"
    assert job.result_layer_name("Photo", "/a/sky.png", "/b/sky.png") == "Photo (sky)"


def test_a_job_with_regions_sends_masks_and_strengths(tmp_path: Path) -> None:
    """Through a real Client: each style's mask follows its image as a frame of its own."""
    plan = _two_regions(tmp_path)
    sky = _mask(["####", "##..", "...."])
    regions = job.region_masks(plan, (W, H), {2: sky}, "u8")
    welcome = {**_welcome(), "features": [P.MASKS]}
    daemon = ScriptedTransport({"hello": [welcome], "stylize": [{"type": "accepted"}, _result()]})
    done = _run_styles(daemon, lambda: job.raw_styles(plan, lambda path: STYLE, regions, "u8"))
    assert done.data == bytes(48)
    [stylize] = daemon.of_type("stylize")
    mask = {"width": W, "height": H, "channels": 1, "dtype": "u8"}
    assert stylize["styles"] == [
        {**STYLE[0], "frame": 2, "weight": 1.0, "mask": {**mask, "frame": 3}, "strength": 40.0},
        {**STYLE[0], "frame": 4, "weight": 1.0, "mask": {**mask, "frame": 5}, "strength": 80.0},
    ]
    assert daemon.frames[daemon.sent.index(stylize)] == 5


def test_an_engine_without_regions_refuses_them_before_sending(tmp_path: Path) -> None:
    plan = _two_regions(tmp_path)
    regions = job.region_masks(plan, (W, H), {2: _mask(["#...", "....", "...."])}, "u8")
    daemon = ScriptedTransport({"hello": [_welcome("0.0.9")], "stylize": [_result()]})
    with pytest.raises(job.PluginError, match=r"cannot style regions .*nst install-plugin gimp"):
        _run_styles(daemon, lambda: job.raw_styles(plan, lambda path: STYLE, regions, "u8"))
    assert daemon.of_type("stylize") == []


def _run_styles(daemon: ScriptedTransport, styles: Callable[[], list[job.RawStyle]]) -> Any:
    def connect(settings: Settings, name: str) -> Client:
        return Client(settings.endpoint, transport=daemon, timeout_s=settings.timeout_s)

    params = job.build_params(job.JobArgs("", iterations=20, size=64), (64, 64))
    return job.run_styles(
        SETTINGS,
        CONTENT,
        styles,
        params,
        connect_fn=connect,
        ensure_fn=Launcher(),
        probe_fn=lambda settings: launcher.not_answering(settings, "gone"),
    )
