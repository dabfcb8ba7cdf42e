"""Replies crafted by a daemon that is not ours (or is broken): the clients' parsing never
raises, and whatever text the engine sent is made plain before a terminal or a dialog shows
it."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nst_client import launcher, strength
from nst_client.engine_words import number, plain, precision_words
from nst_client.settings import Settings

SETTINGS = Settings(endpoint="tcp://127.0.0.1:1")
ESCAPE = "\x1b[2J\x1b]0;owned\x07\x1b[31mred\x1b[0m\r\nnext\x00\x9b"

anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FIELDS = ("state", "startup", "device", "version", "pid", "idle_exit_s", "running", "queue")


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(st.sampled_from([*FIELDS, "profile"]), anything))
def test_any_status_reply_gives_a_state(status: dict[str, Any]) -> None:
    state = launcher.state_from_status(status, SETTINGS)
    assert state.phase in (launcher.STARTING, launcher.READY, launcher.BUSY)
    assert state.fraction is None or 0.0 <= state.fraction <= 1.0
    for text in (state.summary, state.details, state.device, state.version):
        assert text.isprintable(), text


@pytest.mark.parametrize(
    "status",
    [
        {"state": "starting", "startup": "x"},
        {"state": "starting", "startup": {"fraction": math.nan, "step": 5}},
        {"state": "starting", "startup": {"fraction": "half"}},
        {"state": "ready", "queue": 5},
        {"state": "ready", "pid": "1; rm -rf", "idle_exit_s": math.inf},
        {"state": "ready", "profile": {"precision": 7, "measured": "x"}},
        {"state": "ready", "profile": {"precision": "bf16", "measured": {"a": math.nan}}},
    ],
)
def test_the_replies_that_crashed_the_clients(status: dict[str, Any]) -> None:
    state = launcher.state_from_status(status, SETTINGS)
    assert state.fraction is None
    assert "nan" not in state.summary.lower()


def test_not_a_map_is_unreachable() -> None:
    state = launcher.state_from_status(["not", "a", "map"], SETTINGS)  # type: ignore[arg-type]
    assert state.phase == launcher.UNREACHABLE


def test_the_engines_words_are_made_plain() -> None:
    status = {"state": "starting", "startup": {"step": ESCAPE, "fraction": 0.5}}
    state = launcher.state_from_status({**status, "device": ESCAPE}, SETTINGS)
    assert "\x1b" not in state.summary + state.details and "\x00" not in state.details
    assert "red" in state.summary and "next" in state.summary
    assert plain(ESCAPE) == "red  next"
    assert plain("x" * 500).endswith("…") and len(plain("x" * 500)) == 200
    profile = {"precision": f"bf16{ESCAPE}", "measured": {ESCAPE: 1.0}, "size": 512}
    words = precision_words(profile)
    assert words is not None and words.isprintable()


def test_numbers_an_engine_sent() -> None:
    assert number(math.nan) is None and number(math.inf) is None and number(True) is None
    assert number("3") is None and number(2, 0, 1) is None and number(0.5, 0, 1) == 0.5


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "70", True, None])
def test_a_slider_never_starts_at_a_value_it_cannot_take(value: Any) -> None:
    assert strength.default_strength({"defaults": {"strength": value}}) == strength.DEFAULT
    assert strength.default_strength({"defaults": "x"}) == strength.DEFAULT
    assert strength.default_strength({"defaults": {"strength": 1e9}}) == strength.MAXIMUM


def test_nst_status_prints_plain_words(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nst_app import cli, engine_commands

    class Engine:
        def __enter__(self) -> Engine:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def status(self) -> dict[str, object]:
            return {
                "type": "status",
                "state": ESCAPE,
                ESCAPE: ESCAPE,
                "profile": {"precision": ESCAPE, "s_per_mpix": math.nan},
            }

    monkeypatch.setattr(engine_commands, "connect", lambda settings, name: Engine())
    assert cli.main(["status", "--endpoint", "tcp://127.0.0.1:1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x00" not in out
    assert "speed:" not in out  # NaN is no speed
    assert out.count("\n") == 3  # state, the crafted key, precision: one line each
