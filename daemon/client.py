"""Client for the NST daemon: one API over two transports, with timeouts everywhere.

`ZmqTransport` talks to the daemon directly (needs pyzmq + msgpack). `BridgeTransport` starts
`python -m nst_daemon.bridge` from the product's own Python and talks to it over pipes (needs
only the standard library), for editors whose bundled Python lacks pyzmq. Images travel as
(descriptor, bytes) pairs; numpy arrays are accepted where numpy is installed.
"""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from . import protocol as P

Header = dict[str, Any]
#: An image on the wire: its descriptor (width, height, channels, dtype) and its bytes.
RawImage = tuple[dict[str, Any], bytes]
ProgressFn = Callable[[Header], None]


class DaemonUnavailable(ConnectionError):
    """No daemon answered within the timeout."""


class DaemonError(RuntimeError):
    """The daemon answered a request with an `error` reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class JobCancelled(RuntimeError):
    """The job ended with `cancelled`."""


def _unavailable(endpoint: str, timeout_s: float) -> DaemonUnavailable:
    return DaemonUnavailable(
        f"no NST daemon answered at {endpoint} within {timeout_s:g} s; start one with "
        f"`nst-daemon --endpoint {endpoint}` (or check the endpoint in the plug-in settings)"
    )


class ZmqTransport:
    """A DEALER socket connected to the daemon's ROUTER."""

    def __init__(
        self,
        endpoint: str = P.DEFAULT_ENDPOINT,
        curve_server_key: bytes | None = None,
        curve_keypair: tuple[bytes, bytes] | None = None,
    ) -> None:
        import zmq

        self.endpoint = endpoint
        self._zmq = zmq
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        self._sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        if curve_server_key is not None:
            public, secret = curve_keypair or zmq.curve_keypair()
            self._sock.curve_serverkey = curve_server_key
            self._sock.curve_publickey = public
            self._sock.curve_secretkey = secret
        self._sock.connect(endpoint)

    def send(self, header: Header, buffers: Sequence[bytes] = ()) -> None:
        self._sock.send_multipart(P.pack(header, list(buffers)), copy=False)

    def recv(self, timeout_s: float) -> tuple[Header, list[bytes]] | None:
        if not self._sock.poll(int(timeout_s * 1000)):
            return None
        frames = self._sock.recv_multipart(copy=False)
        header, buffers = P.unpack([f.buffer for f in frames])
        return header, [bytes(b) for b in buffers]

    def close(self) -> None:
        self._sock.close(0)


def default_bridge_python() -> str:
    """The interpreter that runs the bridge: $NST_PYTHON, else this one."""
    return os.environ.get("NST_PYTHON") or sys.executable


