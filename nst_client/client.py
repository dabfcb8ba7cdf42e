"""Client for the NST daemon: one API over two transports, with timeouts everywhere.

`ZmqTransport` talks to the daemon directly (needs pyzmq + msgpack). `BridgeTransport` starts
`python -m nst_client.bridge` from the product's own Python and talks to it over pipes (needs
only the standard library), for editors whose bundled Python lacks pyzmq. Images travel as
(descriptor, bytes) pairs; numpy arrays are accepted where numpy is installed.

No call blocks past its timeout, however the daemon fails (down, unreachable, a CURVE handshake
refused): a request the transport cannot hand over comes back as an `undelivered` notice on
its id, which the Client raises as DaemonUnavailable saying why.
"""

from __future__ import annotations

import itertools
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from . import __version__, endpoints, layouts, pipe
from . import protocol as P
from .progress import Progress
from .settings import CurveKeys, Settings, check_transport

#: An image on the wire: its descriptor and its bytes.
RawImage = tuple[P.ImageDesc, bytes]
ProgressFn = Callable[[Progress], None]
Received = tuple[P.Header, list[bytes]]

#: A transport's notice, on a request's id, that it could not hand the request to the daemon
#: within its send timeout; "message" says why. Never sent to the daemon (the bridge relays it).
UNDELIVERED = "undelivered"
#: The bridge's first message on its stdout: its socket (and keys) are set up.
BRIDGE_READY = "bridge_ready"
#: Where a user sets the CURVE keys, for messages.
CURVE_SETTINGS = (
    "curve_server_key/curve_client_cert (nst: --curve-server-key/--curve-client-cert; "
    "env: NST_CURVE_SERVER_KEY/NST_CURVE_CLIENT_CERT)"
)


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


@dataclass(frozen=True)
class JobResult:
    """A finished job: the image in the content's layout, and the daemon's figures."""

    image: P.ImageDesc
    data: bytes
    stats: P.Stats

    @property
    def raw(self) -> RawImage:
        return self.image, self.data


def unavailable(endpoint: str, timeout_s: float) -> DaemonUnavailable:
    if endpoints.is_local_endpoint(endpoint):
        advice = (
            f"start it with `nst daemon start --endpoint {endpoint}` (the program nst-daemon), "
            "or check the endpoint in the plug-in settings"
        )
    else:
        advice = (
            "check that it runs on that machine and that this one may reach it, or check "
            "the endpoint in the plug-in settings"
        )
    return DaemonUnavailable(
        f"no style engine answered at {endpoint} within {timeout_s:g} s: {advice}"
    )


def version_note(welcome: Mapping[str, Any], reinstall: str) -> str | None:
    """A warning when this copy of the client is not the daemon's version, else None.

    reinstall: the command that brings the plug-in up to date (`nst install-plugin gimp`).
    """
    theirs = welcome.get("version")
    if not isinstance(theirs, str) or theirs == __version__:
        return None
    return (
        f"the plug-in is version {__version__} but the engine is {theirs}: "
        f"reinstall the plug-in with `{reinstall}` and restart the editor"
    )


class Transport(Protocol):
    """Carries whole messages to and from one daemon."""

    def send(self, header: Mapping[str, Any], buffers: Sequence[P.Buffer] = ()) -> None: ...

    def recv(self, timeout_s: float) -> Received | None: ...

    def close(self) -> None: ...


