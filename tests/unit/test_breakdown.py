"""The time breakdown: phases add up in the order they first ran, with their evaluations."""

from __future__ import annotations

import pytest

from nst_core.breakdown import Breakdown


def test_phases_add_up_in_order_and_say_their_evaluations() -> None:
    b = Breakdown()
    b.add("loading", 2.0)
    b.add("scale 1/2 (64x48)", 3.0, 30)
    b.add("loading", 1.0)
    with b.phase("finish"):
        pass
    assert list(b.seconds) == ["loading", "scale 1/2 (64x48)", "finish"]
    assert b.seconds["loading"] == 3.0 and b.total_s == pytest.approx(6.0, abs=0.01)
    lines = b.lines()
    assert "30 evaluations, 0.100 s each" in lines[1] and "50%" in lines[1]
    assert lines[-1].split()[0] == "total" and lines[-1].split()[-2] == "6.00"


def test_a_phase_that_raised_still_counts() -> None:
    b = Breakdown()
    with pytest.raises(RuntimeError), b.phase("job"):
        raise RuntimeError("cancelled")
    assert "job" in b.seconds
