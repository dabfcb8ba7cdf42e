"""An engine's device and measured precision in plain words: the one wording, for the
editors' engine state (nst_client.launcher), `nst status` and the engine's own profile
(nst_core.calibrate). Standard library only, importing nothing of the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def device_words(device: str) -> str:
    """'cpu' -> 'CPU', 'cuda:0 (NVIDIA H200)' -> 'GPU: NVIDIA H200', 'mps' -> 'Apple GPU'; a
    cluster front door's own words ('ray cluster 10.0.0.1:6379: 4 worker(s) ...') as they are."""
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
        f"{name} {seconds:.2f} s"
        for name, seconds in (measured.items() if isinstance(measured, Mapping) else ())
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    ]
    size = profile.get("size")
    per = f" per {size} px pass" if isinstance(size, int) and not isinstance(size, bool) else ""
    return profile["precision"] + (f" (measured {', '.join(figures)}{per})" if figures else "")
