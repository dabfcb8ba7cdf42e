"""`nst keys NAME`: a CURVE key pair for a remote engine or an artist, made so that only its
owner can read the secret half (zmq.auth's own files are made under the process's umask,
usually readable by everyone)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .options import UserError


def make_keys(folder: Path, name: str) -> tuple[Path, Path]:
    """NAME.key (public, 0644) and NAME.key_secret (0600) in folder; FileExistsError rather
    than replace a key."""
    import zmq.auth

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"a key's name is a plain file name, not {name!r}")
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise FileExistsError(f"{path} exists: a key is never replaced; remove it first")
    folder.mkdir(parents=True, exist_ok=True)
    mask = os.umask(0o077)  # both files are the owner's alone from their first byte
    try:
        made_public, made_secret = zmq.auth.create_certificates(str(folder), name)
    finally:
        os.umask(mask)
    Path(made_public).chmod(0o644)
    return Path(made_public), Path(made_secret)


def cmd_keys(args: argparse.Namespace) -> int:
    try:
        public, secret = make_keys(Path(args.dir), args.name)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"made {public} (public: give it out) and {secret} (secret: yours alone, mode 600)")
    print("where each goes: docs/security.md, 'A daemon on the network'")
    return 0
