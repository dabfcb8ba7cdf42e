"""Socket work off Krita's GUI thread: QThreads that talk to the engine and report by signals.

Each thread makes its own Client (a Client is not thread-safe) and closes it when done; signals
emitted from run() are queued to the docker's slots on the GUI thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from nst_client import job, launcher
from nst_client.client import JobCancelled, RawImage, StyleInput
from nst_client.settings import Settings

from . import link
from .qt import QApplication, QThread, pyqtSignal

#: Seconds between two looks at the engine while the docker is visible.
POLL_INTERVAL_S = 2.0


def plain(text: str) -> str:
    """nst_client's words with "the plug-in settings" made the docker's own section."""
    return text.replace("the plug-in settings", link.WHERE_SETTINGS)


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
                try:
                    state = monitor.poll()
                except Exception as exc:  # the watch outlives any reply
                    state = launcher.unreachable(self.settings, exc)
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
        except Exception:  # any failure: the next poll tries again
            return False
        return True


def stop_watches() -> None:
    """End every EngineWatch and wait for it: at Krita's exit, before Qt deletes a QThread
    that still runs (which aborts the process)."""
    app = QApplication.instance()
    watches = app.findChildren(EngineWatch) if app is not None else []
    for watch in watches:
        watch.stop()
    for watch in watches:
        watch.wait(5000)


class StylizeWorker(QThread):
    """Runs one stylize job through nst_client.job (the engine started if needed), with the
    main style as (image, 1.0) or a RawStyle per region, and relays its events as signals:
    the engine's state, the welcome, progress (with previews), then the result, the failure
    in the job's words, or the cancel."""

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
        styles: list[StyleInput],
        params: dict[str, Any],
        preview_every: int = 5,
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.content = content
        self.styles = styles
        self.params = params
        self.preview_every = preview_every
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the job (or the engine's start-up wait) to stop; thread-safe."""
        self._cancel.set()

    def _relay(self, event: job.JobEvent) -> None:
        if isinstance(event, job.EngineChanged):
            self.engine_state.emit(event.state)
        elif isinstance(event, job.Welcomed):
            self.welcomed.emit(event.welcome)
        elif isinstance(event, job.Progressed):
            self.progressed.emit(event.progress)
        elif isinstance(event, job.Finished):
            self.succeeded.emit(event.result)
        elif isinstance(event, job.Failed):
            self.failed.emit(event.message)
        elif isinstance(event, job.Cancelled):
            self.cancelled.emit()

    def run(self) -> None:
        try:
            job.run_job(
                self.settings,
                link.words(self.settings),
                self.content,
                self.styles,
                self.params,
                on_event=self._relay,
                should_cancel=self._cancel.is_set,
                preview_every=self.preview_every,
                connect_fn=lambda settings, _name: link.connect(settings),
            )
        except (job.JobFailed, JobCancelled):
            pass  # relayed as events
        except Exception as exc:  # a bug: reported in the docker, never raised into Krita
            self.failed.emit(f"{type(exc).__name__}: {exc}")
