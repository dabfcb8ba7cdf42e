"""From the docker's controls to the job's engine parameters (no Qt, no Krita here).

Artists choose a quality preset or a time limit, and optionally a working size; the engine's
planner turns that into scales and iterations. The docker never sends `iterations` (that
fixed count is for scripts). nst_gimp_job.build_params is GIMP's twin: same names, same rules.
"""

from __future__ import annotations

from typing import Any

from nst_client import strength as scale
from nst_client.progress import parse_duration as parse_duration  # the docker reads it here

#: Smallest working size the docker offers.
MIN_SIZE = 16
#: The working size control's value for "the planner decides".
AUTO_SIZE = 0
#: The engine's quality presets (nst_core.params.QUALITY_PRESETS), fastest first, with the
#: docker's words for them: (name, label, tooltip).
QUALITIES = (
    ("draft", "Draft", "A quick look at a small size, in seconds, to try a style or a strength"),
    ("normal", "Normal", "The classic look, about a minute on a laptop CPU"),
    ("final", "Final", "The layer's own resolution where the machine allows (takes longest)"),
)
DEFAULT_QUALITY = "normal"
#: A time limit's range in seconds (the engine's MIN_TIME_BUDGET_S .. MAX_TIME_BUDGET_S).
MIN_TIME_LIMIT_S = 5.0
MAX_TIME_LIMIT_S = 86400.0
#: The time limit control's arrow steps, in seconds (0 = off); typing gives any time.
TIME_LIMIT_STEPS = (
    0, 15, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 2700, 3600,
    5400, 7200, 10800, 14400, 21600, 28800, 43200, 86400,
)  # fmt: skip


def duration_text(seconds: float) -> str:
    """'45 s', '2 min', '1 min 30 s', '1 h 5 min': how the time limit control shows a time."""
    hours, rest = divmod(max(int(round(seconds)), 0), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if n]
    return " ".join(parts) or "0 s"


def build_params(
    *,
    quality: str,
    time_limit_s: float | None,
    size: int | None,
    strength: float,
    preserve_colors: bool,
    area: tuple[int, int],
) -> dict[str, Any]:
    """Engine parameters for one job on an area of (width, height).

    quality: one of QUALITIES' names. time_limit_s: None (or 0) = no limit; else the job is
    fitted into it (brought within the engine's range) and the quality does not apply.
    size: None or AUTO_SIZE = the planner picks the working size; else that long side, never
    above the area's own. strength goes as is (0..100): the engine turns it into a weight.
    """
    names = [name for name, _, _ in QUALITIES]
    if quality not in names:
        raise ValueError(f"quality must be one of {', '.join(names)}, got {quality!r}")
    params: dict[str, Any] = {
        "quality": quality,
        "strength": scale.clamp(strength),
        "preserve_colors": bool(preserve_colors),
    }
    if time_limit_s:
        params["time_budget"] = min(max(float(time_limit_s), MIN_TIME_LIMIT_S), MAX_TIME_LIMIT_S)
    if size:
        # Working above the area's own size would only upscale it and throw the detail away.
        params["size"] = max(MIN_SIZE, min(int(size), max(area)))
    return params
