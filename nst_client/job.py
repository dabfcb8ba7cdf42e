"""One job from a client to the engine and back: the one job path of `nst stylize --daemon`,
the GIMP filter and the Krita docker.

settings (nst_client.settings.load, one precedence) -> the engine on demand (launcher) ->
connect -> hello and the version check -> submit -> follow, reporting typed events: the
engine's state while it starts, the welcome, progress (with its ETA and previews), then the
result, the failure in the words an artist reads, or the cancel. One idle-timeout policy and
one map from what went wrong to a message live here; a client keeps only what is its own:
reading and writing the editor's layer and its widgets, and how it names its settings
(`ClientWords`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import endpoints, launcher
from . import protocol as P
from .client import (
    Client,
    DaemonError,
    DaemonUnavailable,
    JobCancelled,
    JobResult,
    RawImage,
    StyleInput,
    as_raw_style,
    connect,
    version_note,
)
from .errors import ForeignListener
from .launcher import EngineState
from .layouts import LayoutError
from .progress import Progress
from .settings import Settings, SettingsError

#: The least time a running job may stay silent (no progress, no pong) before the engine
#: counts as gone; a slower link (settings.timeout_s) gets IDLE_TIMEOUTS of its timeout.
IDLE_TIMEOUT_S = 60.0
IDLE_TIMEOUTS = 6


def idle_timeout_s(settings: Settings) -> float:
    """How long a job may hear nothing from the engine: the one policy."""
    return max(IDLE_TIMEOUT_S, IDLE_TIMEOUTS * settings.timeout_s)


# --- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineChanged:
    """The engine's state while it is looked at or started (and again after a lost link)."""

    state: EngineState


@dataclass(frozen=True)
class Welcomed:
    """The engine answered hello; note: the warning of a client of another version."""

    welcome: Mapping[str, Any]
    note: str | None


@dataclass(frozen=True)
class Progressed:
    """The job moved (Progress carries the fraction, the ETA and any preview)."""

    progress: Progress


@dataclass(frozen=True)
class Finished:
    result: JobResult


@dataclass(frozen=True)
class Failed:
    """Why the job ended without a result, in the words an artist reads; code: the engine's
    error code, or what failed on this side (UNAVAILABLE, SETTINGS, TRANSPORT, MALFORMED)."""

    message: str
    code: str


@dataclass(frozen=True)
class Cancelled:
    reason: str


JobEvent = EngineChanged | Welcomed | Progressed | Finished | Failed | Cancelled
EventFn = Callable[[JobEvent], None]

#: Failure codes of this side (the engine's own are protocol error codes).
UNAVAILABLE, SETTINGS, TRANSPORT, MALFORMED = "unavailable", "settings", "transport", "malformed"


