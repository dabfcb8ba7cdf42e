"""How a run can end without a result, as exceptions that need no torch to be caught.

The daemon's runner and the CLI catch these without importing the engine first.
"""

from __future__ import annotations

from typing import Any


class StylizeCancelled(Exception):
    """The run was cancelled; `partial` holds the image as far as it got (content's layout)."""

    def __init__(self, partial: Any = None) -> None:
        super().__init__("stylize cancelled")
        self.partial = partial


class OptimisationFailed(RuntimeError):
    """The cost did not fall, or turned non-finite and could not recover; the message says
    which and what to change."""
