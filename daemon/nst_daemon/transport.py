"""The daemon's socket: which endpoints it may bind, CURVE, and the one send to a client.

A non-loopback endpoint faces the network and is served only with CURVE encryption and an
allow-list of client keys. A loopback TCP endpoint, which every user of the machine can reach,
is served with CURVE too, by default with the user's local keys (keyfiles.local_keys): only a
client holding the user's client secret gets in. An ipc:// socket is guarded by its folder.
A send to a client that has gone returns False instead of raising, so every caller handles a
vanished peer the same way.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

import zmq

from nst_client import keyfiles
from nst_client import protocol as P
from nst_client.endpoints import ipc_path, is_local_endpoint, is_loopback_tcp

log = logging.getLogger("nst_daemon")

#: How long close() keeps the connections open after the last message sent. A client's
#: DEALER connects with ZMQ_IMMEDIATE, and libzmq then discards what it received but the
#: application has not read yet when the connection drops: a shutdown's last `cancelled`
#: or `bye` was lost that way (seen under load: the client saw no answer at all).
CLOSE_GRACE_S = 0.5


class SetupError(Exception):
    """The daemon cannot start with these options; the message says why."""


def check_endpoint(endpoint: str) -> None:
    """Reject endpoints ZeroMQ would take but the daemon does not serve (e.g. pgm://)."""
    if not endpoint.startswith(("tcp://", "ipc://", "inproc://")):
        raise SetupError(f"--endpoint {endpoint!r}: expected tcp://HOST:PORT or ipc://PATH")


def refuse_live_ipc(endpoint: str) -> None:
    """SetupError when something already serves this ipc:// path.

    Binding it anyway would take the path from the running daemon (ZeroMQ unlinks the old
    socket file), which would go on holding its model with no way to reach it. A tcp port
    in use is refused by bind itself. The holder's pid comes from SO_PEERCRED (Linux).
    """
    path = ipc_path(endpoint)
    if path is None or not hasattr(socket, "AF_UNIX"):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return  # nobody listening (a stale file is replaced by bind)
    holder = ""
    peercred = getattr(socket, "SO_PEERCRED", None)
    try:
        if peercred is not None:
            pid = struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, peercred, 12))[0]
            holder = f" by pid {pid}" if pid > 0 else ""
    finally:
        probe.close()
    raise SetupError(
        f"{endpoint} is already served{holder}: another nst-daemon may be running there "
        f"(`nst status --endpoint {endpoint}` asks it); stop it or choose another path"
    )


