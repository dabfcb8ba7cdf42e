"""The artist's strength scale (0..100) and the style weight it stands for: the one mapping.

Clients send `strength` as is; the engine turns it into beta with `style_weight` below, so a
change of mapping needs no plug-in update. Sliders take their range from here and their start
from the daemon's `welcome.defaults`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: 0 = a hint of the style, DEFAULT = the classic look, 100 = only the painting's texture.
MINIMUM, DEFAULT, MAXIMUM = 0.0, 50.0, 100.0
#: Each DECADE steps of strength multiply beta by 10.
DECADE = 25.0
#: beta at DEFAULT with alpha = 1: see docs/quality.md for how it was chosen.
STYLE_WEIGHT_AT_DEFAULT = 12.5


def clamp(strength: float) -> float:
    """A strength brought onto the scale: for a value a daemon sent (default_strength)."""
    return min(max(float(strength), MINIMUM), MAXIMUM)


def style_weight(strength: float) -> float:
    """beta for a strength on the 0..100 scale (validated where the job entered:
    nst_client.params)."""
    return STYLE_WEIGHT_AT_DEFAULT * 10.0 ** ((float(strength) - DEFAULT) / DECADE)


def default_strength(welcome: Mapping[str, Any] | None = None) -> float:
    """Where a slider starts: the daemon's default when it said one, else this package's."""
    defaults = welcome.get("defaults") if isinstance(welcome, Mapping) else None
    value = defaults.get("strength") if isinstance(defaults, Mapping) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return clamp(value)
    return DEFAULT  # none, or not a number a slider can take (a string, NaN, infinity)
