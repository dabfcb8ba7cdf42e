"""Socket work off Krita's GUI thread: QThreads that talk to the daemon and report by signals.

Each thread makes its own Client (a Client is not thread-safe) and closes it when done; signals
emitted from run() are queued to the docker's slots on the GUI thread.
"""

from __future__ import annotations

import threading
from typing import Any

from nst_client.client import DaemonError, DaemonUnavailable, JobCancelled, RawImage
from nst_client.settings import Settings, SettingsError

from . import link
from .qt import QThread, pyqtSignal


def message(exc: BaseException) -> str:
    """An exception in words for the docker's status line."""
    if isinstance(exc, DaemonError):
        return f"the daemon refused the job ({exc.code}): {exc.message}"
    if isinstance(exc, (DaemonUnavailable, SettingsError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class StatusWorker(QThread):
    """Says hello to the daemon once: `welcomed` with its welcome, or `unavailable`."""

    welcomed = pyqtSignal(str, object)  # status line, the welcome message
    unavailable = pyqtSignal(str)

    def __init__(self, settings: Settings, parent: Any = None) -> None:
        super().__init__(parent)
        self.settings = settings

    def run(self) -> None:
        try:
            with link.connect(self.settings) as client:
                welcome = client.hello()
            self.welcomed.emit(link.status_line(welcome, self.settings), welcome)
        except Exception as exc:  # shown in the status line, never raised into Krita
            self.unavailable.emit(f"Daemon not connected: {message(exc)}")


class StylizeWorker(QThread):
    """Runs one stylize job: relays progress (with previews), then the result or why not."""

    welcomed = pyqtSignal(str, object)  # status line, the welcome message
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
        """Ask the running job to stop (thread-safe; the daemon answers `cancelled`)."""
        self._cancel.set()

    def run(self) -> None:
        try:
            with link.connect(self.settings) as client:
                welcome = client.hello()
                self.welcomed.emit(link.status_line(welcome, self.settings), welcome)
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
        except Exception as exc:  # reported in the docker, never raised into Krita
            self.failed.emit(message(exc))
