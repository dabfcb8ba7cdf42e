"""Client for the NST daemon: one API over two transports (nst_client.transports), with
timeouts everywhere. Images travel as (descriptor, bytes) pairs; numpy arrays are accepted
where numpy is installed.

No call blocks past its timeout, however the daemon fails (down, unreachable, a CURVE handshake
refused): a request the transport cannot hand over comes back as an `undelivered` notice on
its id, which the Client raises as DaemonUnavailable saying why.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from . import __version__, layouts
from . import protocol as P
from .errors import DaemonError, DaemonUnavailable, JobAbandoned, JobCancelled, unavailable
from .progress import Progress
from .settings import Settings, check_transport
from .transports import (
    UNDELIVERED,
    Received,
    Transport,
    ZmqTransport,
    bridge_transport,
    zmq_transport,
)

__all__ = [
    "Client",
    "DaemonError",
    "DaemonUnavailable",
    "JobAbandoned",
    "JobCancelled",
    "JobResult",
    "RawImage",
    "RawStyle",
    "StyleInput",
    "CANCEL_GRACE_S",
    "Received",
    "ZmqTransport",
    "connect",
    "version_note",
]

#: An image on the wire: its descriptor and its bytes.
RawImage = tuple[P.ImageDesc, bytes]


@dataclass(frozen=True)
class RawStyle:
    """One style of a job as it goes on the wire (protocol `styles` entry).

    weight: its blend weight among the styles without a mask (normalised there); a masked
    style's weight scales its own region. mask: one channel at the content's size, 0 = none
    of this style .. the dtype's top value = all of it. strength: its own place on the
    strength scale (None: the job's).
    """

    image: RawImage
    weight: float = 1.0
    mask: RawImage | None = None
    strength: float | None = None


#: A job's styles: RawStyle, or (image, weight) pairs as before masks.
StyleInput = RawStyle | tuple[RawImage, float]


def as_raw_style(style: StyleInput) -> RawStyle:
    return style if isinstance(style, RawStyle) else RawStyle(style[0], float(style[1]))


ProgressFn = Callable[[Progress], None]

#: After a cancel, how long a job may go on before it is abandoned (the editor is freed).
CANCEL_GRACE_S = 10.0
#: Messages kept for other requests' ids (a daemon that floods them cannot fill memory).
MAX_STASHED = 64


@dataclass(frozen=True)
class JobResult:
    """A finished job: the image in the content's layout, and the daemon's figures."""

    image: P.ImageDesc
    data: bytes
    stats: P.Stats

    @property
    def raw(self) -> RawImage:
        return self.image, self.data


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
        # The default: pyzmq, with the user's local keys on a loopback port.
        self._transport: Transport = transport or zmq_transport(
            Settings(endpoint=endpoint, timeout_s=timeout_s)
        )
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
            del self._stash[:-MAX_STASHED]  # the oldest go first

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
        styles: Sequence[StyleInput],
        params: Mapping[str, Any] | None = None,
        preview_every: int = 0,
    ) -> str:
        """Send a stylize request; returns its job id. Follow it with `follow`. Frames: the
        content, then each style followed by its mask where it has one."""
        buffers = [content[1]]
        style_descs: list[P.StyleDesc] = []
        for style in map(as_raw_style, styles):
            buffers.append(style.image[1])
            image = _descriptor(style.image[0], len(buffers))
            mask = None
            if style.mask is not None:
                buffers.append(style.mask[1])
                mask = _descriptor(style.mask[0], len(buffers))
            style_descs.append(P.style_entry(image, style.weight, mask, style.strength))
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
        cancel_grace_s: float = CANCEL_GRACE_S,
    ) -> JobResult:
        """Wait for a job's result, relaying progress; cancels when should_cancel() is true.

        While waiting it pings the daemon every second (progress or not): the daemon cancels
        the jobs of a client it has not heard from for its --client-timeout, and a daemon that
        died is noticed here within idle_timeout_s. After a cancel, a job that has not ended
        within cancel_grace_s is abandoned (JobAbandoned), whatever the daemon still sends.
        """
        cancel_by: float | None = None  # once cancelled: the time the job must have ended by
        last_heard = last_ping = time.monotonic()
        ping_id: str | None = None
        try:
            while True:
                if should_cancel is not None and cancel_by is None and should_cancel():
                    self.cancel(job_id)
                    cancel_by = time.monotonic() + cancel_grace_s
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
                else:
                    last_heard = now
                    result = self._on_job_message(job_id, item, on_progress)
                    if result is not None:
                        return result
                if cancel_by is not None and now > cancel_by:
                    raise JobAbandoned(
                        f"the engine did not end job {job_id} within {cancel_grace_s:g} s of "
                        "the cancel: it was abandoned"
                    )
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
        styles: Sequence[StyleInput],
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
        """numpy in, numpy out: content (H, W, C); styles as arrays, (array, weight) or
        (array, weight, mask) with mask an (H, W) array over the content (or None)."""
        raw_styles = []
        for style in styles:
            image, weight, mask = _style_parts(style)
            raw_mask = layouts.from_array(mask, 0) if mask is not None else None
            raw_styles.append(RawStyle(layouts.from_array(image, 0), float(weight), raw_mask))
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


def _style_parts(style: Any) -> tuple[Any, float, Any]:
    """(image, weight, mask) of a numpy style: an array, (array, weight) or with a mask."""
    if not isinstance(style, tuple):
        return style, 1.0, None
    image, weight, *rest = style
    return image, float(weight), rest[0] if rest else None


def _descriptor(desc: P.ImageDesc, frame: int) -> P.ImageDesc:
    """The wire descriptor of an image at a frame index (extra keys dropped)."""
    return layouts.describe(desc["width"], desc["height"], desc["channels"], desc["dtype"], frame)


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
