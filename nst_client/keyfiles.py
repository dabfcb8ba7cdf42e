"""The user's CURVE key files: whether a secret one is its owner's alone, how a key pair is
made that way, and the user's own pair of pairs for the engine on this machine.

The local engine speaks CURVE on a loopback TCP endpoint with keys made on its first start in
a folder only the user can enter: a process of another user can neither answer as the
engine (it lacks the engine's secret, so the handshake fails before anything is sent) nor
reach it (it lacks the client's secret, so the engine refuses it). The daemon and every
client find the folder the same way, from the user's home. Standard library only; making keys
imports pyzmq (the daemon and the bridge have it; an editor's Python only reads the files).
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: The names of the two pairs in the local keys' folder.
ENGINE, CLIENT = "engine", "client"


class KeyFolderError(OSError):
    """The user's local keys cannot be made or used; the message says why and what fixes it."""


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


_UMASK_LOCK = threading.Lock()


def make_keys(folder: Path, name: str) -> tuple[Path, Path]:
    """NAME.key (public, 0644) and NAME.key_secret (0600) in folder; FileExistsError rather
    than replace a key. zmq.auth's own files are made under the process's umask (usually
    readable by everyone): here the secret is the owner's alone from its first byte."""
    import zmq.auth

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"a key's name is a plain file name, not {name!r}")
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise FileExistsError(f"{path} exists: a key is never replaced; remove it first")
    folder.mkdir(parents=True, exist_ok=True)
    with _UMASK_LOCK:  # the umask is the process's: threads making keys take turns
        mask = os.umask(0o077)
        try:
            made_public, made_secret = zmq.auth.create_certificates(str(folder), name)
        finally:
            os.umask(mask)
    Path(made_public).chmod(0o644)
    Path(made_secret).chmod(0o600)
    return Path(made_public), Path(made_secret)


def local_keys_dir(env: Mapping[str, str] | None = None, platform: str = sys.platform) -> Path:
    """Where the user's local engine keys live: in the user's own settings folder
    (%APPDATA% on Windows, ~/Library/Application Support on macOS, $XDG_CONFIG_HOME or
    ~/.config elsewhere), under nst/engine-keys."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    if platform == "win32":
        base = Path(env.get("APPDATA") or home / "AppData" / "Roaming")
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    return base / "nst" / "engine-keys"


@dataclass(frozen=True)
class LocalKeys:
    """The files of the user's local keys: the engine's pair and the clients' pair."""

    folder: Path

    def public(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    def secret(self, name: str) -> Path:
        return self.folder / f"{name}.key_secret"

    def files(self) -> list[Path]:
        return [f(name) for name in (ENGINE, CLIENT) for f in (self.public, self.secret)]


def local_keys(folder: Path | None = None, make: bool = True) -> LocalKeys:
    """The user's local keys, made on first use (make=False: only when they exist), each
    checked to be the user's alone; KeyFolderError naming the folder and what fixes it."""
    keys = LocalKeys(folder or local_keys_dir())
    if not keys.folder.exists():
        if not make:
            raise KeyFolderError(f"{keys.folder} does not exist yet: the engine makes it")
        _make(keys.folder)
    _check(keys)
    return keys


def _make(folder: Path) -> None:
    """Make both pairs in a private folder beside FOLDER and move it into place whole: two
    programs starting at once end with one set, the first one's."""
    try:
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = Path(tempfile.mkdtemp(prefix=".engine-keys-", dir=folder.parent))
    except OSError as exc:
        raise KeyFolderError(
            f"cannot make your engine's keys in {folder.parent}: {exc.strerror or exc}"
        ) from None
    try:
        make_keys(draft, ENGINE)
        make_keys(draft, CLIENT)
        os.rename(draft, folder)
    except FileExistsError:
        pass  # another program made them first: theirs are used
    except OSError as exc:
        if not folder.is_dir():
            raise KeyFolderError(
                f"cannot make your engine's keys in {folder}: {exc.strerror or exc}"
            ) from None
    finally:
        shutil.rmtree(draft, ignore_errors=True)


def _check(keys: LocalKeys) -> None:
    folder = keys.folder
    missing = [p.name for p in keys.files() if not p.is_file()]
    if missing:
        raise KeyFolderError(
            f"{folder} lacks {', '.join(missing)}: remove the folder (with the engine "
            "stopped) and the next start makes new keys"
        )
    if os.name != "posix":
        return
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise KeyFolderError(
            f"{folder} is not a folder of yours (owner uid {info.st_uid}): your engine's keys "
            "must be yours alone; remove it"
        )
    if info.st_mode & 0o077:
        raise KeyFolderError(
            f"{folder} can be entered by other users (mode {info.st_mode & 0o777:o}): run "
            f"`chmod 700 {shlex.quote(str(folder))}`"
        )
    for name in (ENGINE, CLIENT):
        problem = exposed(keys.secret(name))
        if problem is not None:
            raise KeyFolderError(problem)
