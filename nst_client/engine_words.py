"""What an engine says, in plain words safe to show: its device and measured precision (the
one wording, for the editors' engine state in nst_client.launcher, `nst status` and the
engine's own profile in nst_core.calibrate), and any text or number it sent made fit for a
terminal or a dialog. Standard library only, importing nothing of the package.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

#: The longest text of an engine's that a line shows (a longer one is cut with "…").
MAX_SHOWN = 200
#: The longest of the client's own reasons a line quotes (longer than an engine's text may
#: be: a key file's error names its path).
MAX_OWN_SHOWN = 1000
#: ANSI escape sequences (CSI, OSC and single-character ones).
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-_])")


def plain(value: Any, limit: int = MAX_SHOWN) -> str:
    """Any value an engine sent, as text safe to put on a terminal or in a dialog: escape
    sequences and control characters gone (a line break becomes a space), at most `limit`
    characters."""
    text = value if isinstance(value, str) else repr(value)
    text = _ESCAPES.sub("", text)
    text = "".join(
        " " if c in "\t\n\r" else c
        for c in text
        if unicodedata.category(c)[0] != "C" or c in "\t\n\r"
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value: Any, low: float = -math.inf, high: float = math.inf) -> float | None:
    """A finite number within low..high an engine sent, else None (a string, NaN, a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and low <= value <= high else None


def device_words(device: str) -> str:
    """'cpu' -> 'CPU', 'cuda:0 (NVIDIA H200)' -> 'GPU: NVIDIA H200', 'mps' -> 'Apple GPU'; a
    cluster front door's own words ('ray cluster 10.0.0.1:6379: 4 worker(s) ...') as they are."""
    device = plain(device)
    if device.startswith("ray cluster"):
        return device
    if device.startswith("cuda"):
        name = device.partition("(")[2].rstrip(")")
        return f"GPU: {name}" if name else "GPU"
    if device == "mps":
        return "Apple GPU"
    return device.upper() if device else "unknown device"


def precision_words(profile: Any) -> str | None:
    """An engine's measured precision in words, from welcome's or status's `profile`:
    'bf16 (measured fp32 2.27 s, bf16 1.40 s per 512 px pass)'; None when there is none."""
    if not isinstance(profile, Mapping) or not isinstance(profile.get("precision"), str):
        return None
    measured = profile.get("measured")
    figures = [
        f"{plain(name, 20)} {seconds:.2f} s"
        for name, value in (measured.items() if isinstance(measured, Mapping) else ())
        if (seconds := number(value, 0.0)) is not None
    ][:8]
    size = number(profile.get("size"), 1)
    per = f" per {size:.0f} px pass" if size is not None else ""
    words = plain(profile["precision"], 20)
    return words + (f" (measured {', '.join(figures)}{per})" if figures else "")
