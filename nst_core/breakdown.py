"""Where a job's seconds go: named phases timed as they run, for `nst stylize --verbose` and
the benches. The engine fills one when it is handed one; nothing is timed otherwise."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Breakdown:
    """Seconds per phase, in the order the phases first ran (a phase run again adds up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, phase: str, seconds: float, count: int = 0) -> None:
        """Add `seconds` (and `count` evaluations, where the phase runs the VGG) to a phase."""
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds
        self.counts[phase] = self.counts.get(phase, 0) + count

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())

    def lines(self) -> list[str]:
        """One line per phase: its seconds, its share, and its evaluations where counted."""
        total = self.total_s or 1.0
        width = max((len(p) for p in self.seconds), default=0)
        out = []
        for phase, s in self.seconds.items():
            count = self.counts.get(phase, 0)
            per = f", {count} evaluations, {s / count:.3f} s each" if count else ""
            out.append(f"{phase:<{width}}  {s:7.2f} s  {s / total:4.0%}{per}")
        out.append(f"{'total':<{width}}  {self.total_s:7.2f} s")
        return out
