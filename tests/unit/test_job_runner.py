"""The clients' one job path (nst_client.job): its events, its words for every failure, its
idle timeout, and the one settings precedence every entry point reads the engine's address
with (NST_ENDPOINT included). A scripted transport stands in for the daemon."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from scripted_transport import Reply, ScriptedTransport

import nst_client
from nst_client import job, launcher
from nst_client import protocol as P
from nst_client.client import Client, DaemonUnavailable, JobCancelled, RawStyle
from nst_client.launcher import EngineState
from nst_client.settings import CONFIG_NAME, Settings

W, H = 4, 3
CONTENT = (P.ImageDesc(width=W, height=H, channels=4, dtype="u8", frame=0), bytes(48))
STYLE = (P.ImageDesc(width=2, height=2, channels=3, dtype="u8", frame=0), bytes(12))
SETTINGS = Settings(endpoint="tcp://127.0.0.1:1", timeout_s=0.05)
REMOTE = Settings(endpoint="tcp://192.0.2.7:5757", timeout_s=0.05)
READY = EngineState(launcher.READY, "Style engine ready (CPU)", "", device="cpu")
STARTING = EngineState(launcher.STARTING, "Starting the style engine…", "", 0.5)
DOWN = EngineState(launcher.UNREACHABLE, "Style engine unreachable", "")
WORDS = job.ClientWords(
    "test-client",
    "nst install-plugin test",
    {"endpoint": '"Engine address" in the dialog'},
    "the dialog's engine settings",
)


def _welcome(version: str = nst_client.__version__) -> dict[str, Any]:
    return {"type": "welcome", "protocol": 1, "version": version, "defaults": {}}


def _result(width: int = W, height: int = H) -> Reply:
    image = {"width": width, "height": height, "channels": 4, "dtype": "u8", "frame": 1}
    return {"type": "result", "image": image, "stats": {}}, [bytes(width * height * 4)]


PROGRESS: Reply = (
    {"type": "progress", "iteration": 5, "iterations": 10, "scale": 1, "scales": 1},
    [],
)


def _run(
    daemon: ScriptedTransport,
    settings: Settings = SETTINGS,
    states: tuple[EngineState, ...] = (),
    failure: Exception | None = None,
    words: job.ClientWords = WORDS,
    styles: job.Styles = ((STYLE, 1.0),),
    **kwargs: Any,
) -> tuple[list[job.JobEvent], Any]:
    """run_job against the scripted daemon; (events, result or the exception raised)."""
    events: list[job.JobEvent] = []

    def ensure(settings: Settings, on_state: Any = None, should_cancel: Any = None) -> Any:
        for state in states:
            on_state(state)
        if failure is not None:
            raise failure
        on_state(READY)
        return READY

    def connect(settings: Settings, name: str) -> Client:
        return Client(settings.endpoint, transport=daemon, timeout_s=0.05, client_name=name)

    try:
        outcome: Any = job.run_job(
            settings,
            words,
            CONTENT,
            styles,
            {"quality": "draft"},
            on_event=events.append,
            connect_fn=connect,
            ensure_fn=ensure,
            probe_fn=lambda settings: DOWN,
            **kwargs,
        )
    except (job.JobFailed, JobCancelled) as exc:
        outcome = exc
    return events, outcome


def _kinds(events: list[job.JobEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_a_job_reports_the_engine_welcome_progress_then_the_result() -> None:
    daemon = ScriptedTransport({"hello": [_welcome()], "stylize": [PROGRESS, _result()]})
    events, result = _run(daemon, states=(STARTING,))
    assert _kinds(events) == [
        "EngineChanged",
        "EngineChanged",
        "Welcomed",
        "Progressed",
        "Finished",
    ]
    assert [e.state for e in events if isinstance(e, job.EngineChanged)] == [STARTING, READY]
    welcomed = events[2]
    assert isinstance(welcomed, job.Welcomed) and welcomed.note is None
    progressed = events[3]
    assert isinstance(progressed, job.Progressed) and progressed.progress.fraction == 0.5
    assert isinstance(events[-1], job.Finished) and events[-1].result is result
    assert result.image["width"] == W
    [sent] = daemon.of_type("stylize")
    assert sent["params"] == {"quality": "draft"} and daemon.closed
    [hello] = daemon.of_type("hello")
    assert hello["client"] == "test-client"


MASK = (P.ImageDesc(width=W, height=H, channels=1, dtype="u8", frame=0), bytes(range(12)))


def test_a_region_goes_with_its_mask_and_strength_after_its_style() -> None:
    welcome = {**_welcome(), "features": [P.MASKS]}
    daemon = ScriptedTransport({"hello": [welcome], "stylize": [_result()]})
    styles: job.Styles = [(STYLE, 1.0), RawStyle(STYLE, 2.0, MASK, 70.0)]
    events, result = _run(daemon, styles=styles)
    assert isinstance(events[-1], job.Finished)
    [sent] = daemon.of_type("stylize")
    first, region = sent["styles"]
    assert "mask" not in first and "strength" not in first
    assert (first["frame"], region["frame"], region["mask"]["frame"]) == (2, 3, 4)
    assert region["weight"] == 2.0 and region["strength"] == 70.0
    assert region["mask"]["channels"] == 1 and daemon.frames[-1] == 4


def test_regions_are_refused_before_sending_to_an_engine_without_masks() -> None:
    daemon = ScriptedTransport({"hello": [_welcome("0.9.0")], "stylize": [_result()]})
    events, failed = _run(daemon, styles=[RawStyle(STYLE, 1.0, MASK)])
    assert isinstance(failed, job.JobFailed) and failed.code == P.UNSUPPORTED_PROTOCOL
    assert "cannot style regions" in failed.message and "0.9.0" in failed.message
    assert daemon.of_type("stylize") == []


def test_another_version_is_noted_and_the_job_still_runs() -> None:
    daemon = ScriptedTransport({"hello": [_welcome("9.9.9")], "stylize": [_result()]})
    events, result = _run(daemon)
    [welcomed] = [e for e in events if isinstance(e, job.Welcomed)]
    assert welcomed.note is not None and "`nst install-plugin test`" in welcomed.note
    assert isinstance(events[-1], job.Finished)


@pytest.mark.parametrize(
    ("script", "code", "message"),
    [
        (
            {"stylize": [{"type": "error", "code": "too_large", "message": "too big"}]},
            "too_large",
            "The style engine refused the job (too_large): too big",
        ),
        (
            {"stylize": [{"type": "error", "code": "optimisation_failed", "message": "no"}]},
            "optimisation_failed",
            "The optimisation failed: no",
        ),
        (
            {"stylize": [_result(W + 1, H)]},
            job.MALFORMED,
            f"The engine returned {W + 1}x{H} pixels for a {W}x{H} layer.",
        ),
    ],
)
def test_every_failure_has_its_words_and_code(
    script: dict[str, Any], code: str, message: str
) -> None:
    daemon = ScriptedTransport({"hello": [_welcome()], **script})
    events, failed = _run(daemon)
    assert isinstance(failed, job.JobFailed)
    assert (failed.code, failed.message) == (code, message)
    assert isinstance(events[-1], job.Failed) and events[-1].message == message
    assert daemon.closed


def test_no_engine_says_which_setting_changes_it() -> None:
    gone = DaemonUnavailable("no style engine answered at tcp://192.0.2.7:5757 within 1 s")
    events, failed = _run(ScriptedTransport({}), REMOTE, failure=gone)
    assert isinstance(failed, job.JobFailed) and failed.code == job.UNAVAILABLE
    assert failed.message.startswith("No style engine answered at tcp://192.0.2.7:5757")
    assert "is on another computer" in failed.message
    assert '"Engine address" in the dialog' in failed.message
    assert "curve_server_key in the dialog's engine settings" in failed.message
    # The engine's state is said again before the failure, so no stale "ready" stays.
    assert _kinds(events)[-2:] == ["EngineChanged", "Failed"]
    assert isinstance(events[-2], job.EngineChanged) and events[-2].state == DOWN
    off = Settings(endpoint="tcp://127.0.0.1:1", start_on_demand=False)
    _, failed = _run(ScriptedTransport({}), off, failure=gone)
    assert "starting the engine when needed is turned off: turn it on" in failed.message
    gimp_like = job.ClientWords("c", "r", {"start_on_demand": '"Start" in the dialog'})
    _, failed = _run(ScriptedTransport({}), off, failure=gone, words=gimp_like)
    assert 'turned off ("Start" in the dialog is off): turn it on' in failed.message


def test_an_engine_lost_mid_job_stopped_answering() -> None:
    daemon = ScriptedTransport({})  # the engine was ready; then nothing answers hello
    _, failed = _run(daemon, SETTINGS)
    assert isinstance(failed, job.JobFailed)
    assert failed.message.startswith("The style engine stopped answering: ")


def test_cancel_before_the_job_sends_nothing_and_during_it_cancels() -> None:
    daemon = ScriptedTransport({"hello": [_welcome()]})
    events, outcome = _run(daemon, should_cancel=lambda: True)
    assert isinstance(outcome, JobCancelled) and isinstance(events[-1], job.Cancelled)
    assert daemon.of_type("stylize") == []
    daemon = ScriptedTransport(
        {
            "hello": [_welcome()],
            "stylize": [PROGRESS],
            "cancel": [{"type": "cancelled"}],
        }
    )
    events, outcome = _run(daemon, should_cancel=lambda: bool(daemon.of_type("stylize")))
    assert isinstance(outcome, JobCancelled)
    [cancel] = daemon.of_type("cancel")
    assert cancel["job"] == daemon.of_type("stylize")[0]["id"]


def test_styles_are_read_only_once_the_engine_answered() -> None:
    reads: list[int] = []

    def read() -> list[tuple[Any, float]]:
        reads.append(1)
        return [(STYLE, 1.0)]

    daemon = ScriptedTransport({"hello": [_welcome()], "stylize": [_result()]})
    events: list[job.JobEvent] = []
    job.run_job(
        SETTINGS,
        WORDS,
        CONTENT,
        read,
        {},
        on_event=events.append,
        connect_fn=lambda s, n: Client(s.endpoint, transport=daemon, client_name=n),
        ensure_fn=lambda settings, on_state, should_cancel: READY,
    )
    assert reads == [1]
    gone = DaemonUnavailable("nothing")
    with pytest.raises(job.JobFailed):
        job.run_job(
            SETTINGS,
            WORDS,
            CONTENT,
            read,
            {},
            ensure_fn=lambda settings, on_state, should_cancel: (_ for _ in ()).throw(gone),
            probe_fn=lambda settings: DOWN,
        )
    assert reads == [1]


def test_one_idle_timeout_policy() -> None:
    assert job.idle_timeout_s(Settings(timeout_s=5.0)) == job.IDLE_TIMEOUT_S == 60.0
    assert job.idle_timeout_s(Settings(timeout_s=30.0)) == 180.0


# --- the engine's address: one precedence at every entry point ------------------------------

ENV = {"NST_ENDPOINT": "tcp://127.0.0.1:6001"}


def test_the_cli_honours_nst_endpoint_for_every_command() -> None:
    from nst_app import cli
    from nst_app.engine_commands import daemon_settings

    parser = cli.build_parser()
    for argv, endpoint_of in (
        (["stylize", "c.png", "s.png", "-o", "o.png", "--daemon"], "daemon"),
        (["status"], "endpoint"),
        (["daemon", "status"], "endpoint"),
        (["daemon", "stop"], "endpoint"),
    ):
        args = parser.parse_args(argv)
        given = getattr(args, endpoint_of)
        assert daemon_settings(args, given, ENV).endpoint == ENV["NST_ENDPOINT"], argv
        assert daemon_settings(args, given, {}).endpoint == P.DEFAULT_ENDPOINT, argv
        explicit = parser.parse_args(
            [*argv, "tcp://127.0.0.1:7"]
            if endpoint_of == "daemon"
            else [*argv, "--endpoint", "tcp://127.0.0.1:7"]
        )
        chosen = daemon_settings(explicit, getattr(explicit, endpoint_of), ENV)
        assert chosen.endpoint == "tcp://127.0.0.1:7", argv  # explicit > environment
    args = parser.parse_args(["stylize", "c.png", "s.png", "-o", "o.png"])
    assert args.daemon is None  # a local run


def test_the_plugins_honour_nst_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """File < environment < the editor's own setting, for GIMP and Krita alike."""
    Settings(endpoint="tcp://127.0.0.1:5000").save(tmp_path / CONFIG_NAME)
    gimp_dir = Path(__file__).resolve().parents[2] / "plugins" / "gimp" / "plug-in-nst-stylize"
    monkeypatch.syspath_prepend(str(gimp_dir))
    import nst_gimp_job as gimp

    assert gimp.load_settings(tmp_path, {}, {}).endpoint == "tcp://127.0.0.1:5000"
    assert gimp.load_settings(tmp_path, {}, ENV).endpoint == ENV["NST_ENDPOINT"]
    dialog = {"endpoint": "tcp://127.0.0.1:7"}
    assert gimp.load_settings(tmp_path, dialog, ENV).endpoint == "tcp://127.0.0.1:7"

    import krita_standin

    plugin = krita_standin.load_plugin()
    monkeypatch.setattr(plugin.link, "CONFIG_PATH", tmp_path / CONFIG_NAME)
    monkeypatch.setenv("NST_ENDPOINT", ENV["NST_ENDPOINT"])
    assert plugin.link.load_settings({}).endpoint == ENV["NST_ENDPOINT"]
    assert plugin.link.load_settings(dialog).endpoint == "tcp://127.0.0.1:7"
    monkeypatch.delenv("NST_ENDPOINT")
    assert plugin.link.load_settings({}).endpoint == "tcp://127.0.0.1:5000"