class RouterSocket:
    """The daemon's ROUTER socket, bound under the endpoint policy; main thread only."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoint: str,
        curve_secret_key: str | None = None,
        curve_allow: str | None = None,
        max_frame_bytes: int = P.max_frame_bytes(P.DEFAULT_MAX_PIXELS),
    ) -> None:
        check_endpoint(endpoint)
        curve = bool(curve_secret_key or curve_allow)
        if curve and not (curve_secret_key and curve_allow):
            raise SetupError("CURVE needs both --curve-secret-key and --curve-allow")
        if not is_local_endpoint(endpoint) and not curve:
            raise SetupError(
                f"refusing to bind {endpoint}: it is not a loopback or ipc endpoint, and "
                f"serving the network needs CURVE encryption. Give --curve-secret-key "
                f"SERVER.key_secret and --curve-allow DIR (client public .key files, made with "
                f"`nst keys`), or bind tcp://127.0.0.1:PORT / ipc://PATH"
            )
        refuse_live_ipc(endpoint)
        self.endpoint = endpoint
        self._auth: Any = None
        #: time.monotonic() of the last message handed to ZeroMQ (close() waits after it).
        self.last_sent_at = -CLOSE_GRACE_S
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 500)
        # ZeroMQ drops a peer that sends a larger frame before any of it is kept.
        sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes + P.CURVE_FRAME_BYTES)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a vanished peer shows as EHOSTUNREACH
        sock.setsockopt(zmq.SNDHWM, 10000)
        sock.setsockopt(zmq.RCVHWM, 1000)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        self.sock = sock
        try:
            if curve_secret_key and curve_allow:
                self._auth = _setup_curve(ctx, sock, *_named_keys(curve_secret_key, curve_allow))
            elif is_loopback_tcp(endpoint):
                self._auth = _setup_curve(ctx, sock, *_local_keys())
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self.close(linger_ms=0)
            raise SetupError(f"cannot bind {endpoint}: {exc}") from None
        except SetupError:
            self.close(linger_ms=0)
            raise

    def recv(self) -> list[zmq.Frame] | None:
        """One waiting message ([client id, header, *buffers]) or None."""
        try:
            return self.sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None

    def send(
        self, client: bytes, header: Mapping[str, Any], buffers: Sequence[P.Buffer] = ()
    ) -> bool:
        """Send one message to a client; False when the client is gone."""
        return self.send_frames([client, *P.pack(header, buffers)])

    def send_frames(self, frames: Sequence[Any]) -> bool:
        """Send [client id, header, *buffers] as packed; False when the client is gone."""
        return self.send_tracked(frames, track=False)[0]

    def send_tracked(
        self, frames: Sequence[Any], track: bool = True
    ) -> tuple[bool, zmq.MessageTracker | None]:
        """send_frames, with (for frames made with track=True) the tracker that says when
        ZeroMQ has let the message go: (False, None) when the client is gone."""
        client = bytes(frames[0])
        try:
            # pyzmq tracks a message only through its own frames: the leading ones go
            # untracked, the last carries the tracker (ZeroMQ sends a message whole anyway).
            for frame in frames[:-1]:
                self.sock.send(frame, flags=zmq.NOBLOCK | zmq.SNDMORE, copy=False)
            tracker = self.sock.send(frames[-1], flags=zmq.NOBLOCK, copy=False, track=track)
            self.last_sent_at = time.monotonic()
            return True, tracker
        except zmq.Again:
            log.warning("client %s is not reading; dropped a message", client.hex())
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                return False, None
            log.error("send to %s failed: %s", client.hex(), exc)
        return True, None

    def close(self, linger_ms: int = 500) -> None:
        """Close the socket (pending replies get linger_ms to leave, and their clients
        CLOSE_GRACE_S to read them) and stop CURVE's thread."""
        if linger_ms > 0:
            time.sleep(max(0.0, self.last_sent_at + CLOSE_GRACE_S - time.monotonic()))
        self.sock.close(linger_ms)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def _named_keys(secret_key: str, allow: str) -> tuple[bytes, bytes, str]:
    """The server pair of --curve-secret-key and the --curve-allow folder, checked."""
    import zmq.auth

    if not os.path.isdir(allow):
        raise SetupError(
            f"--curve-allow {allow!r}: expected a directory of client public key files (*.key)"
        )
    try:
        public, secret = zmq.auth.load_certificate(secret_key)
    except (OSError, ValueError) as exc:
        raise SetupError(f"--curve-secret-key {secret_key!r}: {exc}") from None
    problem = keyfiles.exposed(secret_key)
    if problem is not None:
        raise SetupError(f"--curve-secret-key: {problem}")
    if not secret:
        raise SetupError(
            f"--curve-secret-key {secret_key!r} holds no secret key (give the .key_secret file)"
        )
    return public, secret, allow


def _local_keys() -> tuple[bytes, bytes, frozenset[bytes]]:
    """The engine's pair of the user's local keys (made on first start) and the one client
    key it admits, the clients' public key."""
    import zmq.auth

    try:
        keys = keyfiles.local_keys()
        public, secret = zmq.auth.load_certificate(keys.secret(keyfiles.ENGINE))
        client = zmq.auth.load_certificate(keys.public(keyfiles.CLIENT))[0]
    except (OSError, ValueError) as exc:
        raise SetupError(
            f"your engine's keys: {exc} (a loopback TCP endpoint is served with them; "
            "ipc://PATH in a folder of yours needs none)"
        ) from None
    if not secret:
        raise SetupError(f"your engine's keys: {keys.secret(keyfiles.ENGINE)} holds no secret")
    return public, secret, frozenset({client})


class _AllowedKeys:
    """zmq.auth's credentials provider for a fixed set of client public keys (Z85)."""

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


def _setup_curve(
    ctx: zmq.Context[Any],
    sock: zmq.Socket[Any],
    public: bytes,
    secret: bytes,
    allow: str | frozenset[bytes],
) -> Any:
    """CURVE server keys on sock and an authenticator that admits only the allowed client
    keys: those of a folder's *.key files, or a set."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx)
    auth.start()
    if isinstance(allow, str):
        auth.configure_curve(domain="*", location=allow)
    else:
        auth.configure_curve_callback(domain="*", credentials_provider=_AllowedKeys(allow))
    sock.curve_server = True
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    return auth
