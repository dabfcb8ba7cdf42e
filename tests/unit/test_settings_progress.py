"""The client package's settings loader and progress formula: each used by all clients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nst_client import __version__
from nst_client.client import version_note
from nst_client.progress import Progress, duration_words, format_duration
from nst_client.protocol import DEFAULT_ENDPOINT
from nst_client.settings import Settings, SettingsError, load


def test_settings_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "nst_config.json"
    Settings("tcp://127.0.0.1:9", "zmq", "/opt/nst/python", 2.0).save(path)
    s = load(path, env={})
    assert (s.endpoint, s.transport, s.python, s.timeout_s) == (
        "tcp://127.0.0.1:9",
        "zmq",
        "/opt/nst/python",
        2.0,
    )
    s = load(path, env={"NST_TRANSPORT": "BRIDGE", "NST_ENDPOINT": "ipc:///tmp/x"})
    assert (s.transport, s.endpoint, s.resolved_transport()) == ("bridge", "ipc:///tmp/x", "bridge")
    assert load(tmp_path / "missing.json", env={}) == Settings()
    given = load(path, {"NST_ENDPOINT": "ipc:///tmp/x"}, overrides={"endpoint": " tcp://h:1 "})
    assert given.endpoint == "tcp://h:1"  # one given for this run wins over file and env
    assert load(path, {}, overrides={"endpoint": "  "}).endpoint == "tcp://127.0.0.1:9"
    with pytest.raises(SettingsError, match="the endpoint given: expected tcp://HOST:PORT"):
        load(path, {}, overrides={"endpoint": "localhost:5757"})
    assert Settings().endpoint == DEFAULT_ENDPOINT and Settings().bridge_python()


@pytest.mark.parametrize(
    "content,env,word",
    [
        ("{not json", {}, "nst install-plugin"),
        ("[1, 2]", {}, "JSON object"),
        ('{"transport": "pigeon"}', {}, "transport in nst_config.json"),
        ("{}", {"NST_TRANSPORT": "pigeon"}, "NST_TRANSPORT"),
        ('{"timeout_s": "soon"}', {}, "timeout_s"),
        ('{"timeout_s": -1}', {}, "positive"),
        ('{"endpoint": 5757}', {}, "endpoint"),
    ],
)
def test_settings_errors_name_the_setting(
    tmp_path: Path, content: str, env: dict[str, str], word: str
) -> None:
    path = tmp_path / "nst_config.json"
    path.write_text(content)
    with pytest.raises(SettingsError, match=word):
        load(path, env=env)


def test_progress_from_a_message() -> None:
    header = {
        "type": "progress",
        "iteration": 30,
        "iterations": 120,
        "scale": 2,
        "scales": 3,
        "loss": {"total": 3.0, "content": 1.0, "style": 2.0},
        "elapsed_s": 25.0,
        "eta_s": 75.0,
        "preview": {"width": 1, "height": 1, "channels": 3, "dtype": "u8", "frame": 1},
    }
    p = Progress.from_message(header, [b"abc"])
    # Time, not steps: a quarter of the steps, a quarter of the time here by construction.
    assert p.fraction == pytest.approx(0.25) and p.percent == 25
    assert p.text() == "25% · 1:15 left · scale 2/3"
    assert p.preview == (header["preview"], b"abc")
    assert (p.loss_total, p.loss_content, p.loss_style) == (3.0, 1.0, 2.0)


def test_progress_follows_time_not_cheap_coarse_steps() -> None:
    # 2/3 of the steps done in the cheap scales, but 4/5 of the time is still ahead.
    p = Progress(200, 300, 3, 3, 0, 0, 0, elapsed_s=10.0, eta_s=40.0)
    assert p.fraction == pytest.approx(0.2)


def test_progress_never_raises_on_odd_messages() -> None:
    p = Progress.from_message({"iteration": "x", "iterations": float("nan"), "loss": 3})
    assert (p.iteration, p.iterations, p.fraction, p.text()) == (0, 0, 0.0, "0%")
    p = Progress.from_message({"iteration": 5, "iterations": 10, "elapsed_s": 61, "eta_s": None})
    assert p.fraction == 0.5 and p.text() == "50% · 1:01 elapsed"
    assert Progress.from_message({"preview": {"frame": 3}}, [b""]).preview is None


def test_durations() -> None:
    assert [format_duration(s) for s in (0, 42.4, 725, 3723)] == [
        "0:00",
        "0:42",
        "12:05",
        "1:02:03",
    ]


def test_version_note_only_on_a_mismatch() -> None:
    assert version_note({"version": __version__}, "nst install-plugin gimp") is None
    assert version_note({}, "x") is None
    note = version_note({"version": "99.0"}, "nst install-plugin gimp")
    assert note is not None and "reinstall" in note and "nst install-plugin gimp" in note
    assert json.dumps(note)  # plain text for any UI


def test_duration_words() -> None:
    assert [duration_words(s) for s in (1, 4, 90, 60, 1800, 3600, 7200)] == [
        "1 second",
        "4 seconds",
        "90 seconds",
        "1 minute",
        "30 minutes",
        "1 hour",
        "2 hours",
    ]
