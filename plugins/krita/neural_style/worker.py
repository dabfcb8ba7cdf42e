"""Socket work off Krita's GUI thread: QThreads that talk to the engine and report by signals.

Each thread makes its own Client (a Client is not thread-safe) and closes it when done; signals
emitted from run() are queued to the docker's slots on the GUI thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from nst_client import launcher
from nst_client.client import DaemonError, DaemonUnavailable, JobCancelled, RawImage
from nst_client.settings import Settings, SettingsError

from . import link
from .qt import QThread, pyqtSignal

#: Seconds between two looks at the engine while the docker is visible.
POLL_INTERVAL_S = 2.0


def plain(text: str) -> str:
    """nst_client's words with "the plug-in settings" made the docker's own section."""
    return text.replace("the plug-in settings", link.WHERE_SETTINGS)


def message(exc: BaseException) -> str:
    """An exception in words for the docker's job line."""
    if isinstance(exc, DaemonError):
        return f"the style engine refused the job ({exc.code}): {exc.message}"
    if isinstance(exc, (DaemonUnavailable, SettingsError)):
        return plain(str(exc))
    return f"{type(exc).__name__}: {exc}"


class EngineWatch(QThread):
    """Polls the engine's state every `interval_s` until stopped; `refresh()` polls at once.

    `state_changed` carries (EngineState, the monotonic time its poll began), so that the
    docker can drop a poll that began before something newer was learnt. The first time the
    engine is usable it also says hello once, for `welcomed` (the engine's default strength).
    """

    state_changed = pyqtSignal(object, float)
    welcomed = pyqtSignal(object)

    def __init__(
        self, settings: Settings, parent: Any = None, interval_s: float | None = None
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.interval_s = POLL_INTERVAL_S if interval_s is None else interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()

    def refresh(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Ask the loop to end (thread-safe; returns at once, the thread ends after its poll)."""
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        monitor = launcher.EngineMonitor(self.settings, link.client_name(self.settings))
        welcomed = False
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                state = monitor.poll()
                if self._stop.is_set():
                    break
                self.state_changed.emit(state, began)
                if state.usable() and not welcomed:
                    welcomed = self._hello()
                self._wake.wait(self.interval_s)
                self._wake.clear()
        finally:
            monitor.close()

    def _hello(self) -> bool:
        """One hello for the engine's welcome; False (try again next poll) if it fails."""
        try:
            with link.connect(self.settings) as client:
                self.welcomed.emit(client.hello())
        except (DaemonUnavailable, DaemonError, SettingsError, OSError):
            return False
        return True


class StylizeWorker(QThread):
    """Runs one stylize job: starts the engine if needed, relays progress (with previews),
    then the result or why not. After a failure to reach the engine it looks again and
    reports that state first, so the docker never shows a stale "ready" beside the error."""

    engine_state = pyqtSignal(object)  # nst_client.launcher.EngineState
    welcomed = pyqtSignal(object)  # the engine's welcome message
    progressed = pyqtSignal(object)  # nst_client.progress.Progress (.preview: RawImage | None)
    succeeded = pyqtSignal(object)  # nst_client.client.JobResult
    failed = pyqtSignal(str)
    cancelled = pyqtSignal()

    def __init__(
        self,
        settings: Settings,
        content: RawImage,
        style: RawImage,
        params: dict[str, Any],
        preview_every: int = 5,
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.content = content
        self.style = style
        self.params = params
        self.preview_every = preview_every
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the job (or the engine's start-up wait) to stop; thread-safe."""
        self._cancel.set()

    def run(self) -> None:
        try:
            state = launcher.ensure_running(
                self.settings, on_state=self.engine_state.emit, should_cancel=self._cancel.is_set
            )
            self.engine_state.emit(state)
            if self._cancel.is_set():
                raise JobCancelled("cancelled before it started")
            with link.connect(self.settings) as client:
                self.welcomed.emit(client.hello())
                if self._cancel.is_set():
                    raise JobCancelled("cancelled before it started")
                result = client.stylize_raw(
                    self.content,
                    [(self.style, 1.0)],
                    self.params,
                    on_progress=self.progressed.emit,
                    should_cancel=self._cancel.is_set,
                    preview_every=self.preview_every,
                    idle_timeout_s=max(30.0, 6 * self.settings.timeout_s),
                )
            self.succeeded.emit(result)
        except JobCancelled:
            self.cancelled.emit()
        except DaemonUnavailable as exc:
            self.engine_state.emit(launcher.probe(self.settings))
            self.failed.emit(message(exc))
        except Exception as exc:  # reported in the docker, never raised into Krita
            self.failed.emit(message(exc))
