"""How the client starts its helper processes (the bridge, the engine on demand), and the
user's private folder they start in and the launchers lock in.

A process started from the editor's current folder would import a module planted there (an
`argparse.py` beside a document the artist opened) before the standard library's: every
helper starts in the private folder, with PYTHONSAFEPATH set so that a Python that honours it
(3.11+) puts no folder of its start in front of its imports. The private folder belongs to
the user alone (0700, owned by them); one another user made for them is never used.
Standard library only.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path


class PrivateDirError(OSError):
    """The user's private folder cannot be had (another user owns the fixed name)."""


def _own(path: Path) -> None:
    """Make sure `path` is a folder only this user can use; PrivateDirError if it is not
    theirs (it is then left alone)."""
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise PrivateDirError(f"{path} is not a folder")
    if info.st_uid != os.getuid():
        raise PrivateDirError(
            f"{path} belongs to another user (uid {info.st_uid}), not to you: it is not used"
        )
    if info.st_mode & 0o077:
        path.chmod(0o700)


def private_dir() -> Path:
    """This user's private folder for the launchers' locks and the helpers' start:
    $XDG_RUNTIME_DIR/nst (a folder the system makes for the user alone), else nst-UID in the
    temp folder, made 0700 and checked to be the user's; on Windows, the user's own
    %LOCALAPPDATA%. PrivateDirError when none can be had."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        path = base / "nst" / "run"
        path.mkdir(parents=True, exist_ok=True)
        return path
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        path = Path(runtime) / "nst"
    else:
        path = Path(tempfile.gettempdir()) / f"nst-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise PrivateDirError(f"cannot make {path}: {exc.strerror or exc}") from None
    _own(path)
    return path


def start_folder() -> Path:
    """Where a helper process starts: the private folder, else the user's home (both the
    user's alone to write)."""
    try:
        return private_dir()
    except OSError:
        return Path.home()


def clean_env() -> dict[str, str]:
    """The environment of a helper: this one, with PYTHONSAFEPATH set."""
    return {**os.environ, "PYTHONSAFEPATH": "1"}
