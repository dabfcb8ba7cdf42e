"""Hostile and careless input against a real daemon process: every request bounded, every
failure named, nothing held, the daemon up."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daemon_process import DaemonProc, Raw, daemon_command, free_port

from nst_client import layouts
from nst_client import protocol as P
from nst_client.client import Client

pytestmark = pytest.mark.e2e

MAX_PIXELS = 100_000
MAX_TILE = 256


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProc]:
    d = DaemonProc(
        f"tcp://127.0.0.1:{free_port()}",
        "--max-pixels",
        str(MAX_PIXELS),
        "--max-tile-size",
        str(MAX_TILE),
        "--no-warmup",
        "--device",
        "cpu",
    )
    yield d
    assert d.stop() == 0


@pytest.fixture()
def raw(daemon: DaemonProc) -> Iterator[Raw]:
    r = Raw(daemon.endpoint)
    yield r
    # Whatever was sent, the daemon still answers.
    r.send({"type": "ping", "id": "after"})
    assert r.recv_for("after")["type"] == P.PONG
    r.close()


def stylize(
    request_id: str,
    content_hw: tuple[int, int] = (48, 64),
    style_hw: tuple[int, int] = (32, 32),
    **over: Any,
) -> tuple[dict[str, Any], list[bytes]]:
    """A valid stylize request (tiny, 1 iteration) with fields replaced by `over`."""
    (ch, cw), (sh, sw) = content_hw, style_hw
    header: dict[str, Any] = {
        "type": "stylize",
        "id": request_id,
        "content": layouts.describe(cw, ch, 3, "u8", 1),
        "styles": [{**layouts.describe(sw, sh, 3, "u8", 2), "weight": 1.0}],
        "params": {"iterations": 1, "size": 32, "min_scale": 32},
    }
    header.update(over)
    rng = np.random.default_rng(0)  # texture, so the cost has something to lower
    return header, [rng.bytes(ch * cw * 3), rng.bytes(sh * sw * 3)]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# --- 1. --max-pixels bounds the work, not only the images --------------------------------------


def test_1_style_scale_past_max_pixels_is_refused_before_any_work(raw: Raw) -> None:
    # 200x150 is within 100000 pixels; style_scale 4 would make the style 800x600 (480000).
    header, buffers = stylize("scaled", content_hw=(150, 200), style_hw=(150, 200))
    header["params"] = {"iterations": 1, "size": "full", "style_scale": 4.0}
    raw.send(header, buffers)
    reply = raw.recv_for("scaled", 5.0)
    assert reply["code"] == P.TOO_LARGE, reply
    assert "style_scale" in reply["message"] and str(MAX_PIXELS) in reply["message"]


def test_1_tile_size_past_max_tile_size_is_refused(raw: Raw) -> None:
    header, buffers = stylize("tile")
    header["params"] = {"iterations": 1, "tile_size": 4096}
    raw.send(header, buffers)
    reply = raw.recv_for("tile", 5.0)
    assert reply["code"] == P.TOO_LARGE and "--max-tile-size" in reply["message"], reply


def test_1_welcome_states_the_limits(daemon: DaemonProc) -> None:
    with Client(daemon.endpoint, timeout_s=10.0) as c:
        welcome = c.hello()
    assert welcome["max_pixels"] == MAX_PIXELS and welcome["max_tile_size"] == MAX_TILE


def test_1_the_queue_holds_a_bounded_amount_of_images(raw: Raw) -> None:
    # 16 styles of the largest allowed f32 RGBA size: 17 x 1.6 MB, over 4 layers' worth.
    side = 316  # 316 x 316 = 99856 pixels
    desc = layouts.describe(side, side, 4, "f32", 1)
    styles = [{**desc, "frame": i, "weight": 1.0} for i in range(2, 18)]
    frames = [bytes(side * side * 16) for _ in range(17)]
    header = {"type": "stylize", "id": "hoard", "content": desc, "styles": styles, "params": {}}
    raw.send(header, frames)
    reply = raw.recv_for("hoard", 10.0)
    assert reply["code"] == P.TOO_LARGE and "MB of images" in reply["message"], reply


# --- 2. malformed values are bad_request, never internal --------------------------------------


def _malformed() -> list[tuple[str, dict[str, Any], str]]:
    """(name, header fields to replace, word the message must name)."""
    content = layouts.describe(64, 48, 3, "u8", 1)
    style = layouts.describe(32, 32, 3, "u8", 2)
    deep = nested(1000)
    return [
        ("dtype_list", {"content": {**content, "dtype": ["u8"]}}, "content.dtype"),
        ("dtype_map", {"content": {**content, "dtype": {"u8": 1}}}, "content.dtype"),
        ("deep_width", {"content": {**content, "width": deep}}, "content.width"),
        ("deep_weight", {"styles": [{**style, "weight": deep}]}, "weight"),
        ("deep_param", {"params": {"iterations": deep}}, "params.iterations"),
        ("deep_param_name_list", {"params": {"style_layers": deep}}, "style_layers"),
        ("deep_preview_every", {"preview_every": deep}, "preview_every"),
        ("int_param_name", {"params": {1: 2, "size": 32}}, "unknown parameter"),
        ("huge_param_name", {"params": {"x" * 500_000: 1}}, "unknown parameter"),
        ("huge_string_value", {"params": {"optimizer": "y" * 500_000}}, "optimizer"),
        ("binary_value", {"params": {"init": b"\0" * 1000}}, "init"),
        ("all_weights_zero", {"styles": [{**style, "weight": 0}]}, "weight"),
        ("unreferenced_frame", {"styles": [{**content, "frame": 1}]}, "frame"),
    ]


@pytest.mark.parametrize("name,over,word", _malformed(), ids=[c[0] for c in _malformed()])
def test_2_malformed_values_get_bad_request_quoted_short(
    raw: Raw, name: str, over: dict[str, Any], word: str
) -> None:
    header, buffers = stylize("m", **over)
    raw.send(header, buffers)
    reply = raw.recv_for("m", 5.0)
    assert reply["type"] == P.ERROR and reply["code"] == P.BAD_REQUEST, reply
    assert word in reply["message"], reply
    assert len(reply["message"]) < 600, f"{len(reply['message'])} characters"


def test_2_oversized_header_and_oversized_id_are_refused(raw: Raw) -> None:
    raw.send({"type": "ping", "id": "p", "junk": "z" * (P.MAX_HEADER_BYTES + 10)})
    reply, _ = raw.recv(5.0)
    assert reply["code"] == P.BAD_REQUEST and "header" in reply["message"], reply
    raw.send({"type": "ping", "id": "i" * 10_000})
    reply, _ = raw.recv(5.0)
    assert reply["code"] == P.BAD_REQUEST and reply["id"] is None, reply
    assert "'id'" in reply["message"] and len(reply["message"]) < 200


# --- 3. hello names its client, as the protocol says --------------------------------------------


@pytest.mark.parametrize("client", [None, 7, ["a"], "c" * 300])
def test_3_hello_without_a_proper_client_name_is_refused(raw: Raw, client: Any) -> None:
    header: dict[str, Any] = {"type": "hello", "id": "h", "protocol": 1}
    if client is not None:
        header["client"] = client
    raw.send(header)
    reply = raw.recv_for("h", 5.0)
    assert reply["type"] == P.ERROR and reply["code"] == P.BAD_REQUEST, reply
    assert "client" in reply["message"]


# --- 4. one daemon per ipc path ----------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="ipc:// needs Unix sockets")
def test_4_second_daemon_on_a_served_ipc_path_is_refused_and_names_the_pid(
    tmp_path: Path,
) -> None:
    import subprocess

    endpoint = f"ipc://{tmp_path}/nst.sock"
    first = DaemonProc(endpoint, "--no-warmup", "--device", "cpu")
    try:
        second = subprocess.run(
            [*daemon_command(), "--endpoint", endpoint, "--no-warmup"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stderr
        assert "already served" in second.stderr
        if sys.platform.startswith("linux"):
            assert f"pid {first.proc.pid}" in second.stderr
        assert "ready" not in second.stdout
        with Client(endpoint, timeout_s=10.0) as c:  # the first still owns the path
            assert c.ping()["type"] == P.PONG
    finally:
        assert first.stop() == 0


# --- 6. refused frames are let go at once; ZeroMQ's cap follows --max-pixels -------------------


def test_6_a_refused_big_frame_is_not_held(tmp_path: Path) -> None:
    d = DaemonProc(
        f"tcp://127.0.0.1:{free_port()}", "--max-pixels", str(4096 * 4096), "--no-warmup"
    )
    raw = Raw(d.endpoint)
    try:
        raw.send({"type": "ping", "id": "warm"})
        raw.recv_for("warm")
        rss0 = d.rss_kib()
        for i in range(2):  # two in a row: neither may stay referenced
            header, buffers = stylize(f"big{i}")
            raw.send(header, [bytes(200 << 20), buffers[1]])
            reply = raw.recv_for(f"big{i}", 10.0)
            assert reply["code"] == P.BAD_IMAGE, reply
        time.sleep(0.5)  # no further message: nothing else would release a held frame
        held_mb = (d.rss_kib() - rss0) / 1024
        assert held_mb < 50, f"the daemon still holds {held_mb:.0f} MB after two refusals"
    finally:
        raw.close()
        assert d.stop() == 0


def test_6_a_frame_over_the_limit_is_dropped_by_zeromq(daemon: DaemonProc) -> None:
    """--max-pixels 100000 caps a frame at 1.6 MB; a 64 MB frame never reaches the daemon."""
    assert P.max_frame_bytes(MAX_PIXELS) < (64 << 20)
    rss0 = daemon.rss_kib()
    raw = Raw(daemon.endpoint)
    header, buffers = stylize("over")
    raw.send(header, [bytes(64 << 20), buffers[1]])
    assert not raw.sock.poll(1000), "the daemon answered a message ZeroMQ should have dropped"
    raw.close()
    assert (daemon.rss_kib() - rss0) / 1024 < 32
    with Client(daemon.endpoint, timeout_s=10.0) as c:
        assert c.ping()["type"] == P.PONG


# --- 7. logs cannot be flooded or forged -------------------------------------------------------


def test_7_client_strings_cannot_forge_or_flood_the_log(daemon: DaemonProc, raw: Raw) -> None:
    forged = "x\n2026-01-01 00:00:00,000 nst-daemon ERROR forged line"
    raw.send({"type": "hello", "id": "h", "protocol": 1, "client": forged[:200]})
    assert raw.recv_for("h")["type"] == P.WELCOME
    size0 = len(daemon.log_text())
    for i in range(5):  # 1 MB values in the fields that get quoted
        header, buffers = stylize(f"f{i}", params={"z" * 900_000: 1})
        raw.send(header, buffers)
        assert raw.recv_for(f"f{i}")["code"] == P.BAD_REQUEST
        raw.send({"type": "frobnicate" + "q" * 900_000, "id": f"t{i}"})
        assert raw.recv_for(f"t{i}")["code"] == P.BAD_REQUEST
    log = daemon.log_text()
    assert len(log) - size0 < 20_000, f"10 requests added {len(log) - size0} bytes of log"
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())
    assert "\\n2026-01-01" in log  # the newline is shown escaped


def test_a_flood_of_junk_from_many_clients_writes_a_few_lines(daemon: DaemonProc) -> None:
    """4000 refused or idle requests from 20 clients: a few lines and a count, not a line
    each (the on-demand engine's log is in the artist's home)."""
    lines0 = len(daemon.log_text().splitlines())
    clients = [Raw(daemon.endpoint) for _ in range(20)]
    try:
        for i in range(2000):
            raw = clients[i % len(clients)]
            raw.send({"type": "frobnicate", "id": f"j{i}"})
            raw.send({"type": "hello", "id": f"h{i}", "protocol": 1, "client": f"c{i}"})
        last = clients[-1]
        last.send({"type": "ping", "id": "after"})
        assert last.recv_for("after", 30.0)["type"] == P.PONG  # the daemon still answers
        time.sleep(0.5)
    finally:
        for raw in clients:
            raw.close()
    added = len(daemon.log_text().splitlines()) - lines0
    assert added < 40, f"4000 requests wrote {added} lines"


# --- the whole: a daemon under an address-space cap survives every oversize case ------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs prlimit (Linux)")
def test_memory_ceiling_the_daemon_survives_oversize_cases_within_its_limits() -> None:
    """With its address space capped at what --max-pixels and --max-tile-size allow (the
    queue's images, one message's frames in ZeroMQ, one 256-px pass, headroom), the daemon
    refuses every oversize request by name, still runs the largest job its limits allow,
    and stays up."""
    import resource

    side = 500  # --max-pixels 250000
    d = DaemonProc(
        f"tcp://127.0.0.1:{free_port()}",
        "--max-pixels",
        str(side * side),
        "--max-tile-size",
        "256",
        "--client-timeout",
        "600",  # the raw socket does not ping while it waits
        "--device",
        "cpu",
    )
    raw = Raw(d.endpoint)
    try:
        header, buffers = stylize("warm")
        raw.send(header, buffers)
        assert raw.recv_for("warm", 60.0)["type"] == P.ACCEPTED
        while (reply := raw.recv_for("warm", 60.0))["type"] == P.PROGRESS:
            pass
        assert reply["type"] == P.RESULT, reply
        budget_mb = 1024
        limit = (d.rss_kib("VmSize") + budget_mb * 1024) * 1024
        resource.prlimit(d.proc.pid, resource.RLIMIT_AS, (limit, limit))

        f32 = layouts.describe(side, side, 4, "f32", 1)
        big = np.random.default_rng(1).random((side, side, 4), dtype=np.float32).tobytes()
        oversize: list[tuple[str, dict[str, Any], list[bytes], str]] = []
        h, b = stylize("scale", content_hw=(side, side), style_hw=(side, side))
        h["params"] = {"size": "full", "style_scale": 4.0}
        oversize.append(("scale", h, [bytes(side * side * 3)] * 2, P.TOO_LARGE))
        h, b = stylize("tile", params={"tile_size": 65536})
        oversize.append(("tile", h, b, P.TOO_LARGE))
        styles = [{**f32, "frame": i, "weight": 1.0} for i in range(2, 18)]
        h = {"type": "stylize", "id": "hoard", "content": f32, "styles": styles}
        oversize.append(("hoard", h, [big] * 17, P.TOO_LARGE))
        h, b = stylize("wide", content_hw=(1, 300_000))
        oversize.append(("wide", h, b, P.TOO_LARGE))
        for name, header, frames, code in oversize:
            raw.send(header, frames)
            reply = raw.recv_for(name, 30.0)
            assert reply.get("code") == code, (name, reply)
        # A frame over ZeroMQ's cap (4 MB here) is dropped before the daemon sees it.
        h, b = stylize("over")
        raw.send(h, [bytes(64 << 20), b[1]])
        assert not raw.sock.poll(1000)
        # The largest job the limits allow still runs, tiled, under the cap.
        h = {
            "type": "stylize",
            "id": "largest",
            "content": f32,
            "styles": [{**f32, "frame": 2, "weight": 1.0}],
            "params": {"iterations": 1, "size": "full", "min_scale": side, "tile_size": 256},
        }
        raw.send(h, [big, big])
        while (reply := raw.recv_for("largest", 300.0))["type"] in (P.ACCEPTED, P.PROGRESS):
            pass
        assert reply["type"] == P.RESULT, reply
        raw.send({"type": "ping", "id": "alive"})
        assert raw.recv_for("alive")["type"] == P.PONG
        assert d.proc.poll() is None
    finally:
        raw.close()
        assert d.stop() == 0


def test_previews_to_a_client_that_does_not_read_are_not_piled_up(daemon: DaemonProc) -> None:
    """A client asking for a preview every iteration and not reading them: the daemon holds
    one preview for it (the rest go out without their image), not one per iteration."""
    import zmq

    side = 316  # the largest f32 RGBA content this daemon takes: 1.6 MB a preview
    raw = Raw(daemon.endpoint)
    raw.sock.setsockopt(zmq.RCVHWM, 1)  # the client's ZeroMQ stops reading too, so the
    raw.sock.setsockopt(zmq.RCVBUF, 4096)  # daemon's socket backs up, as with a hung client
    rng = np.random.default_rng(2)
    content = rng.random((side, side, 4), dtype=np.float32).tobytes()
    header, buffers = stylize("peek", preview_every=1)
    header["content"] = layouts.describe(side, side, 4, "f32", 1)
    header["params"] = {"iterations": 400, "size": 32, "min_scale": 32}
    raw.send(header, [content, buffers[1]])
    time.sleep(2.0)  # the job is running: its own working memory is in place
    rss0 = daemon.rss_kib()
    time.sleep(4.0)  # it goes on (and would post a preview per iteration) unread
    grown_mb = (daemon.rss_kib() - rss0) / 1024
    raw.send({"type": "cancel", "id": "c", "job": "peek"})
    raw.close()
    assert grown_mb < 20, f"the daemon grew by {grown_mb:.0f} MB of unread previews in 4 s"