class ZmqTransport:
    """A DEALER socket connected to the daemon's ROUTER; a send never blocks past send_timeout_s.

    IMMEDIATE queues messages only on a connection whose handshake is done and SNDTIMEO bounds
    the wait for one, so a daemon that is down, or that refused our CURVE handshake, costs one
    timeout per send (without them a send after a failed handshake blocked forever). The
    socket monitor remembers why the last handshake failed, for the `undelivered` notice.
    A transport handed to Client keeps its own send_timeout_s; connect() gives it the client's.
    """

    def __init__(
        self,
        endpoint: str = P.DEFAULT_ENDPOINT,
        curve_server_key: bytes | None = None,
        curve_keypair: tuple[bytes, bytes] | None = None,
        send_timeout_s: float = 5.0,
    ) -> None:
        import zmq

        self.endpoint = endpoint
        self.send_timeout_s = send_timeout_s
        self.curve = curve_server_key is not None
        self.own_keys = curve_keypair is not None
        self._sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        self._sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        self._sock.setsockopt(zmq.IMMEDIATE, 1)
        self._sock.setsockopt(zmq.SNDTIMEO, max(1, int(send_timeout_s * 1000)))
        if curve_server_key is not None:
            public, secret = curve_keypair or zmq.curve_keypair()
            self._sock.setsockopt(zmq.CURVE_SERVERKEY, curve_server_key)
            self._sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
            self._sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
        self._monitor: zmq.Socket[bytes] = self._sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        )
        #: (event, value) of the last failed handshake; None once one succeeds.
        self._handshake_failure: tuple[int, int] | None = None
        self._notices: list[Received] = []
        self._sock.connect(endpoint)

    def send(self, header: Mapping[str, Any], buffers: Sequence[P.Buffer] = ()) -> None:
        import zmq

        try:
            self._sock.send_multipart(P.pack(header, buffers), copy=False)
        except zmq.Again:
            notice = {"type": UNDELIVERED, "id": header.get("id"), "message": self.why_unsent()}
            self._notices.append((notice, []))

    def why_unsent(self) -> str:
        """Why nothing could be sent: the last handshake failure, in words for the user."""
        import zmq
        from zmq.utils.monitor import recv_monitor_message

        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_failure = None
            else:
                self._handshake_failure = (event["event"], event["value"])
        where = f"the NST daemon at {self.endpoint}"
        kind, value = self._handshake_failure or (None, 0)
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            fix = (
                "put this client's public certificate (client.key) in the daemon's "
                "--curve-allow folder"
                if self.own_keys
                else "it accepts only the keys in its --curve-allow folder, so give this "
                "client's secret certificate (client.key_secret) as curve_client_cert "
                "(nst: --curve-client-cert) and put its client.key in that folder"
            )
            return f"{where} refused this client's CURVE key: {fix}"
        if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and (
            value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
        ):
            if self.curve:
                return f"{where} does not use CURVE keys: remove {CURVE_SETTINGS}"
            return f"{where} requires CURVE keys: set {CURVE_SETTINGS}"
        if kind is not None and not self.curve:
            # The daemon often sees the mismatch first and hangs up: no detail on this side.
            return (
                f"{where} ended the handshake: it most likely requires CURVE keys: "
                f"set {CURVE_SETTINGS}"
            )
        if kind is not None and self.curve:
            return (
                f"the CURVE handshake with {where} failed: curve_server_key must be the "
                "daemon's public key (the server.key beside its --curve-secret-key)"
            )
        message = str(unavailable(self.endpoint, self.send_timeout_s))
        if self.curve:
            message += "; with CURVE, check the keys are right and allowed by the daemon"
        return message

    def recv(self, timeout_s: float) -> Received | None:
        if self._notices:
            return self._notices.pop(0)
        if not self._sock.poll(int(timeout_s * 1000)):
            return None
        frames = self._sock.recv_multipart(copy=False)
        header, buffers = P.unpack([f.buffer for f in frames])
        return header, [bytes(b) for b in buffers]

    def close(self) -> None:
        self._sock.disable_monitor()
        self._monitor.close(0)
        self._sock.close(0)


