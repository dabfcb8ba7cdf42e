"""The daemon's log lines stay one line each and bounded, whatever a client sent."""

from __future__ import annotations

import logging
from pathlib import Path

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


def test_the_throttle_holds_each_kind_to_its_pace() -> None:
    from nst_daemon.logs import Throttle

    now = [0.0]
    throttle = Throttle(burst=3, window_s=10.0, clock=lambda: now[0])
    said = [throttle.allow("error bad_request") for _ in range(100)]
    assert [allowed for allowed, _ in said].count(True) == 3
    assert throttle.allow("hello") == (True, 0)  # another kind has its own pace
    now[0] = 10.0
    assert throttle.allow("error bad_request") == (True, 97)  # the count of what was held
    assert throttle.allow("error bad_request") == (True, 0)


def test_an_engine_log_past_its_size_is_moved_aside(tmp_path: Path) -> None:
    from nst_client.launcher import rotate_log

    log = tmp_path / "engine-x.log"
    rotate_log(log)  # none yet: nothing to do
    log.write_text("a" * 100)
    rotate_log(log, limit=1000)
    assert log.exists()
    rotate_log(log, limit=10)
    assert not log.exists() and (tmp_path / "engine-x.log.1").read_text() == "a" * 100
