"""End-to-end tests of the daemon: a real `nst-daemon` process, real ZeroMQ sockets,
real VGG-19 weights. Images are tiny and runs short so the suite stays fast on 2 CPU cores."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import product
import pytest
from daemon_process import DaemonProc, Raw, daemon_command, free_port

from nst_client import protocol as P
from nst_client.client import (
    Client,
    DaemonError,
    DaemonUnavailable,
    JobCancelled,
    RawImage,
    connect,
)
from nst_client.progress import Progress
from nst_client.settings import Settings

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
MAX_PIXELS = 512 * 512
CLIENT_TIMEOUT_S = 3.0
QUICK = {"iterations": 3, "size": 64, "min_scale": 32}
#: A job that runs until cancelled (minutes on a CPU).
LONG = {"iterations": 5000, "size": 64, "min_scale": 64}


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProc]:
    d = DaemonProc(
        f"tcp://127.0.0.1:{free_port()}",
        "--max-pixels",
        str(MAX_PIXELS),
        "--client-timeout",
        str(CLIENT_TIMEOUT_S),
        "--device",
        "cpu",
    )
    yield d
    assert d.stop() == 0


@pytest.fixture()
def client(daemon: DaemonProc) -> Iterator[Client]:
    c = Client(daemon.endpoint, timeout_s=10.0)
    yield c
    c.close()


def images(
    h: int = 64, w: int = 56, channels: int = 4, dtype: Any = np.uint8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    content = rng.integers(0, top, (h, w, channels), dtype=dtype, endpoint=True)
    style = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8, endpoint=True)
    return content, style


def wire(arr: np.ndarray, frame: int = 1) -> RawImage:
    from nst_client import layouts

    return layouts.from_array(arr, frame)


def wait_idle(client: Client, timeout_s: float = 20.0) -> P.Status:
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.status()
        if status["running"] is None and not status["queue"]:
            return status
        assert time.monotonic() < deadline, f"daemon still busy: {status}"
        time.sleep(0.1)


def first_progress(client: Client, job_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        item = client.receive(job_id, max(0.01, deadline - time.monotonic()))
        assert item is not None, "no progress from the daemon"
        if item[0]["type"] == P.PROGRESS:
            return item[0]
        assert item[0]["type"] == P.ACCEPTED, item[0]


# --- round trips ------------------------------------------------------------------------------


def test_ready_line_names_endpoint_device_weights(daemon: DaemonProc) -> None:
    assert daemon.endpoint in daemon.ready_line
    assert "device=cpu" in daemon.ready_line and "weights=caffe" in daemon.ready_line


def test_hello(client: Client) -> None:
    welcome = client.hello()
    assert welcome["protocol"] == 1 and welcome["device"] == "cpu"
    assert welcome["weights"] == "caffe" and welcome["max_pixels"] == MAX_PIXELS
    assert welcome["defaults"]["quality"] == "normal" and welcome["defaults"]["iterations"] is None
    profile = welcome["profile"]  # what the daemon measured on its device at start-up
    assert profile is not None and profile["precision"] in profile["measured"]
    assert profile["s_per_mpix"] > 0 and set(profile["measured"]) <= {"fp32", "bf16"}
    assert client.ping()["type"] == P.PONG


@pytest.mark.parametrize("channels,dtype", [(4, np.uint8), (3, np.uint16)])
def test_round_trip(client: Client, channels: int, dtype: Any) -> None:
    content, style = images(channels=channels, dtype=dtype)
    progress: list[Progress] = []
    out = client.stylize(content, [style], QUICK, on_progress=progress.append, preview_every=2)
    assert out.shape == content.shape and out.dtype == content.dtype
    assert not np.array_equal(out[..., :3], content[..., :3])  # it did stylize
    if channels == 4:
        assert np.array_equal(out[..., 3], content[..., 3])  # alpha bit-exact
    total = progress[-1].iterations
    # The first report (iteration 0) comes before any work, with the plan's time estimate.
    assert [p.iteration for p in progress] == list(range(0, total + 1))
    assert progress[0].eta_s is not None and progress[0].eta_s > 0
    assert progress[-1].scales == 2 and {p.scale for p in progress} == {1, 2}
    for p in progress[1:]:
        assert p.loss_total > 0 and p.loss_content >= 0 and p.loss_style >= 0
        assert p.elapsed_s >= 0 and p.eta_s is not None and p.eta_s >= 0
    assert progress[-1].fraction == 1.0
    previews = [p.preview for p in progress if p.preview is not None]
    assert previews, "preview_every=2 sent no preview"
    desc, data = previews[-1]
    assert (desc["width"], desc["height"], desc["channels"]) == (56, 64, channels)
    assert len(data) == content.nbytes


def test_result_stats_and_style_cache(client: Client) -> None:
    content, style = images(seed=5)
    first = client.stylize_raw(wire(content), [(wire(style), 1.0)], QUICK)
    again = client.stylize_raw(wire(content), [(wire(style), 1.0)], QUICK)
    assert first.stats["style_cache"]["misses"] >= 1
    assert again.stats["style_cache"]["hits"] >= 1
    assert again.stats["style_cache"]["misses"] == 0
    assert first.data == again.data  # same seed, same settings: same pixels


def test_regions_over_the_protocol(client: Client) -> None:
    """Two styles, each on its mask (u8 and f32), the bottom rows covered by neither: the
    daemon says it takes masks, the regions come back styled, the rest the photo exactly."""
    assert P.MASKS in client.hello()["features"]
    content, style = images(seed=11)
    _, other = images(seed=12)
    left = np.zeros((64, 56), np.uint8)
    left[:48, :28] = 255
    right = np.zeros((64, 56), np.float32)
    right[:48, 28:] = 1.0
    out = client.stylize(content, [(style, 1.0, left), (other, 1.0, right)], QUICK)
    assert np.array_equal(out[48:], content[48:])  # no mask reaches: the photo, bit for bit
    assert not np.array_equal(out[:48, :28, :3], content[:48, :28, :3])
    assert not np.array_equal(out[:48, 28:, :3], content[:48, 28:, :3])
    assert np.array_equal(out[..., 3], content[..., 3])


@pytest.mark.parametrize(
    "mask,words",
    [
        (np.zeros((64, 56), np.uint8), "styles[0].mask: the mask is all black"),
        (np.full((64, 56), 2.0, np.float32), "styles[0].mask: f32 mask values must be within"),
        (np.ones((32, 56), np.uint8), "styles[0].mask: the mask is 56x32, the content 56x64"),
    ],
)
def test_a_bad_mask_is_refused_by_name_and_the_daemon_goes_on(
    client: Client, mask: np.ndarray, words: str
) -> None:
    content, style = images(seed=13)
    with pytest.raises(DaemonError) as err:
        client.stylize(content, [(style, 1.0, mask)], QUICK)
    assert err.value.code == P.BAD_REQUEST and words in err.value.message
    out = client.stylize(content, [style], {"iterations": 1, "size": 32})
    assert out.shape == content.shape


def test_zero_iterations_returns_content(client: Client) -> None:
    content, style = images(channels=2, dtype=np.uint8)
    out = client.stylize(content, [style], {"iterations": 0})
    assert np.array_equal(out, content)


# --- cancel, queue, concurrency ---------------------------------------------------------------


def test_cancel_running_job(client: Client) -> None:
    content, style = images()
    job = client.submit(wire(content), [(wire(style), 1.0)], LONG)
    first_progress(client, job)
    t0 = time.monotonic()
    client.cancel(job)
    with pytest.raises(JobCancelled):
        client.follow(job, idle_timeout_s=20)
    assert time.monotonic() - t0 < 5.0
    wait_idle(client)


def test_cancel_queued_job_and_fast_answers_while_busy(client: Client) -> None:
    content, style = images()
    running = client.submit(wire(content), [(wire(style), 1.0)], LONG)
    first_progress(client, running)
    queued = client.submit(wire(content), [(wire(style), 1.0)], QUICK)
    accepted = client.receive(queued, 5.0)
    assert accepted is not None and accepted[0]["queue_position"] == 1
    # The socket thread answers within milliseconds while the worker is busy.
    latencies = []
    for _ in range(5):
        t0 = time.monotonic()
        status = client.status()
        latencies.append(time.monotonic() - t0)
    assert status["running"] is not None
    assert status["running"]["id"] == running and status["running"]["mine"]
    assert [q["id"] for q in status["queue"]] == [queued]
    assert max(latencies) < 0.5, latencies
    client.cancel(queued)
    reply = client.receive(queued, 2.0)
    assert reply is not None and reply[0]["type"] == P.CANCELLED
    now = client.status()["running"]
    assert now is not None and now["id"] == running  # the running one goes on
    client.cancel(running)
    with pytest.raises(JobCancelled):
        client.follow(running)
    wait_idle(client)


def test_queue_full(client: Client) -> None:
    content, style = images()
    jobs = [client.submit(wire(content), [(wire(style), 1.0)], LONG)]
    first_progress(client, jobs[0])
    for _ in range(P.MAX_QUEUED_PER_CLIENT):
        jobs.append(client.submit(wire(content), [(wire(style), 1.0)], LONG))
        accepted = client.receive(jobs[-1], 5.0)
        assert accepted is not None and accepted[0]["type"] == P.ACCEPTED
    extra = client.submit(wire(content), [(wire(style), 1.0)], LONG)
    reply = client.receive(extra, 5.0)
    assert reply is not None and reply[0]["type"] == P.ERROR
    assert reply[0]["code"] == P.QUEUE_FULL
    for job in reversed(jobs):
        client.cancel(job)
    for job in jobs:
        with pytest.raises(JobCancelled):
            client.follow(job)
    wait_idle(client)


def test_unknown_job_cancel(client: Client) -> None:
    raw = Raw(client.endpoint)
    raw.send({"type": "cancel", "id": "c1", "job": "nope"})
    reply = raw.recv_for("c1")
    assert reply["code"] == P.UNKNOWN_JOB and "job" in reply["message"]
    raw.close()


def test_two_clients_at_once(daemon: DaemonProc) -> None:
    results: dict[int, Any] = {}

    def run(seed: int) -> None:
        with Client(daemon.endpoint, timeout_s=10.0) as c:
            content, style = images(seed=seed)
            results[seed] = (content, c.stylize(content, [style], QUICK))

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == [1, 2]
    for content, out in results.values():
        assert out.shape == content.shape
        assert np.array_equal(out[..., 3], content[..., 3])


KILLED_CLIENT = """
import sys, numpy as np
from nst_client.client import Client
from nst_client import layouts
c = Client(sys.argv[1])
rng = np.random.default_rng(0)  # content and style differ: a job with work to do
img = rng.integers(0, 256, (48, 40, 4), dtype=np.uint8); img[..., 3] = 255
style = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
job = c.submit(layouts.from_array(img, 1), [(layouts.from_array(style, 1), 1.0)],
               {"iterations": 5000, "size": 64, "min_scale": 64})
