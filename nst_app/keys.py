"""`nst keys NAME`: a CURVE key pair for a remote engine or an artist, made so that only its
owner can read the secret half (zmq.auth's own files are made under the process's umask,
usually readable by everyone)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nst_client.keyfiles import make_keys

from .options import UserError


def cmd_keys(args: argparse.Namespace) -> int:
    try:
        public, secret = make_keys(Path(args.dir), args.name)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"made {public} (public: give it out) and {secret} (secret: yours alone, mode 600)")
    print("where each goes: docs/security.md, 'A remote daemon with keys'")
    return 0
