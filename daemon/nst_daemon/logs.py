"""The daemon's log lines: one line per record, whatever a client sent.

Messages quote client values through nst_client.protocol.quote already; this is the net under
every log call, so a newline in a client name cannot forge a line and a huge value cannot
flood the log. Tracebacks (exc_info) are the daemon's own and keep their lines.
"""

from __future__ import annotations

import logging
import sys

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


def configure(level: str) -> None:
    """Log to stderr at `level`, one line per record."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s nst-daemon %(levelname)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
