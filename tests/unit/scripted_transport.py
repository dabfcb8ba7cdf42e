"""A stand-in for a daemon connection in unit tests: replies come from a script, no socket.

nst_client.client.Client takes it as `transport=`; tests append to `inbox` for unsolicited
messages (progress, results) and read `sent` for what the client wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nst_client.protocol import Buffer


class ScriptedTransport:
    """A transport that answers from a script: each sent request gets its listed replies."""

    def __init__(self, replies: dict[str, list[dict[str, Any]]]) -> None:
        self.replies = replies
        self.sent: list[dict[str, Any]] = []
        self.inbox: list[tuple[dict[str, Any], list[bytes]]] = []

    def send(self, header: Mapping[str, Any], buffers: Sequence[Buffer] = ()) -> None:
        self.sent.append(dict(header))
        for reply in self.replies.get(header["type"], []):
            self.inbox.append(({**reply, "id": header["id"]}, []))

    def recv(self, timeout_s: float) -> tuple[dict[str, Any], list[bytes]] | None:
        return self.inbox.pop(0) if self.inbox else None

    def close(self) -> None:
        pass
