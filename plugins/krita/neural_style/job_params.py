"""From the docker's controls to engine parameters, and from progress headers to words.

No Qt and no Krita here, so these rules can be unit-tested with the product's Python.
"""

from __future__ import annotations

import math
from typing import Any

#: The slider's start: the engine's strength scale (0..100) is sent as is, and the engine
#: alone maps it to a style weight (nst_core.params.strength_to_style_weight).
STRENGTH_DEFAULT = 50
MIN_SIZE = 16


def build_params(
    *, iterations: int, size: int, strength: int, preserve_colors: bool, area: tuple[int, int]
) -> dict[str, Any]:
    """Engine parameters (engine names) for one job on an area of (width, height)."""
    # Working above the area's own size would only upscale it and throw the detail away again.
    working = max(MIN_SIZE, min(int(size), max(area)))
    return {
        "iterations": int(iterations),
        "size": working,
        "strength": float(min(max(int(strength), 0), 100)),
        "preserve_colors": bool(preserve_colors),
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def progress_fraction(header: dict[str, Any]) -> float:
    """0..1 of the whole job: the daemon counts iterations over all scales (and tiles)."""
    iteration = _number(header.get("iteration")) or 0.0
    iterations = _number(header.get("iterations")) or 0.0
    return min(max(iteration / iterations, 0.0), 1.0) if iterations > 0 else 0.0


def format_seconds(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


def progress_text(header: dict[str, Any]) -> str:
    """'42% · 0:12 left · scale 2/3' (elapsed time while the daemon has no estimate)."""
    percent = int(progress_fraction(header) * 100)
    scales = _number(header.get("scales")) or 1.0
    where = f" · scale {int(_number(header.get('scale')) or 1)}/{int(scales)}" if scales > 1 else ""
    eta = _number(header.get("eta_s"))
    if eta is not None:
        return f"{percent}% · {format_seconds(eta)} left{where}"
    elapsed = _number(header.get("elapsed_s"))
    if elapsed is not None:
        return f"{percent}% · {format_seconds(elapsed)} elapsed{where}"
    return f"{percent}%{where}"