c.follow(job, on_progress=lambda p: print("progress", flush=True) or __import__("time").sleep(60))
"""


def test_killed_client_job_cancelled_and_next_served(client: Client) -> None:
    before = client.status()["jobs_cancelled"]
    proc = subprocess.Popen(
        [PYTHON, "-c", KILLED_CLIENT, client.endpoint], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "progress"
    assert client.status()["running"] is not None
    proc.kill()
    proc.wait()
    t0 = time.monotonic()
    content, style = images()
    out = client.stylize(content, [style], QUICK)
    assert out.shape == content.shape
    assert client.status()["jobs_cancelled"] == before + 1
    assert time.monotonic() - t0 < CLIENT_TIMEOUT_S + 15


def test_silent_client_times_out(client: Client) -> None:
    raw = Raw(client.endpoint)
    content, style = images()
    (cd, cb), (sd, sb) = wire(content, 1), wire(style, 2)
    raw.send(
        {"type": "stylize", "id": "silent", "content": cd, "styles": [sd], "params": LONG}, [cb, sb]
    )
    assert raw.recv_for("silent")["type"] == P.ACCEPTED
    # No pings: after --client-timeout the daemon cancels the job on its own.
    status = wait_idle(client, timeout_s=CLIENT_TIMEOUT_S + 10)
    assert status["running"] is None
    raw.close()


# --- malformed input --------------------------------------------------------------------------


def _stylize_header(request_id: str, **over: Any) -> tuple[dict[str, Any], list[bytes]]:
    content, style = images()
    (cd, cb), (sd, sb) = wire(content, 1), wire(style, 2)
    header = {
        "type": "stylize",
        "id": request_id,
        "content": cd,
        "styles": [{**sd, "weight": 1.0}],
        "params": {"iterations": 1, "size": 32},
    }
    header.update(over)
    return header, [cb, sb]


def _malformed() -> list[tuple[str, Any, str, str]]:
    """(name, message frames or (header, buffers), expected code, word the message names)."""
    h, b = _stylize_header("m")
    cases: list[tuple[str, Any, str, str]] = [
        ("not_msgpack", [b"\xc1\xc1 not msgpack"], P.BAD_REQUEST, "msgpack"),
        ("not_a_map", [msgpack.packb([1, 2, 3])], P.BAD_REQUEST, "map"),
        ("missing_type", ({"id": "m"}, []), P.BAD_REQUEST, "type"),
        ("missing_id", ({"type": "ping"}, []), P.BAD_REQUEST, "id"),
        ("mistyped_id", ({"type": "ping", "id": 7}, []), P.BAD_REQUEST, "id"),
        ("unknown_type", ({"type": "explode", "id": "m"}, []), P.BAD_REQUEST, "explode"),
        (
            "wrong_protocol",
            ({"type": "hello", "id": "m", "protocol": 2, "client": "t"}, []),
            P.UNSUPPORTED_PROTOCOL,
            "protocol",
        ),
        (
            "missing_content",
            ({k: v for k, v in h.items() if k != "content"}, b),
            P.BAD_REQUEST,
            "content",
        ),
        ("mistyped_content", ({**h, "content": "pixels"}, b), P.BAD_REQUEST, "content"),
        (
            "mistyped_width",
            ({**h, "content": {**h["content"], "width": "40"}}, b),
            P.BAD_REQUEST,
            "content.width",
        ),
        (
            "bad_dtype",
            ({**h, "content": {**h["content"], "dtype": "f64"}}, b),
            P.BAD_REQUEST,
            "content.dtype",
        ),
        ("size_mismatch", (h, [b[0][:-7], b[1]]), P.BAD_IMAGE, "content"),
        (
            "frame_out_of_range",
            ({**h, "content": {**h["content"], "frame": 5}}, b),
            P.BAD_REQUEST,
            "content.frame",
        ),
        (
            "style_frame_zero",
            ({**h, "styles": [{**h["styles"][0], "frame": 0}]}, b),
            P.BAD_REQUEST,
            "styles[0].frame",
        ),
        ("mistyped_styles", ({**h, "styles": {"a": 1}}, b), P.BAD_REQUEST, "styles"),
        ("no_styles", ({**h, "styles": []}, b), P.BAD_REQUEST, "styles"),
        (
            "bad_weight",
            ({**h, "styles": [{**h["styles"][0], "weight": "x"}]}, b),
            P.BAD_REQUEST,
            "styles[0].weight",
        ),
        ("unknown_param", ({**h, "params": {"colour": 3}}, b), P.BAD_REQUEST, "colour"),
        ("bad_param_value", ({**h, "params": {"iterations": -1}}, b), P.BAD_REQUEST, "iterations"),
        ("params_device", ({**h, "params": {"device": "cuda"}}, b), P.BAD_REQUEST, "device"),
        (
            "params_weights",
            ({**h, "params": {"weights": "torchvision"}}, b),
            P.BAD_REQUEST,
            "weights",
        ),
        (
            "unknown_layer",
            ({**h, "params": {"content_layer": "relu9_9"}}, b),
            P.BAD_REQUEST,
            "content_layer",
        ),
        ("bad_preview_every", ({**h, "preview_every": "often"}, b), P.BAD_REQUEST, "preview_every"),
        ("cancel_without_job", ({"type": "cancel", "id": "m"}, []), P.BAD_REQUEST, "job"),
    ]
    return cases


@pytest.mark.parametrize("name,message,code,word", _malformed(), ids=[c[0] for c in _malformed()])
def test_malformed_message_gets_error(
    daemon: DaemonProc, name: str, message: Any, code: str, word: str
) -> None:
    raw = Raw(daemon.endpoint)
    try:
        if isinstance(message, list):
            raw.send_frames(message)
        else:
            raw.send(*message)
        header, _ = raw.recv()
        assert header["type"] == P.ERROR, header
        assert header["code"] == code, header
        assert word in header["message"], header
        if name not in ("not_msgpack", "not_a_map", "missing_id", "mistyped_id"):
            assert header["id"] == "m"
        # The daemon goes on: the same socket still gets answers.
        raw.send({"type": "ping", "id": "after"})
        assert raw.recv_for("after")["type"] == P.PONG
    finally:
        raw.close()


def test_valid_job_after_malformed(client: Client) -> None:
    content, style = images(seed=9)
    out = client.stylize(content, [style], QUICK)
    assert np.array_equal(out[..., 3], content[..., 3])


def test_too_large_refused_without_memory_blow_up(daemon: DaemonProc) -> None:
    raw = Raw(daemon.endpoint)
    rss0, peak0 = daemon.rss_kib(), daemon.rss_kib("VmHWM")
    # A descriptor claiming 30000 x 30000 RGBA f32 (14 GB) with a tiny frame.
    huge = {"width": 30000, "height": 30000, "channels": 4, "dtype": "f32", "frame": 1}
    _, style = images()
    sd, sb = wire(style, 2)
    raw.send({"type": "stylize", "id": "huge", "content": huge, "styles": [sd]}, [b"\0" * 64, sb])
    reply = raw.recv_for("huge")
    assert reply["code"] == P.TOO_LARGE and "content" in reply["message"]
    # A real 1024 x 1024 RGBA image over this daemon's --max-pixels, and a too-large style.
    big = np.zeros((1024, 1024, 4), np.uint8)
    bd, bb = wire(big, 1)
    raw.send({"type": "stylize", "id": "big", "content": bd, "styles": [sd]}, [bb, sb])
    assert raw.recv_for("big")["code"] == P.TOO_LARGE
    raw.send(
        {"type": "stylize", "id": "bigstyle", "content": sd, "styles": [{**bd, "frame": 1}]},
        [bb, sb],
    )
    reply = raw.recv_for("bigstyle")
    assert reply["code"] == P.TOO_LARGE and "styles[0]" in reply["message"]
    time.sleep(0.2)
    grown = daemon.rss_kib() - rss0
    peak_grown = daemon.rss_kib("VmHWM") - peak0
    assert grown < 64 * 1024, f"RSS grew by {grown} KiB"
    assert peak_grown < 64 * 1024, f"peak RSS grew by {peak_grown} KiB"
    raw.send({"type": "ping", "id": "p"})
    assert raw.recv_for("p")["type"] == P.PONG
    raw.close()


# --- transports, endpoints, security, shutdown --------------------------------------------------


def test_bridge_transport_round_trip(daemon: DaemonProc) -> None:
    with connect(Settings(daemon.endpoint, "bridge", timeout_s=20.0)) as c:
        assert c.hello()["protocol"] == 1
        content, style = images(channels=4, dtype=np.uint16)
        seen: list[int] = []
        out = c.stylize(content, [style], QUICK, on_progress=lambda p: seen.append(1))
        assert out.dtype == np.uint16 and np.array_equal(out[..., 3], content[..., 3])
        assert seen


def test_example_client_script(daemon: DaemonProc, tmp_path: Path) -> None:
    out = tmp_path / "out.pam"
    proc = subprocess.run(
        [
            PYTHON,
            str(ROOT / "docs" / "example_client.py"),
            "--endpoint",
            daemon.endpoint,
            "--iterations",
            "2",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "progress" in proc.stdout and out.read_bytes().startswith(b"P7")


def test_no_daemon_clear_error() -> None:
    with Client(f"tcp://127.0.0.1:{free_port()}", timeout_s=0.5) as c:
        with pytest.raises(DaemonUnavailable, match="no style engine answered"):
            c.ping()


@pytest.mark.parametrize("extra", [[], ["--curve-secret-key", "/nonexistent.key_secret"]])
def test_non_loopback_bind_without_keys_refused(extra: list[str]) -> None:
    proc = subprocess.run(
        [*daemon_command(), "--endpoint", f"tcp://0.0.0.0:{free_port()}", *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "CURVE" in proc.stderr or "curve" in proc.stderr
    assert "ready" not in proc.stdout


def test_curve_bind_with_keys(tmp_path: Path) -> None:
    import zmq.auth

    from nst_client.keyfiles import make_keys

    server_pub, server_secret = (str(path) for path in make_keys(tmp_path, "server"))
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    client_pub, client_secret = (str(path) for path in make_keys(allowed, "client"))
    port = free_port()
    d = DaemonProc(
        f"tcp://0.0.0.0:{port}",
        "--curve-secret-key",
        server_secret,
        "--curve-allow",
        str(allowed),
        "--no-warmup",
        "--device",
        "cpu",
    )
    try:
        from nst_client.client import ZmqTransport

        server_key = zmq.auth.load_certificate(server_pub)[0]
        public, secret = zmq.auth.load_certificate(client_secret)
        assert secret is not None
        client_keys = (public, secret)
        good = Client(
            f"tcp://127.0.0.1:{port}",
            timeout_s=10.0,
            transport=ZmqTransport(
                f"tcp://127.0.0.1:{port}",
                curve_server_key=server_key,
                curve_keypair=client_keys,
            ),
        )
        assert good.hello()["protocol"] == 1
        good.close()
        stranger = Client(
            f"tcp://127.0.0.1:{port}",
            timeout_s=1.0,
            transport=ZmqTransport(f"tcp://127.0.0.1:{port}", curve_server_key=server_key),
        )
        with pytest.raises(DaemonUnavailable):
            stranger.ping()
        stranger.close()
    finally:
        assert d.stop() == 0


def test_ipc_endpoint_and_sigterm_cancels_running_job(tmp_path: Path) -> None:
    d = DaemonProc(f"ipc://{tmp_path}/nst.sock", "--no-warmup", "--device", "cpu")
    try:
        with Client(d.endpoint, timeout_s=10.0) as c:
            content, style = images()
            job = c.submit(wire(content), [(wire(style), 1.0)], LONG)
            queued = c.submit(wire(content), [(wire(style), 1.0)], LONG)
            first_progress(c, job)
            d.proc.send_signal(signal.SIGTERM)
            with pytest.raises(JobCancelled):
                c.follow(job, idle_timeout_s=15)
            with pytest.raises(JobCancelled):
                c.follow(queued, idle_timeout_s=15)
            assert d.proc.wait(20) == 0
    finally:
        d.stop()


def test_bad_option_values_refused() -> None:
    proc = subprocess.run(
        [*daemon_command(), "--max-pixels", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "--max-pixels" in proc.stderr


def test_client_error_type(client: Client) -> None:
    content, style = images()
    with pytest.raises(DaemonError) as info:
        client.stylize(content, [style], {"colour": 1})
    assert info.value.code == P.BAD_REQUEST and "colour" in info.value.message


def test_optimisation_failed_is_an_error_and_the_next_job_runs(client: Client) -> None:
    """A job whose cost cannot fall (Adam with a step of 1e-9) fails with its own code."""
    content, style = images()
    with pytest.raises(DaemonError) as info:
        client.stylize(
            content,
            [style],
            {"iterations": 3, "size": 32, "optimizer": "adam", "learning_rate": 1e-9},
        )
    assert info.value.code == P.OPTIMISATION_FAILED
    assert "the cost did not fall" in info.value.message
    out = client.stylize(content, [style], {"iterations": 2, "size": 32})
    assert out.shape == content.shape and not np.array_equal(out, content)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs prlimit (Linux)")
def test_out_of_memory_job_fails_and_daemon_serves_next() -> None:
    """A real allocation failure: the daemon's address space is capped (RLIMIT_AS) after it is
    ready, so a 1024 px job cannot fit; it fails with out_of_memory and the next job runs."""
    import resource

    d = DaemonProc(f"tcp://127.0.0.1:{free_port()}", "--no-warmup", "--device", "cpu")
    try:
        content, style = images()
        with Client(d.endpoint, timeout_s=10.0) as c:
            # Warm first, as a serving daemon is: the small job's kernels and weight casts
            # (bf16 on AMX CPUs) exist before the cap, so only the big job cannot fit.
            assert c.stylize(content, [style], QUICK).shape == content.shape
        limit = (d.rss_kib("VmSize") + 256 * 1024) * 1024
        resource.prlimit(d.proc.pid, resource.RLIMIT_AS, (limit, limit))
        with Client(d.endpoint, timeout_s=10.0) as c:
            big = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
            with pytest.raises(DaemonError) as info:
                c.stylize(
                    big, [big[:64, :64]], {"iterations": 1, "size": "full", "min_scale": 1024}
                )
            assert info.value.code == P.OUT_OF_MEMORY and "size" in info.value.message
            assert c.ping()["type"] == P.PONG
            assert c.stylize(content, [style], QUICK).shape == content.shape
            assert c.status()["jobs_failed"] == 1
    finally:
        assert d.stop() == 0


def test_nst_cli_through_the_daemon_and_status(daemon: DaemonProc, tmp_path: Path) -> None:
    """`nst stylize --daemon` and `nst status`, as a user runs them against the warm daemon."""
    from nst_core.imageio import read_image, write_image

    rng = np.random.default_rng(7)
    content = rng.integers(0, 256, (40, 56, 4), dtype=np.uint8)
    write_image(tmp_path / "c.png", content)
    write_image(tmp_path / "s.png", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    nst = [product.bin_path("nst")]
    r = subprocess.run(
        [
            *nst,
            "stylize",
            str(tmp_path / "c.png"),
            str(tmp_path / "s.png"),
            "-o",
            str(tmp_path / "out.png"),
            "--daemon",
            daemon.endpoint,
            "--size",
            "48",
            "--iterations",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = read_image(tmp_path / "out.png")
    assert out.shape == content.shape and np.array_equal(out[:, :, 3], content[:, :, 3])
    assert "J=" in r.stderr  # the same progress bar as a local run
    r = subprocess.run(
        [
            *nst,
            "stylize",
            str(tmp_path / "c.png"),
            str(tmp_path / "s.png"),
            "-o",
            str(tmp_path / "x.png"),
            "--daemon",
            daemon.endpoint,
            "--weights",
            "torchvision",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "fixed when it starts" in r.stderr
    r = subprocess.run(
        [*nst, "status", "--endpoint", daemon.endpoint], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert "device: cpu" in r.stdout and "jobs_done:" in r.stdout


def test_nst_cli_style_masks_through_the_daemon(daemon: DaemonProc, tmp_path: Path) -> None:
    """`nst stylize --style-masks` on the warm daemon: the masked style only where its mask
    is white, the photo where it is black."""
    from nst_core.imageio import read_image, write_image

    rng = np.random.default_rng(8)
    content = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.zeros((40, 56), np.uint8)
    mask[:, :30] = 255
    write_image(tmp_path / "c.png", content)
    write_image(tmp_path / "s.png", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    write_image(tmp_path / "m.png", mask)
    r = subprocess.run(
        [
            product.bin_path("nst"),
            *("stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png")),
            *("-o", str(tmp_path / "out.png"), "--daemon", daemon.endpoint),
            *("--style-masks", str(tmp_path / "m.png"), "--style-strengths", "70"),
            *("--size", "48", "--iterations", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = read_image(tmp_path / "out.png")
    assert np.array_equal(out[:, 30:], content[:, 30:])
    assert not np.array_equal(out[:, :30], content[:, :30])
