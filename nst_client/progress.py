"""How far a job is and how long it has left: the one formula every client shows.

The fraction is elapsed / (elapsed + ETA) once the engine has an estimate: the engine weighs
its steps by their predicted time, so the bar does not race through the cheap coarse scales
and then stall at the last one (as iteration / iterations would). The engine's first report
(iteration 0) already carries the plan's estimate; without one it falls back to the
iteration count.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def _number(value: Any, default: float = 0.0) -> float:
    """A finite number from a message field, else default (a progress bar never raises)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value) if math.isfinite(value) else default


_UNIT_S = {"h": 3600, "m": 60, "s": 1}
_UNIT_WORDS = {
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "m"),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "s"),
}
_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*")
_CLOCK = re.compile(r"\d+(?::\d{1,2}){1,2}")


def parse_duration(text: str) -> float | None:
    """Seconds from what a person types: '90', '90s', '2m', '1m30s', '1 h 30', '1:30' (m:ss)
    or '1:02:03'; None when it is not a duration. A number without a unit is in the unit
    below the one before it (seconds at first): '1m30' is 90 s. The CLI's --time-budget and
    the Krita docker's time limit both read it."""
    words = text.strip().lower()
    if _CLOCK.fullmatch(words):
        clock = 0
        for part in words.split(":"):
            clock = clock * 60 + int(part)
        return float(clock)
    total, pos, last = 0.0, 0, math.inf
    while pos < len(words):
        match = _PART.match(words, pos)
        if match is None:
            return None
        number, word = match.groups()
        if word:
            unit = _UNIT_WORDS.get(word)
        else:
            unit = "s" if last == math.inf else {3600: "m", 60: "s"}.get(int(last))
        if unit is None or _UNIT_S[unit] >= last:
            return None  # an unknown unit, or units out of order ('30s 1m')
        total += float(number) * _UNIT_S[unit]
        last, pos = _UNIT_S[unit], match.end()
    return total if pos else None


def duration_text(seconds: float) -> str:
    """'45 s', '2 min', '1 min 30 s', '1 h 5 min': a time as an editor's control shows it,
    read back by parse_duration."""
    hours, rest = divmod(max(int(round(seconds)), 0), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if n]
    return " ".join(parts) or "0 s"


def duration_words(seconds: float) -> str:
    """A set length of time in words: '1 hour', '30 minutes', '90 seconds'."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def format_duration(seconds: float) -> str:
    """'0:42', '12:05' or '1:02:03'."""
    seconds = max(int(round(seconds)), 0)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


@dataclass(frozen=True)
class Progress:
    """One progress report, from the engine (in-process) or a daemon's `progress` message."""

    iteration: int
    iterations: int
    scale: int
    scales: int
    loss_total: float
    loss_content: float
    loss_style: float
    elapsed_s: float
    eta_s: float | None
    #: The image so far when previews were asked for: a (descriptor, bytes) pair from the
    #: daemon, a numpy array from the engine.
    preview: Any = None

    @classmethod
    def from_message(cls, header: Mapping[str, Any], buffers: Sequence[bytes] = ()) -> Progress:
        """Read a `progress` message leniently: a bad field shows as 0, never as an error."""
        loss = header.get("loss")
        loss = loss if isinstance(loss, dict) else {}
        eta = header.get("eta_s")
        preview = None
        desc = header.get("preview")
        if isinstance(desc, dict):
            frame = desc.get("frame")
            if isinstance(frame, int) and 1 <= frame <= len(buffers):
                preview = (desc, buffers[frame - 1])
        return cls(
            iteration=int(_number(header.get("iteration"))),
            iterations=int(_number(header.get("iterations"))),
            scale=int(_number(header.get("scale"), 1.0)),
            scales=int(_number(header.get("scales"), 1.0)),
            loss_total=_number(loss.get("total")),
            loss_content=_number(loss.get("content")),
            loss_style=_number(loss.get("style")),
            elapsed_s=_number(header.get("elapsed_s")),
            eta_s=None if eta is None else _number(eta),
            preview=preview,
        )

    @property
    def fraction(self) -> float:
        """0..1 of the whole job."""
        if self.iterations > 0 and self.iteration >= self.iterations:
            return 1.0
        eta = self.eta_s
        if eta is not None and self.elapsed_s + eta > 0 and self.iteration > 0:
            value = self.elapsed_s / (self.elapsed_s + eta)
        elif self.iterations > 0:
            value = self.iteration / self.iterations
        else:
            value = 0.0
        return min(max(value, 0.0), 1.0)

    @property
    def percent(self) -> int:
        return int(self.fraction * 100)

    def text(self) -> str:
        """'42% · 1:15 left · scale 2/3' (elapsed time while there is no estimate yet)."""
        where = f" · scale {self.scale}/{self.scales}" if self.scales > 1 else ""
        if self.eta_s is not None and (self.iteration > 0 or self.eta_s > 0):
            return f"{self.percent}% · {format_duration(self.eta_s)} left{where}"
        if self.elapsed_s > 0:
            return f"{self.percent}% · {format_duration(self.elapsed_s)} elapsed{where}"
        return f"{self.percent}%{where}"
