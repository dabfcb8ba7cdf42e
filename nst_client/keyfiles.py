"""Whether a secret CURVE key file is its owner's alone: the one check the daemon (its
--curve-secret-key) and the clients (their secret certificate) make before they use one.
Standard library only, importing nothing of the package."""

from __future__ import annotations

import os
import shlex
from pathlib import Path


def exposed(path: str | Path) -> str | None:
    """Why the secret key file at PATH is not private (another user may read or change it),
    with the one command that fixes it; None when it is private. On Windows the profile
    folder's rights decide, and None is said."""
    if os.name != "posix":
        return None
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        return None  # a missing file is said where it is read
    if mode & 0o077:
        return (
            f"{path} can be read by other users (mode {mode:o}); a secret key must be yours "
            f"alone: run `chmod 600 {shlex.quote(str(path))}`"
        )
    return None