class JobFailed(Exception):
    """A job that ended without a result; str() is the message to show as is, detail the
    engine's own words when it refused or failed the job."""

    def __init__(self, message: str, code: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail = detail


# --- words ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientWords:
    """How one client names itself and its settings in the messages it shows."""

    client_name: str
    #: The command that brings this client up to date ("nst install-plugin gimp").
    reinstall: str
    #: Where each engine setting is changed, by settings key ('"Engine address" in the
    #: dialog', '--daemon ENDPOINT'); a key left out is named `KEY in {place}`.
    fields: Mapping[str, str] = field(default_factory=dict)
    #: Where this client's engine settings are kept, for the client library's own words.
    place: str = "the plug-in settings"

    def where(self, key: str) -> str:
        """Where the setting KEY is changed, in this client's words."""
        return self.fields.get(key, f"{key} in {self.place}")


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return f"{text[:1].upper()}{text[1:]}."


def _placed(text: str, words: ClientWords) -> str:
    return text.replace("the plug-in settings", words.place)


def unavailable_message(exc: DaemonUnavailable, settings: Settings, words: ClientWords) -> str:
    """Why there is no engine, with the setting that changes it."""
    said = _placed(str(exc), words)
    if isinstance(exc, ForeignListener):  # not an engine to start or to look for elsewhere
        return _sentence(said)
    if not endpoints.is_local_endpoint(settings.endpoint):
        return (
            f"{_sentence(said)} The engine at {settings.endpoint} is on another computer: "
            f"it is started there. Check {words.where('endpoint')} and, for that engine's "
            f"keys, {words.where('curve_server_key')} and {words.where('curve_client_cert')}."
        )
    if not settings.start_on_demand:
        where = words.fields.get("start_on_demand")
        return (
            "The style engine is not running and starting the engine when needed is turned "
            f"off{f' ({where} is off)' if where else ''}: turn it on, or start the engine with "
            f"`nst daemon start`, or check {words.where('endpoint')}."
        )
    return _sentence(said)


def settings_message(exc: SettingsError, words: ClientWords) -> str:
    return f"The engine settings cannot be used: {_placed(str(exc), words)}"


def failure(exc: BaseException, settings: Settings, words: ClientWords, started: bool) -> JobFailed:
    """What went wrong, in words: the one map from an error to a message. started: whether
    the engine had answered (a lost one then 'stopped answering')."""
    if isinstance(exc, SettingsError):
        return JobFailed(settings_message(exc, words), SETTINGS)
    if isinstance(exc, DaemonError):
        if exc.code == P.OPTIMISATION_FAILED:
            return JobFailed(f"The optimisation failed: {exc.message}", exc.code, exc.message)
        return JobFailed(
            f"The style engine refused the job ({exc.code}): {exc.message}", exc.code, exc.message
        )
    if isinstance(exc, DaemonUnavailable):
        if started:
            said = _placed(str(exc), words)
            return JobFailed(f"The style engine stopped answering: {said}.", UNAVAILABLE)
        return JobFailed(unavailable_message(exc, settings, words), UNAVAILABLE)
    if isinstance(exc, LayoutError):
        return JobFailed(f"The style engine sent a malformed result: {exc}", MALFORMED)
    if isinstance(exc, ImportError):
        return JobFailed(
            f"This client is set to talk to the engine with pyzmq and msgpack, which its "
            f"Python lacks ({exc}): reinstall it with `{words.reinstall} --transport auto`.",
            TRANSPORT,
        )
    raise TypeError(f"not a job failure: {exc!r}")


# --- the runner ----------------------------------------------------------------------------

Styles = Sequence[StyleInput]
Connect = Callable[[Settings, str], Client]
Ensure = Callable[..., EngineState]
Probe = Callable[[Settings], EngineState]


def _open(settings: Settings, words: ClientWords, connect_fn: Connect) -> Client:
    try:
        return connect_fn(settings, words.client_name)
    except DaemonUnavailable as exc:  # the bridge's Python did not start
        raise JobFailed(
            f"{exc}: reinstall the plug-in with `{words.reinstall}`.",
            TRANSPORT,
        ) from exc


def _check_features(welcome: Mapping[str, Any], styles: Styles, words: ClientWords) -> None:
    """Refuse, before sending, a job the engine cannot do as asked (rather than have an
    older engine ignore the regions and style the whole layer)."""
    features = welcome.get("features")
    regions = any(s.mask is not None or s.strength is not None for s in map(as_raw_style, styles))
    if regions and not (isinstance(features, list) and P.MASKS in features):
        raise JobFailed(
            f"The style engine ({welcome.get('version') or 'an older version'}) cannot style "
            f"regions (masks or a strength per style): update it to this client's version "
            f"(`{words.reinstall}` updates the plug-in, the engine comes with it), or send "
            f"the job without regions.",
            P.UNSUPPORTED_PROTOCOL,
        )


def run_job(
    settings: Settings,
    words: ClientWords,
    content: RawImage,
    styles: Styles | Callable[[], Styles],
    params: Mapping[str, Any],
    *,
    on_event: EventFn | None = None,
    should_cancel: Callable[[], bool] | None = None,
    preview_every: int = 0,
    connect_fn: Connect | None = None,
    ensure_fn: Ensure | None = None,
    probe_fn: Probe | None = None,
) -> JobResult:
    """One job on the engine: its result at the content's size, or JobFailed (the message
    to show) or JobCancelled (the user asked; no failure). Every step is also an event.

    styles: RawStyle entries or (image, weight) pairs, or a function that reads them once
    the engine has answered (GIMP opens the style files only then). params go as given: the engine
    validates them where they enter. connect_fn, ensure_fn, probe_fn: nst_client's own
    (connect, launcher.ensure_running, launcher.probe) when None.
    """
    connect_fn = connect_fn or connect
    ensure_fn = ensure_fn or launcher.ensure_running
    probe_fn = probe_fn or launcher.probe
    emit: EventFn = on_event or (lambda event: None)
    cancel = should_cancel or (lambda: False)

    def check_cancel() -> None:
        if cancel():
            raise JobCancelled("cancelled before it started")

    started = False
    try:
        try:
            seen: list[EngineState] = []

            def on_state(state: EngineState) -> None:
                seen.append(state)
                emit(EngineChanged(state))

            state = ensure_fn(settings, on_state=on_state, should_cancel=cancel)
            if not seen or seen[-1] != state:
                emit(EngineChanged(state))
            check_cancel()
            client = _open(settings, words, connect_fn)
            started = True  # the engine answered: from here a lost link is a lost engine
            try:
                welcome = client.hello()
                emit(Welcomed(welcome, version_note(welcome, words.reinstall)))
                check_cancel()
                entries = styles() if callable(styles) else styles
                _check_features(welcome, entries, words)
                done = client.stylize_raw(
                    content,
                    entries,
                    params,
                    on_progress=lambda p: emit(Progressed(p)),
                    should_cancel=cancel,
                    preview_every=preview_every,
                    idle_timeout_s=idle_timeout_s(settings),
                )
            finally:
                client.close()
        except (SettingsError, DaemonError, DaemonUnavailable, LayoutError, ImportError) as exc:
            if isinstance(exc, DaemonUnavailable):  # say what the engine is now, then why
                emit(EngineChanged(probe_fn(settings)))
            raise failure(exc, settings, words, started) from exc
        want = (content[0]["width"], content[0]["height"])
        got = (done.image["width"], done.image["height"])
        if got != want:
            raise JobFailed(
                f"The engine returned {got[0]}x{got[1]} pixels for a {want[0]}x{want[1]} layer.",
                MALFORMED,
            )
    except JobFailed as exc:
        emit(Failed(exc.message, exc.code))
        raise
    except JobCancelled as exc:
        emit(Cancelled(str(exc)))
        raise
    emit(Finished(done))
    return done
