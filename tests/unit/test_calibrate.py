"""Calibration's choices, with the measuring stubbed: tolerance, caching, refinement."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
import torch

from nst_core import calibrate
from nst_core.calibrate import Profile
from nst_core.plan import Speed
from nst_core.vgg import VGGFeatures


class _Stand(torch.nn.Module):
    """Stands in for VGGFeatures where only its identity and device matter."""

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


def FakeModel() -> VGGFeatures:
    return cast(VGGFeatures, _Stand())


def test_a_precision_off_fp32_is_rejected_with_the_reason() -> None:
    grad = torch.randn(1, 3, 8, 8)
    reference = (2.0, grad)
    assert calibrate._off(reference, 2.01, grad * 1.001) == ""
    assert "cost" in calibrate._off(reference, 2.2, grad)
    assert "gradient cosine" in calibrate._off(reference, 2.0, torch.randn(1, 3, 8, 8))
    assert calibrate._off(reference, float("nan"), grad) == "not finite"
    assert calibrate._off(reference, 2.0, grad * float("inf")) == "not finite"


def test_candidates_start_with_the_fp32_reference() -> None:
    assert calibrate.candidates(torch.device("cpu")) == ["fp32", "bf16"]
    assert calibrate.candidates(torch.device("mps")) == ["fp32"]


def test_profile_is_measured_once_then_read_from_memory_and_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls: list[int] = []
    made = Profile("cpu", "bf16", False, Speed(5.0, 0.1), {"fp32": 0.5, "bf16": 0.3}, {}, 256)

    def fake_measure(model: object, size: int | None = None) -> Profile:
        calls.append(1)
        return made

    monkeypatch.setattr(calibrate, "measure", fake_measure)
    first, second = FakeModel(), FakeModel()
    assert calibrate.profile(first) == made and calibrate.profile(first) == made
    assert len(calls) == 1
    # Another process (a fresh model) finds the profile on disk: no second measurement.
    assert calibrate.profile(second) == made and len(calls) == 1
    assert list(tmp_path.glob("nst/profile-*.json"))
    assert calibrate.profile(FakeModel(), use_disk=False) == made and len(calls) == 2


def test_a_broken_cache_file_is_measured_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model = FakeModel()
    path = tmp_path / "nst" / f"profile-{calibrate._machine_key(model)}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    made = Profile("cpu", "fp32", False, Speed(9.0), {"fp32": 1.0}, {}, 256)
    monkeypatch.setattr(calibrate, "measure", lambda model, size=None: made)
    assert calibrate.profile(model) == made


def test_observed_speed_moves_the_profile_and_reaches_the_next_plan(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    made = Profile("cpu", "bf16", False, Speed(4.0, 0.0), {"bf16": 0.3}, {}, 256)
    monkeypatch.setattr(calibrate, "measure", lambda model, size=None: made)
    model = FakeModel()
    calibrate.profile(model)
    calibrate.observe(model, Speed(8.0, 0.0))
    assert calibrate.profile(model).speed.s_per_mpix == pytest.approx(6.0)
    # ... and a restarted process starts from the refined speed.
    assert calibrate.profile(FakeModel()).speed.s_per_mpix == pytest.approx(6.0)


def test_the_profile_message_and_words() -> None:
    p = Profile("cpu", "bf16", False, Speed(5.123456, 0.1), {"fp32": 0.51, "bf16": 0.29}, {}, 256)
    assert p.to_message() == {
        "precision": "bf16",
        "channels_last": False,
        "s_per_mpix": 5.1235,
        "measured": {"fp32": 0.51, "bf16": 0.29},
        "size": 256,
    }
    assert p.words() == "bf16 (measured fp32 0.51 s, bf16 0.29 s per 256 px pass)"
    assert p.autocast == torch.bfloat16


def test_a_forced_precision_is_planned_at_its_own_measured_speed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    made = Profile("cpu", "bf16", False, Speed(4.0, 0.1), {"fp32": 0.6, "bf16": 0.3}, {}, 256)
    monkeypatch.setattr(calibrate, "measure", lambda model, size=None: made)
    model = FakeModel()
    assert calibrate.speed_for(model, "auto") == made.speed == calibrate.speed_for(model, "bf16")
    fp32 = calibrate.speed_for(model, "fp32")
    assert fp32.s_per_mpix == pytest.approx(8.0) and fp32.s_fixed == pytest.approx(0.2)
    assert calibrate.speed_for(model, "fp16") == fp32  # not measured here: taken as fp32's


@pytest.mark.parametrize("bf16_cost", [40.0, 0.6])
def test_a_candidate_far_slower_on_the_probe_is_not_measured_in_full(
    monkeypatch: pytest.MonkeyPatch, bf16_cost: float
) -> None:
    """bf16 emulated on a CPU without it (~40x slower) is dropped after the small probe:
    no full-size pass of it runs, and fp32 wins. Native bf16 (0.6x) is measured and wins."""
    sides: list[tuple[str, int]] = []

    def fake_pass(
        model: object, x: torch.Tensor, dtype: torch.dtype | None, layout: bool
    ) -> tuple[float, torch.Tensor]:
        name = "fp32" if dtype is None else "bf16"
        sides.append((name, x.shape[-1]))
        return 1.0, torch.ones(1, 3, 4, 4)

    def fake_timed(run: object, device: torch.device, repeats: int) -> float:
        run()  # type: ignore[operator]
        name, side = sides[-1]
        return (bf16_cost if name == "bf16" else 1.0) * side * side / 1e5

    monkeypatch.setattr(calibrate, "_pass", fake_pass)
    monkeypatch.setattr(calibrate, "_timed", fake_timed)
    made = calibrate.measure(FakeModel(), size=256)
    if bf16_cost < 1:
        assert made.precision == "bf16" and ("bf16", 256) in sides and not made.rejected
        return
    assert made.precision == "fp32"
    assert "slower than fp32 at 64 px" in made.rejected["bf16"]
    assert ("bf16", 256) not in sides and ("bf16", 64) in sides
    assert "bf16" not in made.measured


def test_the_speed_is_fitted_where_the_plans_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU the chosen precision is timed again at 512 px, above the 256 px comparison
    (what grows faster than the pixels there is measured, not extrapolated); a pass taking
    0.02 s plus 5 s per megapixel comes back as exactly that speed."""
    sides: list[int] = []

    def fake_pass(
        model: object, x: torch.Tensor, dtype: torch.dtype | None, layout: bool
    ) -> tuple[float, torch.Tensor]:
        sides.append(x.shape[-1])
        return 1.0, torch.ones(1, 3, 4, 4)

    def fake_timed(run: object, device: torch.device, repeats: int) -> float:
        run()  # type: ignore[operator]
        return 0.02 + 5.0 * sides[-1] ** 2 / 1e6

    monkeypatch.setattr(calibrate, "_pass", fake_pass)
    monkeypatch.setattr(calibrate, "_timed", fake_timed)
    made = calibrate.measure(FakeModel())
    assert calibrate.second_size(torch.device("cpu")) == 512 and 512 in sides
    assert made.speed.s_per_mpix == pytest.approx(5.0)
    assert made.speed.s_fixed == pytest.approx(0.02)