class BridgeTransport:
    """Pipes to `python -m nst_client.bridge`, which relays to the daemon over ZeroMQ.

    The key files go to the bridge as paths (a secret key never appears on a command line)
    and the bridge reads them with the same reader as the zmq transport.
    """

    #: The bridge's send timeout, as a share of the client's: its `undelivered` notice (which
    #: says why) must arrive before the client stops waiting for a reply.
    SEND_TIMEOUT_SHARE = 0.8
    #: The longest wait for the bridge's ready message (a cold Python start can be slow).
    START_TIMEOUT_S = 10.0

    def __init__(
        self,
        endpoint: str,
        python: str | Sequence[str],
        timeout_s: float = 5.0,
        curve_server_key: str | None = None,
        curve_client_cert: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        # python: the product's Python, or a command line ending in it (a sandbox's prefix).
        cmd = [python] if isinstance(python, str) else list(python)
        cmd += ["-m", "nst_client.bridge", "--endpoint", endpoint]
        cmd += ["--send-timeout", f"{timeout_s * self.SEND_TIMEOUT_SHARE:g}"]
        if curve_server_key:
            cmd += ["--curve-server-key", curve_server_key]
        if curve_client_cert:
            cmd += ["--curve-client-cert", curve_client_cert]
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, creationflags=flags
            )
        except OSError as exc:
            raise DaemonUnavailable(f"cannot start the bridge {cmd[0]!r}: {exc}") from exc
        self._inbox: queue.Queue[Received | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self._wait_ready(cmd, max(timeout_s, self.START_TIMEOUT_S))

    def _wait_ready(self, cmd: list[str], timeout_s: float) -> None:
        """Wait for the bridge's ready message, so that no request's timeout includes the
        bridge's start; DaemonUnavailable if it exits first. A bridge older than the ready
        message sends none: it only costs this wait."""
        try:
            item = self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            return
        if item is None:
            code = self._proc.wait()
            shown = " ".join(cmd[: cmd.index("-m") + 2])
            raise DaemonUnavailable(f"the bridge `{shown}` exited with code {code}")

    def _read_loop(self) -> None:
        assert self._proc.stdout is not None
        try:
            while True:
                self._inbox.put(pipe.read_message(self._proc.stdout))
        except (EOFError, OSError, ValueError):
            self._inbox.put(None)

    def send(self, header: Mapping[str, Any], buffers: Sequence[P.Buffer] = ()) -> None:
        assert self._proc.stdin is not None
        try:
            pipe.write_message(self._proc.stdin, header, buffers)
        except OSError as exc:
            raise DaemonUnavailable(f"the bridge process exited: {exc}") from exc

    def recv(self, timeout_s: float) -> Received | None:
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
        transport: Transport | None = None,
        timeout_s: float = 5.0,
        client_name: str = "nst-client",
    ) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.client_name = client_name
        self._transport: Transport = transport or ZmqTransport(endpoint, send_timeout_s=timeout_s)
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]
        self._stash: list[Received] = []
        #: ids whose replies nobody waits for any more (pings of a finished follow): dropped.
        self._orphans: set[str] = set()

    # -- plumbing -------------------------------------------------------------------------
    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def send(self, message: P.Request, buffers: Sequence[P.Buffer] = ()) -> str:
        self._transport.send(message, buffers)
        return message["id"]

    def receive(self, request_id: str, timeout_s: float) -> Received | None:
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
            got = item[0].get("id")
            if got == request_id:
                return item
            if isinstance(got, str) and got in self._orphans:
                self._orphans.discard(got)
                continue
            self._stash.append(item)

    def request(
        self, message: P.Request, buffers: Sequence[P.Buffer] = (), timeout_s: float | None = None
    ) -> Received:
        """Send a one-reply request; DaemonUnavailable if nothing answers in time."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        request_id = self.send(message, buffers)
        reply = self.receive(request_id, timeout)
        if reply is None:
            raise unavailable(self.endpoint, timeout)
        if reply[0].get("type") == UNDELIVERED:
            raise _undelivered(reply[0])
        if reply[0].get("type") == P.ERROR:
            raise _daemon_error(reply[0])
        return reply

    # -- requests -------------------------------------------------------------------------
    def hello(self) -> P.Welcome:
        # Replies are trusted to have their documented shape once their type is right.
        return cast(P.Welcome, self.request(P.hello(self.new_id(), self.client_name))[0])

    def ping(self) -> P.Pong:
        return cast(P.Pong, self.request(P.ping(self.new_id()))[0])

    def status(self) -> P.Status:
        return cast(P.Status, self.request(P.status_request(self.new_id()))[0])

    def cancel(self, job_id: str) -> None:
        """Ask the daemon to cancel a job; its `cancelled` reply arrives on the job's id."""
        self.send(P.cancel(self.new_id(), job_id))

    def submit(
        self,
        content: RawImage,
        styles: Sequence[tuple[RawImage, float]],
        params: Mapping[str, Any] | None = None,
        preview_every: int = 0,
    ) -> str:
        """Send a stylize request; returns its job id. Follow it with `follow`."""
        buffers = [content[1]] + [data for (_, data), _ in styles]
        style_descs: list[P.StyleDesc] = [
            {**_descriptor(desc, i), "weight": float(weight)}
            for i, ((desc, _), weight) in enumerate(styles, start=2)
        ]
        message = P.stylize(
            self.new_id(), _descriptor(content[0], 1), style_descs, params or {}, preview_every
        )
        return self.send(message, buffers)

    def follow(
        self,
        job_id: str,
        on_progress: ProgressFn | None = None,
        should_cancel: Callable[[], bool] | None = None,
        idle_timeout_s: float = 30.0,
        poll_s: float = 0.1,
    ) -> JobResult:
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
                pong = self.receive(ping_id, 0) if ping_id is not None else None
                if pong is not None:
                    ping_id, last_heard = None, now
                    if pong[0].get("type") == UNDELIVERED:
                        raise _undelivered(pong[0])
                if ping_id is None and now - last_ping >= 1.0:
                    ping_id, last_ping = self.send(P.ping(self.new_id())), now
                if item is None:
                    if now - last_heard > idle_timeout_s:
                        raise unavailable(self.endpoint, idle_timeout_s)
                    continue
                last_heard = now
                result = self._on_job_message(job_id, item, on_progress)
                if result is not None:
                    return result
        finally:
            if ping_id is not None and self.receive(ping_id, 0) is None:
                self._orphans.add(ping_id)

    @staticmethod
    def _on_job_message(
        job_id: str, item: Received, on_progress: ProgressFn | None
    ) -> JobResult | None:
        """One message of a job: relay progress, return the result, raise on the others."""
        header, buffers = item
        kind = header.get("type")
        if kind == P.PROGRESS:
            if on_progress is not None:
                on_progress(Progress.from_message(header, buffers))
        elif kind == P.RESULT:
            image = header.get("image")
            if not isinstance(image, dict):
                raise DaemonError(P.INTERNAL, "the result carries no image descriptor")
            desc = layouts.check_descriptor(image, "result.image")
            if not 1 <= desc["frame"] <= len(buffers):
                raise DaemonError(P.INTERNAL, "the result's image frame is missing")
            data = buffers[desc["frame"] - 1]
            layouts.check_buffer(desc, data, "result.image")
            return JobResult(desc, data, cast(P.Stats, header.get("stats") or {}))
        elif kind == P.CANCELLED:
            raise JobCancelled(f"job {job_id} was cancelled")
        elif kind == UNDELIVERED:
            raise _undelivered(header)
        elif kind == P.ERROR:
            raise _daemon_error(header)
        return None

    def stylize_raw(
        self,
        content: RawImage,
        styles: Sequence[tuple[RawImage, float]],
        params: Mapping[str, Any] | None = None,
        *,
        on_progress: ProgressFn | None = None,
        should_cancel: Callable[[], bool] | None = None,
        preview_every: int = 0,
        idle_timeout_s: float = 30.0,
    ) -> JobResult:
        job_id = self.submit(content, styles, params, preview_every)
        return self.follow(job_id, on_progress, should_cancel, idle_timeout_s)

    def stylize(
        self,
        content: Any,
        styles: Sequence[Any],
        params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """numpy in, numpy out: content (H, W, C) and styles as arrays or (array, weight)."""
        pairs = [s if isinstance(s, tuple) else (s, 1.0) for s in styles]
        raw_styles = [(layouts.from_array(a, 0), float(w)) for a, w in pairs]
        done = self.stylize_raw(layouts.from_array(content, 0), raw_styles, params, **kwargs)
        return layouts.to_array(done.image, done.data)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _daemon_error(header: P.Header) -> DaemonError:
    code, message = header.get("code"), header.get("message")
    return DaemonError(
        code if isinstance(code, str) else P.INTERNAL, message if isinstance(message, str) else ""
    )


def _undelivered(header: P.Header) -> DaemonUnavailable:
    message = header.get("message")
    return DaemonUnavailable(message if isinstance(message, str) else "the daemon is unreachable")


def _descriptor(desc: P.ImageDesc, frame: int) -> P.ImageDesc:
    """The wire descriptor of an image at a frame index (extra keys dropped)."""
    return layouts.describe(desc["width"], desc["height"], desc["channels"], desc["dtype"], frame)


def zmq_transport(settings: Settings) -> ZmqTransport:
    """A socket to the settings' endpoint with their CURVE keys, its sends bounded by their
    timeout; SettingsError if a key file cannot be used. Used by connect and the bridge."""
    keys: CurveKeys | None = settings.curve_keys()
    return ZmqTransport(
        settings.endpoint,
        keys.server_key if keys else None,
        keys.client_keypair if keys else None,
        send_timeout_s=settings.timeout_s,
    )


def bridge_transport(settings: Settings) -> BridgeTransport:
    """A bridge to the settings' endpoint; a bad key file is a SettingsError here rather than
    a bridge that exits (the bridge reads the files itself: only paths cross the pipe)."""
    settings.curve_keys()
    return BridgeTransport(
        settings.endpoint,
        settings.bridge_command(),
        settings.timeout_s,
        settings.curve_server_key,
        settings.curve_client_cert,
    )


def connect(settings: Settings | None = None, client_name: str = "nst-client") -> Client:
    """A Client on the settings' transport: 'zmq', 'bridge', or 'auto' (zmq when importable),
    with the settings' CURVE keys; SettingsError when a key file cannot be used."""
    settings = settings or Settings()
    transport = check_transport(settings.resolved_transport())
    link: Transport
    if transport == "zmq":
        link = zmq_transport(settings)
    else:
        link = bridge_transport(settings)
    return Client(
        settings.endpoint, transport=link, timeout_s=settings.timeout_s, client_name=client_name
    )
