"""The command line's job options, made from the one parameter definition (nst_client.params).

Every parameter with a CLI option gets it here: its flag (--NAME, or the Spec's own), its type,
choices, default and help; a new parameter in the definition is a new option with no change
here. What is the command's own (the model's weights, --save-every) is added beside them.
"""

from __future__ import annotations

import argparse
from typing import Any

from nst_client.params import DEFAULTS, PARAM_NAMES, SPECS, Spec, StyleParams, make_params
from nst_client.progress import parse_duration


class UserError(Exception):
    """An error to print as one line, exit status 2."""


def size_value(text: str) -> int | str:
    if text == "full":
        return "full"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of pixels or 'full', got {text!r}"
        ) from None


def seconds_value(text: str) -> float:
    seconds = parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(
            f"expected seconds or a duration like 90s, 2m or 1m30s, got {text!r}"
        )
    return seconds


def option_flag(name: str) -> str | None:
    """A parameter's CLI flag ('--tv-weight', '--raw-costs'), or None when it has none."""
    spec = SPECS[name]
    if spec.option == "":
        return None
    return spec.option or f"--{name.replace('_', '-')}"


#: The CLI's argument type per kind (bool and choice are argparse's own).
_TYPES: dict[str, Any] = {"int": int, "float": float, "seconds": seconds_value, "size": size_value}


def _help(spec: Spec, default: Any) -> str:
    text = spec.option_help or spec.help
    if spec.kind == "seconds":
        text += " (90, 90s, 2m, 1m30s)"
    if default is not None and spec.kind != "bool":
        text += " (default %(default)s)"
    return text


def add_param_options(parser: argparse.ArgumentParser) -> None:
    """An option for every parameter the definition gives one, then the run's own."""
    group = parser.add_argument_group("job parameters")
    for name in PARAM_NAMES:
        flag = option_flag(name)
        if flag is None:
            continue
        spec, default = SPECS[name], DEFAULTS[name]
        if spec.kind == "bool":
            action = "store_false" if default else "store_true"
            group.add_argument(flag, dest=name, action=action, help=_help(spec, default))
            continue
        # Choices are listed, not enforced by argparse: make_params refuses a wrong one in the
        # words every entry point uses ("--quality: must be one of draft, normal, final").
        group.add_argument(
            flag,
            dest=name,
            type=_TYPES.get(spec.kind, str),
            default=default,
            metavar=spec.metavar or ("|".join(spec.choices) if spec.choices else None),
            help=_help(spec, default),
        )
    parser.add_argument(
        "--weights",
        default="caffe",
        help="caffe (default, offline), torchvision, or a state-dict path",
    )
    parser.add_argument(
        "--allow-download",
        action="store_true",
        help="let --weights torchvision download once if not cached",
    )
    parser.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="also write the image every N iterations (OUT_iterNNNN.ext)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="at the end, print where the job's seconds went: start-up, reading, the model, "
        "measuring the device, style targets, each scale, the finish, writing",
    )


def params_from_args(args: argparse.Namespace) -> StyleParams:
    """The job's parameters from the options, validated (the CLI is where they enter)."""
    values = {name: getattr(args, name) for name in PARAM_NAMES if hasattr(args, name)}
    if values.get("iterations") is not None and values.get("time_budget") is not None:
        raise UserError(
            "--iterations fixes the work and --time-budget fits it to a time: give one of them"
        )
    return make_params(values)


def daemon_params(params: StyleParams) -> dict[str, Any]:
    """What a job sends the daemon: the params that differ from the definition's defaults (so
    an unsized job stays the daemon's planner's to size), never the device (the daemon's)."""
    return {k: v for k, v in params.to_dict().items() if k != "device" and v != DEFAULTS[k]}
