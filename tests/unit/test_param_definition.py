"""The one parameter definition (nst_client.params) reaches every client: the CLI's options,
the GIMP procedure's arguments, the daemon's validation, the planner's presets, and the
editors' one mapping from controls to a job. A client that drifts from it fails here (the
Krita docker's controls: tests/unit/test_krita_docker.py)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from nst_app import cli, options
from nst_client import params as P
from nst_client import strength
from nst_core import plan

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "gimp" / "plug-in-nst-stylize"
sys.path.insert(0, str(PLUGIN_DIR))
import nst_gimp_job as gimp  # noqa: E402


def test_every_parameter_is_defined_once_with_its_spec() -> None:
    fields = dataclasses.fields(P.StyleParams)
    assert [f.name for f in fields] == list(P.SPECS) == list(P.PARAM_NAMES)
    for f in fields:
        spec = P.SPECS[f.name]
        assert spec.help, f.name
        assert spec.kind in ("int", "float", "seconds", "bool", "choice", "size", "layer", "layers")
        default = P.DEFAULTS[f.name]
        if default is not None and f.name != "style_layers":
            assert P.check_value(f.name, default) == default, f.name  # in its own range
    assert P.make_params({}) == P.StyleParams()


def test_the_planners_presets_are_the_definitions() -> None:
    assert tuple(plan.PRESETS) == P.QUALITY_PRESETS
    assert P.DEFAULT_QUALITY in P.QUALITY_PRESETS


def _option(parser: argparse.ArgumentParser, dest: str) -> argparse.Action:
    (action,) = [a for a in parser._actions if a.dest == dest]
    return action


@pytest.mark.parametrize("command", ["stylize", "demo"])
def test_the_cli_options_are_the_definition(command: str) -> None:
    parser = cli.build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    sub = commands.choices[command]
    for name, spec in P.SPECS.items():
        flag = options.option_flag(name)
        if flag is None:
            assert not [a for a in sub._actions if a.dest == name], name
            continue
        action = _option(sub, name)
        assert flag in action.option_strings, name
        assert action.help is not None, name
        assert action.help.startswith(spec.option_help or spec.help), name
        if spec.kind == "bool" and P.DEFAULTS[name]:
            assert spec.option_help, f"{name}: a switch that turns it off needs its own words"
        if spec.kind == "bool":
            assert action.default is P.DEFAULTS[name], name
            assert action.const is (not P.DEFAULTS[name]), name
        else:
            assert action.default == P.DEFAULTS[name], name
            if spec.choices and not spec.metavar:
                assert action.metavar == "|".join(spec.choices), name
    # Parsed with no options: exactly the definition's defaults.
    argv = ["stylize", "c.png", "s.png", "-o", "o.png"] if command == "stylize" else ["demo"]
    args = parser.parse_args(argv)
    assert options.params_from_args(args) == P.StyleParams()


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--strength", "101"], "strength: must be <= 100.0"),
        (["--quality", "best"], "quality: must be one of draft, normal, final"),
    ],
)
def test_a_cli_value_out_of_range_is_refused_with_the_definitions_words(
    option: list[str], words: str
) -> None:
    args = cli.build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", *option])
    with pytest.raises(P.ParamError, match=words):
        options.params_from_args(args)


def test_the_gimp_arguments_are_the_definition() -> None:
    spec = P.SPECS
    assert gimp.STRENGTH == (spec["strength"].minimum, spec["strength"].maximum, strength.DEFAULT)
    assert gimp.TIME_LIMIT == (0, int(P.MAX_TIME_BUDGET_S), 0)
    assert gimp.SIZE == (0, int(spec["size"].maximum or 0), 0)
    assert gimp.ITERATIONS == (0, int(spec["iterations"].maximum or 0), 0)
    assert gimp.SEED == (0, gimp.GINT_MAX, 0)
    for name in ("strength", "quality", "time_budget", "size", "preserve_colors", "seed"):
        assert gimp.param_label(name) == spec[name].label
        assert gimp.param_help(name).lower() == spec[name].help.lower()
    assert gimp.QUALITY_HELP == P.quality_help()


def test_the_daemon_validates_with_the_definition() -> None:
    from nst_client import protocol
    from nst_daemon.requests import parse_params

    assert parse_params({"strength": 30}, "cpu").strength == 30
    with pytest.raises(protocol.ProtocolError, match="params.strength: must be <= 100.0"):
        parse_params({"strength": 130}, "cpu")
    with pytest.raises(protocol.ProtocolError, match="params.quality: must be one of draft"):
        parse_params({"quality": "best"}, "cpu")


# --- the editors' one mapping ---------------------------------------------------------------


def _editor(**given: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "quality": "normal",
        "strength": strength.DEFAULT,
        "preserve_colors": False,
        "area": (64, 48),
    }
    return P.editor_params(**{**values, **given})


def test_editor_params_are_engine_params() -> None:
    """A preset, no size, no iterations: the planner decides; the engine accepts it all."""
    for quality in P.QUALITY_PRESETS:
        for slider in (strength.MINIMUM, strength.DEFAULT, strength.MAXIMUM):
            params = _editor(quality=quality, strength=slider, preserve_colors=True)
            assert params == {"quality": quality, "strength": slider, "preserve_colors": True}
            made = P.make_params(params)
            assert (made.quality, made.iterations, made.size, made.time_budget) == (
                quality,
                None,
                None,
                None,
            )
            assert made.beta == strength.style_weight(slider)


def test_an_editors_time_limit_is_the_budget() -> None:
    params = _editor(quality="final", time_limit_s=90.0)
    assert params["time_budget"] == 90.0 and "iterations" not in params
    assert P.make_params(params).time_budget == 90.0
    assert "time_budget" not in _editor(time_limit_s=P.NO_TIME_LIMIT)
    # Brought within the engine's range, never refused.
    assert _editor(time_limit_s=2)["time_budget"] == P.MIN_TIME_BUDGET_S
    assert _editor(time_limit_s=1e9)["time_budget"] == P.MAX_TIME_BUDGET_S


def test_an_editors_working_size_is_sent_only_when_chosen() -> None:
    assert "size" not in _editor(size=P.AUTO_SIZE)
    assert _editor(size=512)["size"] == 64  # never above the area's own long side
    assert _editor(size=32)["size"] == 32
    small = _editor(size=4, area=(800, 600))
    assert small["size"] == P.MIN_SIZE
    P.make_params(small)
    assert _editor(iterations=40)["iterations"] == 40 and "iterations" not in _editor()
    assert _editor(seed=7)["seed"] == 7 and "seed" not in _editor()