class BridgeTransport:
    """Pipes to `python -m nst_daemon.bridge`, which relays to the daemon over ZeroMQ."""

    def __init__(self, endpoint: str = P.DEFAULT_ENDPOINT, python: str | None = None) -> None:
        self.endpoint = endpoint
        cmd = [python or default_bridge_python(), "-m", "nst_daemon.bridge", "--endpoint", endpoint]
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, creationflags=flags
            )
        except OSError as exc:
            raise DaemonUnavailable(f"cannot start the bridge {cmd[0]!r}: {exc}") from exc
        self._inbox: queue.Queue[tuple[Header, list[bytes]] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        assert self._proc.stdout is not None
        try:
            while True:
                self._inbox.put(P.read_pipe_message(self._proc.stdout))
        except (EOFError, OSError, ValueError):
            self._inbox.put(None)

    def send(self, header: Header, buffers: Sequence[bytes] = ()) -> None:
        assert self._proc.stdin is not None
        try:
            P.write_pipe_message(self._proc.stdin, header, list(buffers))
        except (BrokenPipeError, OSError) as exc:
            raise DaemonUnavailable(f"the bridge process exited: {exc}") from exc

    def recv(self, timeout_s: float) -> tuple[Header, list[bytes]] | None:
        try:
            item = self._inbox.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return None
        if item is None:
            self._inbox.put(None)
            raise DaemonUnavailable(f"the bridge process exited (code {self._proc.poll()})")
        return item

    def close(self) -> None:
        if self._proc.stdin:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        try:
            self._proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self._proc.kill()


class Client:
    """Requests to one daemon. Not thread-safe: use one Client per thread."""

    def __init__(
        self,
        endpoint: str = P.DEFAULT_ENDPOINT,
        *,
        transport: Any = None,
        timeout_s: float = 5.0,
        client_name: str = "nst-client",
    ) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.client_name = client_name
        self._transport = transport or ZmqTransport(endpoint)
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]
        self._stash: list[tuple[Header, list[bytes]]] = []
        #: ids whose replies nobody waits for any more (pings of a finished follow): dropped.
        self._orphans: set[str] = set()

    # -- plumbing -------------------------------------------------------------------------
    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def send(self, header: Header, buffers: Sequence[bytes] = ()) -> str:
        header.setdefault("id", self.new_id())
        self._transport.send(header, buffers)
        return header["id"]

    def receive(self, request_id: str, timeout_s: float) -> tuple[Header, list[bytes]] | None:
        """Next message for request_id within timeout_s (others are kept for later)."""
        for i, (header, buffers) in enumerate(self._stash):
            if header.get("id") == request_id:
                del self._stash[i]
                return header, buffers
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            item = self._transport.recv(left)
            if item is None:
                return None
            if item[0].get("id") == request_id:
                return item
            if item[0].get("id") in self._orphans:
                self._orphans.discard(item[0]["id"])
                continue
            self._stash.append(item)

    def request(
        self, header: Header, buffers: Sequence[bytes] = (), timeout_s: float | None = None
    ) -> tuple[Header, list[bytes]]:
        """Send a one-reply request; DaemonUnavailable if nothing answers in time."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        request_id = self.send(header, buffers)
        reply = self.receive(request_id, timeout)
        if reply is None:
            raise _unavailable(self.endpoint, timeout)
        if reply[0].get("type") == P.ERROR:
            raise DaemonError(reply[0].get("code", P.INTERNAL), reply[0].get("message", ""))
        return reply

    # -- requests -------------------------------------------------------------------------
    def hello(self) -> Header:
        return self.request(
            {"type": P.HELLO, "protocol": P.PROTOCOL_VERSION, "client": self.client_name}
        )[0]

    def ping(self) -> Header:
        return self.request({"type": P.PING})[0]

    def status(self) -> Header:
        return self.request({"type": P.STATUS})[0]

    def cancel(self, job_id: str) -> None:
        """Ask the daemon to cancel a job; its `cancelled` reply arrives on the job's id."""
        self.send({"type": P.CANCEL, "job": job_id})

    def submit(
        self,
        content: RawImage,
        styles: Sequence[tuple[RawImage, float]],
        params: dict[str, Any] | None = None,
        preview_every: int = 0,
    ) -> str:
        """Send a stylize request; returns its job id. Follow it with `follow`."""
        buffers = [content[1]]
        header: Header = {
            "type": P.STYLIZE,
            "params": dict(params or {}),
            "content": {**_bare(content[0]), "frame": 1},
            "styles": [],
        }
        for (desc, data), weight in styles:
            buffers.append(data)
            header["styles"].append({**_bare(desc), "frame": len(buffers), "weight": float(weight)})
        if preview_every:
            header["preview_every"] = int(preview_every)
        return self.send(header, buffers)

    def follow(
        self,
        job_id: str,
        on_progress: ProgressFn | None = None,
        should_cancel: Callable[[], bool] | None = None,
        idle_timeout_s: float = 30.0,
        poll_s: float = 0.1,
    ) -> RawImage:
        """Wait for a job's result, relaying progress; cancels when should_cancel() is true.

        While waiting it pings the daemon every second (progress or not): the daemon cancels
        the jobs of a client it has not heard from for its --client-timeout, and a daemon that
        died is noticed here within idle_timeout_s.
        """
        cancel_sent = False
        last_heard = last_ping = time.monotonic()
        ping_id: str | None = None
        try:
            while True:
                if should_cancel is not None and not cancel_sent and should_cancel():
                    self.cancel(job_id)
                    cancel_sent = True
                item = self.receive(job_id, poll_s)
                now = time.monotonic()
                if ping_id is not None and self.receive(ping_id, 0) is not None:
                    ping_id, last_heard = None, now
                if ping_id is None and now - last_ping >= 1.0:
                    ping_id, last_ping = self.send({"type": P.PING}), now
                if item is None:
                    if now - last_heard > idle_timeout_s:
                        raise _unavailable(self.endpoint, idle_timeout_s)
                    continue
                result = self._on_job_message(job_id, item, on_progress)
                last_heard = now
                if result is not None:
                    return result
        finally:
            if ping_id is not None and self.receive(ping_id, 0) is None:
                self._orphans.add(ping_id)

    def _on_job_message(
        self, job_id: str, item: tuple[Header, list[bytes]], on_progress: ProgressFn | None
    ) -> RawImage | None:
        """One message of a job: relay progress, return the result, raise on the others."""
        header, buffers = item
        kind = header.get("type")
        if kind == P.PROGRESS:
            if on_progress is not None:
                preview = header.get("preview")
                if isinstance(preview, dict):
                    header["preview_image"] = (preview, buffers[preview["frame"] - 1])
                on_progress(header)
        elif kind == P.RESULT:
            desc = header["image"]
            out = (dict(desc), buffers[desc["frame"] - 1])
            out[0]["stats"] = header.get("stats", {})
            return out
        elif kind == P.CANCELLED:
            raise JobCancelled(f"job {job_id} was cancelled")
        elif kind == P.ERROR:
            raise DaemonError(header.get("code", P.INTERNAL), header.get("message", ""))
        return None

    def stylize_raw(
        self,
        content: RawImage,
        styles: Sequence[tuple[RawImage, float]],
        params: dict[str, Any] | None = None,
        *,
        on_progress: ProgressFn | None = None,
        should_cancel: Callable[[], bool] | None = None,
        preview_every: int = 0,
        idle_timeout_s: float = 30.0,
    ) -> RawImage:
        job_id = self.submit(content, styles, params, preview_every)
        return self.follow(job_id, on_progress, should_cancel, idle_timeout_s)

    def stylize(
        self,
        content: Any,
        styles: Sequence[Any],
        params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """numpy in, numpy out: content (H, W, C) and styles as arrays or (array, weight)."""
        try:
            from nst_core import layouts
        except ImportError:  # the copy vendored next to this module inside a plug-in
            from . import layouts  # type: ignore[no-redef]

        pairs = [s if isinstance(s, tuple) else (s, 1.0) for s in styles]
        raw_styles = [(layouts.from_array(a, 0), w) for a, w in pairs]
        desc, data = self.stylize_raw(layouts.from_array(content, 0), raw_styles, params, **kwargs)
        return layouts.to_array(desc, data)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bare(desc: dict[str, Any]) -> dict[str, Any]:
    return {k: desc[k] for k in ("width", "height", "channels", "dtype")}


def connect(
    endpoint: str = P.DEFAULT_ENDPOINT,
    transport: str = "auto",
    python: str | None = None,
    timeout_s: float = 5.0,
    client_name: str = "nst-client",
) -> Client:
    """A Client on the best transport: 'zmq', 'bridge', or 'auto' (zmq when importable)."""
    if transport == "auto":
        try:
            import msgpack  # noqa: F401
            import zmq  # noqa: F401

            transport = "zmq"
        except ImportError:
            transport = "bridge"
    if transport == "zmq":
        return Client(
            endpoint, transport=ZmqTransport(endpoint), timeout_s=timeout_s, client_name=client_name
        )
    if transport == "bridge":
        return Client(
            endpoint,
            transport=BridgeTransport(endpoint, python),
            timeout_s=timeout_s,
            client_name=client_name,
        )
    raise ValueError(f"transport must be auto, zmq or bridge, not {transport!r}")