def test_settings_precedence_for_every_setting(tmp_path: Path) -> None:
    from nst_client.settings import VARIABLES, load

    path = tmp_path / CONFIG_NAME
    Settings(endpoint="tcp://h:1", timeout_s=2.0, idle_exit_s=60.0).save(path)
    base = Settings(daemon=["nst-daemon"], timeout_s=9.0)
    assert load(None, {}, defaults=base).daemon == ["nst-daemon"]  # the default
    assert load(path, {}, defaults=base).timeout_s == 2.0  # file > default
    env = {"NST_TIMEOUT": "3", "NST_DAEMON": "other-daemon --x", "NST_IDLE_EXIT": "5"}
    loaded = load(path, env, defaults=base)
    assert (loaded.timeout_s, loaded.daemon, loaded.idle_exit_s) == (
        3.0,
        ["other-daemon", "--x"],
        5.0,
    )  # environment > file
    given = load(path, env, overrides={"timeout_s": 4, "idle_exit_s": 0}, defaults=base)
    assert (given.timeout_s, given.idle_exit_s) == (4.0, 0.0)  # given > environment
    assert set(VARIABLES) == {f for f in Settings.__dataclass_fields__}


def test_argparse_namespace_is_enough_for_daemon_settings() -> None:
    """Commands without key options still reach daemon_settings (no AttributeError)."""
    from nst_app.engine_commands import daemon_settings
    from nst_daemon import launch_command

    settings = daemon_settings(argparse.Namespace(), None, {})
    assert settings.endpoint == P.DEFAULT_ENDPOINT
    assert settings.daemon == launch_command()  # this installation's engine, by default
