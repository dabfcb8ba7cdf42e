"""How a Client's messages reach the daemon. `ZmqTransport` talks to it directly (needs
pyzmq + msgpack). `BridgeTransport` starts `python -m nst_client.bridge` from the product's
own Python and talks to it over pipes (needs only the standard library), for editors whose
bundled Python lacks pyzmq. What either accepts is bounded (MAX_FRAME_BYTES, the pipe's own
limits)."""

from __future__ import annotations

import queue
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from . import pipe
from . import protocol as P
from .engine_words import MAX_OWN_SHOWN, plain
from .errors import CURVE_SETTINGS, DaemonUnavailable, unavailable
from .settings import CurveKeys, Settings, SettingsError, read_curve_keys
from .spawn import clean_env, start_folder

Received = tuple[P.Header, list[bytes]]

#: A transport's notice, on a request's id, that it could not hand the request to the daemon
#: within its send timeout; "message" says why. Never sent to the daemon (the bridge relays it).
UNDELIVERED = "undelivered"
#: The bridge's first message on its stdout: its socket (and keys) are set up.
BRIDGE_READY = "bridge_ready"
#: The bridge's first and last message when its settings cannot be used ("message" says why).
BRIDGE_FAILED = "bridge_failed"
#: The largest frame a client takes: an f32 RGBA image at the daemons' default pixel limit.
MAX_FRAME_BYTES = P.max_frame_bytes(P.DEFAULT_MAX_PIXELS)


class Transport(Protocol):
    """Carries whole messages to and from one daemon."""

    def send(self, header: Mapping[str, Any], buffers: Sequence[P.Buffer] = ()) -> None: ...

    def recv(self, timeout_s: float) -> Received | None: ...

    def close(self) -> None: ...


def use_keys(sock: Any, keys: CurveKeys | None) -> None:
    """Set a client socket's CURVE keys before it connects (a throwaway pair where keys name
    none; nothing for None). Scripts with a socket of their own use it with
    `Settings(endpoint=...).curve_keys()`, which finds the user's local keys."""
    import zmq

    if keys is None:
        return
    public, secret = keys.client_keypair or zmq.curve_keypair()
    sock.setsockopt(zmq.CURVE_SERVERKEY, keys.server_key)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)


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
        local_keys: bool = False,
    ) -> None:
        import zmq

        self.endpoint = endpoint
        self.send_timeout_s = send_timeout_s
        self.curve = curve_server_key is not None
        #: The keys are the user's own for the local engine: a failed handshake means the
        #: listener is not that engine (another user's program, or an engine of other keys).
        self.local_keys = local_keys and self.curve
        self.own_keys = curve_keypair is not None
        self._sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        self._sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        self._sock.setsockopt(zmq.IMMEDIATE, 1)
        self._sock.setsockopt(zmq.SNDTIMEO, max(1, int(send_timeout_s * 1000)))
        # A larger frame than any daemon sends ends the connection before it is allocated.
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES + P.CURVE_FRAME_BYTES)
        if curve_server_key is not None:
            use_keys(self._sock, CurveKeys(curve_server_key, curve_keypair))
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
        if kind is not None and self.local_keys:
            return self._not_own_engine(kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH)
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

    def _not_own_engine(self, refused_key: bool) -> str:
        """Why a handshake with the user's local keys failed, in the user's words."""
        if refused_key:
            # Only a holder of the engine's secret gets as far as judging the client's key.
            return (
                f"your style engine at {self.endpoint} does not accept the client key in your "
                "settings folder (it was replaced while the engine ran): end that engine (it "
                "exits after its idle time) and the next job starts one that does"
            )
        return (
            f"the process at {self.endpoint} is not your style engine: it does not hold your "
            "engine's key, so another user's program may hold the address (or an engine of "
            "yours from before your keys were made anew). Nothing was sent to it. Stop that "
            "program, or give your engine another address (an engine served with an "
            f"administrator's keys needs them: set {CURVE_SETTINGS})"
        )

    def recv(self, timeout_s: float) -> Received | None:
        if self._notices:
            return self._notices.pop(0)
        if not self._sock.poll(int(timeout_s * 1000)):
            return None
        frames = self._sock.recv_multipart(copy=False)
        try:
            header, buffers = P.unpack([f.buffer for f in frames])
        except P.ProtocolError:
            return None  # not a message of the protocol: dropped, as if none came
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
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                creationflags=flags,
                cwd=start_folder(),  # nothing imported from the editor's current folder
                env=clean_env(),
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
        if item is not None and item[0].get("type") == BRIDGE_FAILED:
            self.close()
            raise SettingsError(plain(item[0].get("message"), MAX_OWN_SHOWN))
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


def zmq_transport(settings: Settings) -> ZmqTransport:
    """A socket to the settings' endpoint with their CURVE keys, its sends bounded by their
    timeout; SettingsError if a key file cannot be used. Used by connect and the bridge."""
    keys: CurveKeys | None = settings.curve_keys()
    return ZmqTransport(
        settings.endpoint,
        keys.server_key if keys else None,
        keys.client_keypair if keys else None,
        send_timeout_s=settings.timeout_s,
        local_keys=bool(keys and keys.local),
    )


def bridge_transport(settings: Settings) -> BridgeTransport:
    """A bridge to the settings' endpoint; a bad key file is a SettingsError here rather than
    a bridge that exits (the bridge reads the files itself: only paths cross the pipe, and it
    finds the user's local keys itself, making them where this Python could not)."""
    read_curve_keys(settings.curve_server_key, settings.curve_client_cert)
    return BridgeTransport(
        settings.endpoint,
        settings.bridge_command(),
        settings.timeout_s,
        settings.curve_server_key,
        settings.curve_client_cert,
    )
