"""The daemon's log lines stay one line each and bounded, whatever a client sent."""

from __future__ import annotations

import logging

from nst_daemon.logs import MAX_MESSAGE, OneLineFormatter, one_line


def test_control_characters_are_escaped_and_long_text_cut() -> None:
    assert one_line("a\nb\r\tc\x1b[31m\u2028") == "a\\nb\\r\\tc\\x1b[31m\\u2028"
    long = one_line("z" * (MAX_MESSAGE + 500))
    assert long.startswith("z" * MAX_MESSAGE) and long.endswith("(500 more characters)")


def test_a_forged_line_in_a_message_stays_on_its_line_and_tracebacks_keep_theirs() -> None:
    formatter = OneLineFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord(
        "nst_daemon", logging.INFO, __file__, 1, "hello from %s", ("x\nERROR forged",), None
    )
    assert formatter.format(record) == "INFO hello from x\\nERROR forged"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "nst_daemon", logging.ERROR, __file__, 1, "crashed", (), sys.exc_info()
        )
    lines = formatter.format(record).splitlines()
    assert lines[0] == "ERROR crashed" and lines[1].startswith("Traceback")
