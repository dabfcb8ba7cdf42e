"""`nst daemon start|stop|status` and `nst status`, and how a command reaches the daemon.

The settings of a command come from nst_client.settings.load (its options over the NST_*
variables over the defaults, the local engine's command among them), the one precedence the
plug-ins use too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any

from nst_client import launcher
from nst_client.client import DaemonError, DaemonUnavailable, connect
from nst_client.engine_words import number, plain, precision_words
from nst_client.settings import Settings, SettingsError, load
from nst_daemon import launch_command

from .options import UserError

#: How `nst` names itself to the daemon.
CLIENT_NAME = "nst-cli"


def daemon_settings(
    args: argparse.Namespace,
    endpoint: str | None = None,
    env: Mapping[str, str] | None = None,
    **given: object,
) -> Settings:
    """How to reach the daemon on this run: the options given (endpoint: --daemon's or
    --endpoint's value, blank or None = not given), over the NST_* variables (so a user sets
    the endpoint and CURVE keys once), over the defaults (this installation's nst-daemon
    for the engine on demand); key files are checked here."""
    try:
        return load(
            None,
            env,
            overrides={
                "endpoint": endpoint,
                "curve_server_key": getattr(args, "curve_server_key", None),
                "curve_client_cert": getattr(args, "curve_client_cert", None),
                **given,
            },
            defaults=Settings(daemon=launch_command()),
        )
    except SettingsError as exc:
        raise UserError(str(exc)) from None


def starting_printer() -> Callable[[launcher.EngineState], None]:
    """Prints each new line of the engine's start-up on stderr (once each)."""
    shown: list[str] = []

    def on_state(state: launcher.EngineState) -> None:
        if state.phase == launcher.STARTING and state.summary not in shown:
            shown.append(state.summary)
            print(state.summary, file=sys.stderr, flush=True)

    return on_state


def cmd_daemon(args: argparse.Namespace) -> int:
    """`nst daemon start|stop|status`: exit status 0, or 3 when status finds none running."""
    settings = daemon_settings(args, args.endpoint)
    if args.action == "status":
        state = launcher.probe(settings, timeout_s=settings.timeout_s)
        local_stop = state.phase == launcher.STOPPED
        print(
            "Style engine not running: start it with `nst daemon start`"
            if local_stop
            else state.summary
        )
        print(state.details)
        if state.usable():
            line = _precision_line(_engine_status(settings))
            if line:
                print(line)
        return 3 if state.down() else 0
    if args.action == "stop":
        try:
            stopped = launcher.stop(settings)
        except DaemonError as exc:
            raise UserError(exc.message) from None
        except DaemonUnavailable as exc:  # what listens is not this user's engine
            raise UserError(str(exc)) from None
        print(f"stopped the engine at {settings.endpoint}" if stopped else "no engine was running")
        return 0
    settings.daemon = launch_command() + (["--device", args.device] if args.device else [])
    settings.idle_exit_s = args.idle_exit
    settings.start_on_demand = True
    try:
        already = not launcher.probe(settings).down()
        state = launcher.ensure_running(settings, starting_printer())
    except DaemonUnavailable as exc:
        raise UserError(str(exc)) from None
    print(("already running: " if already else "") + state.summary)
    print(state.details)
    line = _precision_line(_engine_status(settings))
    if line:
        print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    settings = daemon_settings(args, args.endpoint, timeout_s=args.timeout)
    try:
        with connect(settings, CLIENT_NAME) as client:
            status = client.status()
    except (DaemonUnavailable, DaemonError) as exc:
        raise UserError(str(exc)) from None
    # Every figure as the engine sent it, made plain: no escape code of its reaches the terminal.
    for key, value in status.items():
        if key == "profile":
            print(_precision_line(status) or "precision: not measured yet (the engine is starting)")
            profile: dict[str, Any] = value if isinstance(value, dict) else {}
            speed = number(profile.get("s_per_mpix"), 0)
            if speed is not None:
                layout = ", channels_last" if profile.get("channels_last") is True else ""
                print(f"speed: {speed:.3g} s per megapixel pass{layout}")
        elif key not in ("type", "id"):
            print(f"{plain(key, 40)}: {plain(value, 2000)}")
    return 0


def _precision_line(status: Any) -> str | None:
    words = precision_words(status.get("profile")) if isinstance(status, dict) else None
    return f"precision: {words}" if words else None


def _engine_status(settings: Settings) -> dict[str, Any] | None:
    """The engine's status reply, or None when it does not give one now."""
    try:
        with connect(settings, CLIENT_NAME) as client:
            return dict(client.status())
    except (DaemonUnavailable, DaemonError, OSError):
        return None
