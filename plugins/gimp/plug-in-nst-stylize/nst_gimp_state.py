"""The engine's state behind the GIMP dialog's state line, without GIMP: a thread that asks the
engine (nst_client.launcher.EngineMonitor) and hands each answer over, so that the dialog
never waits on the network. The unit tests run it with the product's Python.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from nst_gimp_job import CLIENT_NAME

from nst_client import launcher
from nst_client.launcher import EngineState
from nst_client.settings import Settings

#: How often the dialog's state line asks the engine (seconds).
STATE_INTERVAL_S = 2.0


class Monitor(Protocol):
    """What StateWatcher needs of nst_client.launcher.EngineMonitor."""

    def poll(self) -> EngineState: ...

    def close(self) -> None: ...


def _engine_monitor(settings: Settings) -> Monitor:
    return launcher.EngineMonitor(settings, CLIENT_NAME)


class StateWatcher:
    """Asks the engine for its state every interval_s on a thread of its own, so that the
    dialog never waits on the network, and hands each state to post (in GIMP: through
    GLib.idle_add to the GTK thread). watch(settings) follows the dialog's engine settings
    (None: stop asking until they can be used); stop() ends the thread within one poll."""

    def __init__(
        self,
        post: Callable[[EngineState], None],
        make_monitor: Callable[[Settings], Monitor] = _engine_monitor,
        interval_s: float = STATE_INTERVAL_S,
    ) -> None:
        self._post = post
        self._make_monitor = make_monitor
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._settings: Settings | None = None
        self._generation = 0
        self._thread = threading.Thread(target=self._loop, name="nst-engine-state", daemon=True)
        self._thread.start()

    def watch(self, settings: Settings | None) -> None:
        with self._lock:
            self._settings = settings
            self._generation += 1
        self._wake.set()

    def stop(self, timeout_s: float = 3.0) -> None:
        with self._lock:
            self._stopped = True
        self._wake.set()
        self._thread.join(timeout_s)

    def _current(self) -> tuple[bool, int, Settings | None]:
        with self._lock:
            return self._stopped, self._generation, self._settings

    def _loop(self) -> None:
        monitor: Monitor | None = None
        seen = 0
        try:
            while True:
                stopped, generation, settings = self._current()
                if stopped:
                    return
                if generation != seen:
                    if monitor is not None:
                        monitor.close()
                    monitor, seen = None, generation
                    if settings is not None:
                        try:
                            monitor = self._make_monitor(settings)
                        except Exception as exc:  # a transport that cannot be made here
                            self._post(launcher.unreachable(settings, exc))
                if monitor is not None and settings is not None:
                    try:
                        state = monitor.poll()
                    except Exception as exc:  # the watcher outlives any reply
                        state = launcher.unreachable(settings, exc)
                    stopped, generation, _ = self._current()
                    if not stopped and generation == seen:  # not for settings since changed
                        self._post(state)
                        self._wake.wait(self._interval_s)
                    self._wake.clear()
                else:
                    self._wake.wait()
                    self._wake.clear()
        finally:
            if monitor is not None:
                monitor.close()
