"""The daemon's log lines: one line per record, whatever a client sent.

Messages quote client values through nst_client.protocol.quote already; this is the net under
every log call, so a newline in a client name cannot forge a line and a huge value cannot
flood the log. Tracebacks (exc_info) are the daemon's own and keep their lines.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

#: The longest message a log line carries (characters).
MAX_MESSAGE = 2000
# Control characters and the Unicode line breaks, written as escapes.
_ESCAPES = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029]
}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """text with control characters escaped, cut to limit characters."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text.translate(_ESCAPES)


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)


class Throttle:
    """Lines a client can make the daemon write, held to `burst` per kind per `window_s`:
    what is held back is counted, and said in one line when that kind next comes up after its
    window. Kinds are the daemon's own words (an error code, "hello"), never a client's, so
    no number of clients or messages makes more than about (burst + 1) lines per kind per
    window."""

    def __init__(
        self,
        burst: int = 5,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst, self.window_s, self.clock = burst, window_s, clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # kind -> (start, lines, held)
        self._lock = threading.Lock()

    def allow(self, kind: str) -> tuple[bool, int]:
        """(whether to write this line, how many lines of the kind the window just ended
        held back: say that first when it is not 0)."""
        now = self.clock()
        with self._lock:
            start, lines, held = self._windows.get(kind, (now, 0, 0))
            ended = 0
            if now - start >= self.window_s:
                start, lines, ended, held = now, 0, held, 0
            if lines < self.burst:
                self._windows[kind] = (start, lines + 1, held)
                return True, ended
            self._windows[kind] = (start, lines, held + 1)
            return False, ended


def configure(level: str) -> None:
    """Log to stderr at `level`, one line per record."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s nst-daemon %(levelname)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
