"""From the docker's controls to the job's engine parameters (no Qt, no Krita here)."""

from __future__ import annotations

from typing import Any

from nst_client import strength as scale

#: Smallest working size the docker offers.
MIN_SIZE = 16


def build_params(
    *, iterations: int, size: int, strength: float, preserve_colors: bool, area: tuple[int, int]
) -> dict[str, Any]:
    """Engine parameters for one job on an area of (width, height).

    strength goes as is (0..100): the engine alone turns it into a style weight.
    """
    # Working above the area's own size would only upscale it and throw the detail away again.
    working = max(MIN_SIZE, min(int(size), max(area)))
    return {
        "iterations": int(iterations),
        "size": working,
        "strength": scale.clamp(strength),
        "preserve_colors": bool(preserve_colors),
    }
