"""Editors installed with Flatpak: where their profile is, and whether their plug-ins may run
the product, which lives outside the sandbox.

A sandboxed GIMP or Krita cannot run the product's Python (the bridge) nor `nst-daemon`
itself. It can when it may talk to the org.freedesktop.Flatpak service: `flatpak-spawn --host
CMD` then runs CMD on the host, so the plug-in's settings put that in front of both commands
(Settings.host_command). The installer checks the permission with `flatpak info
--show-permissions APP` (the app's own permissions and the user's and the system's overrides)
and refuses, naming the command that grants it, when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

#: What runs a command outside the sandbox, from inside it.
HOST_COMMAND = ["flatpak-spawn", "--host"]
#: The D-Bus name an app must be allowed to talk to for flatpak-spawn --host.
SPAWN_SERVICE = "org.freedesktop.Flatpak"
APPS = {"gimp": "org.gimp.GIMP", "krita": "org.kde.krita"}
EDITORS = {"gimp": "GIMP", "krita": "Krita"}
_BUS_POLICY = "Session Bus Policy"
_TALK = ("talk", "own")


class FlatpakError(RuntimeError):
    """A Flatpak editor the plug-in cannot work in as it is; the message says what to do."""


def supported(platform: str | None = None) -> bool:
    return (platform or sys.platform).startswith("linux")


def app_dir(host: str, env: Mapping[str, str] | None = None) -> Path:
    """~/.var/app/APP: where Flatpak keeps the editor's profile (config/, data/, cache/)."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    return home / ".var" / "app" / APPS[host]


def allow_command(host: str) -> str:
    return f"flatpak override --user --talk-name={SPAWN_SERVICE} {APPS[host]}"


def may_spawn_on_host(permissions: str) -> bool:
    """True when the permissions `flatpak info --show-permissions` printed (a key file) let
    the app talk to org.freedesktop.Flatpak, by name or by a NAME.* pattern."""
    section = ""
    for raw in permissions.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        name, sep, level = line.partition("=")
        if section != _BUS_POLICY or not sep or level.strip() not in _TALK:
            continue
        name = name.strip()
        if name == SPAWN_SERVICE or (name.endswith(".*") and SPAWN_SERVICE.startswith(name[:-1])):
            return True
    return False


def permissions(host: str, timeout_s: float = 30.0) -> str:
    """The app's permissions, overrides included; FlatpakError when they cannot be read."""
    app, editor = APPS[host], EDITORS[host]
    flatpak = shutil.which("flatpak")
    if flatpak is None:
        raise FlatpakError(
            f"installing for Flatpak {editor} ({app}) needs the `flatpak` command, to check "
            f"what the sandbox allows, and it is not on PATH. For a {editor} installed another "
            "way, install with --no-flatpak."
        )
    try:
        done = subprocess.run(
            [flatpak, "info", "--show-permissions", app],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FlatpakError(f"cannot run `flatpak info` for {app}: {exc}") from None
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["(nothing)"])[-1]
        raise FlatpakError(
            f"Flatpak {editor} ({app}) is not installed: `flatpak info {app}` says: {said}. "
            f"Install it with Flatpak, or install with --no-flatpak for a {editor} installed "
            "another way."
        )
    return done.stdout


def check_host_access(host: str) -> None:
    """Returns when the Flatpak editor's plug-ins may run programs on the host; else
    FlatpakError with the one command that allows it and what that means."""
    if may_spawn_on_host(permissions(host)):
        return
    app, editor = APPS[host], EDITORS[host]
    raise FlatpakError(
        f"Flatpak {editor} ({app}) runs in a sandbox: its plug-ins cannot start the style "
        f"engine or the Python that talks to it, which are installed outside it. Nothing was "
        f"installed. To let {editor} run them, allow it to start programs outside its sandbox "
        f"(through `flatpak-spawn --host`), then install again:\n\n"
        f"    {allow_command(host)}\n\n"
        f"This lets {editor}, and every plug-in in it, run any program as you outside the "
        f"sandbox. To take it back: flatpak override --user "
        f"--no-talk-name={SPAWN_SERVICE} {app}"
    )
