"""Socket work off Krita's GUI thread: QThreads that talk to the daemon and report by signals.

Each thread makes its own Client (a Client is not thread-safe) and closes it when done; signals
emitted from run() are queued to the docker's slots on the GUI thread.
"""

from __future__ import annotations

import threading
from typing import Any

from . import link
from .qt import QThread, pyqtSignal


def _message(exc: BaseException) -> str:
    if isinstance(exc, link.DaemonError):
        return f"the daemon refused the job ({exc.code}): {exc.message}"
    if isinstance(exc, (link.DaemonUnavailable, link.SettingsError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class StatusWorker(QThread):
    """Says hello to the daemon once; emits the status line for the docker."""

    answered = pyqtSignal(bool, str)

    def __init__(self, settings: link.DaemonSettings, parent: Any = None) -> None:
        super().__init__(parent)
        self.settings = settings

    def run(self) -> None:
        try:
            with link.connect(self.settings) as client:
                welcome = client.hello()
            self.answered.emit(True, link.describe_welcome(welcome, self.settings))
        except Exception as exc:  # shown in the status line, never raised into Krita
            self.answered.emit(False, f"Daemon not connected: {_message(exc)}")


class StylizeWorker(QThread):
    """Runs one stylize job: submit, relay progress and previews, return the result."""

    progressed = pyqtSignal(object)  # the progress header (without the preview)
    previewed = pyqtSignal(object)  # (descriptor, bytes) of the image so far
    succeeded = pyqtSignal(object)  # (descriptor, bytes) of the result
    failed = pyqtSignal(str)
    cancelled = pyqtSignal()
    connected = pyqtSignal(str)  # status line once the daemon said hello

    def __init__(
        self,
        settings: link.DaemonSettings,
        content: link.RawImage,
        style: link.RawImage,
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

    def _on_progress(self, header: dict[str, Any]) -> None:
        preview = header.pop("preview_image", None)
        header.pop("preview", None)
        self.progressed.emit(header)
        if preview is not None:
            self.previewed.emit(preview)

    def run(self) -> None:
        try:
            with link.connect(self.settings) as client:
                welcome = client.hello()
                self.connected.emit(link.describe_welcome(welcome, self.settings))
                if self._cancel.is_set():
                    raise link.JobCancelled("cancelled before it started")
                job = client.submit(
                    self.content, [(self.style, 1.0)], self.params, self.preview_every
                )
                result = client.follow(
                    job,
                    on_progress=self._on_progress,
                    should_cancel=self._cancel.is_set,
                    idle_timeout_s=max(30.0, 6 * self.settings.timeout_s),
                )
            self.succeeded.emit(result)
        except link.JobCancelled:
            self.cancelled.emit()
        except Exception as exc:  # reported in the docker, never raised into Krita
            self.failed.emit(_message(exc))
