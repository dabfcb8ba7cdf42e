"""A stand-in for a daemon connection in unit tests: replies come from a script, no socket.

nst_client.client.Client takes it as `transport=`. Each request type gets its scripted
replies, on the request's id (a cancel's on its job's id, as the daemon does); a reply is a
header or a (header, frames) pair. Tests append to `inbox` for unsolicited messages and read
`sent` (and `frames`, the image frame count of each) for what the client wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nst_client.protocol import Buffer

Reply = tuple[dict[str, Any], list[bytes]]


class ScriptedTransport:
    def __init__(self, script: Mapping[str, Sequence[Reply | dict[str, Any]]]) -> None:
        self.script = script
        self.sent: list[dict[str, Any]] = []
        self.frames: list[int] = []
        self.inbox: list[Reply] = []
        self.closed = False

    def send(self, header: Mapping[str, Any], buffers: Sequence[Buffer] = ()) -> None:
        self.sent.append(dict(header))
        self.frames.append(len(buffers))
        reply_id = header.get("job", header["id"])
        for reply in self.script.get(header["type"], []):
            head, frames = reply if isinstance(reply, tuple) else (reply, [])
            self.inbox.append(({**head, "id": reply_id}, list(frames)))

    def recv(self, timeout_s: float) -> Reply | None:
        return self.inbox.pop(0) if self.inbox else None

    def close(self) -> None:
        self.closed = True

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [h for h in self.sent if h["type"] == kind]
