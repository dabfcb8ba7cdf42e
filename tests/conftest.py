"""Test lanes and shared fixtures (the real VGG-19 and small real images).

Lanes, by folder (each test gets the folder's marker, so `-m unit` picks a lane):
- tests/unit: no processes, no model weights; seconds. Fakes only here (Krita stand-in,
  scripted transports, a fake engine).
- tests/model: the real VGG-19 in this process (engine, optimiser, quality bars); minutes.
- tests/e2e: real processes and sockets: the daemon, the CLI, GIMP 3 and Krita.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from nst_core.vgg import VGGFeatures


@pytest.fixture(scope="session", autouse=True)
def settings_home(tmp_path_factory: pytest.TempPathFactory) -> Generator[Path, None, None]:
    """The user's settings folder is a temporary one for the whole run (the processes the
    tests start inherit it), so the local engine keys the tests make (keyfiles.local_keys)
    never land in the real home, and every daemon and client of the run shares them."""
    folder = tmp_path_factory.mktemp("config")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(folder))
        yield folder


@pytest.fixture(scope="session")
def model() -> VGGFeatures:
    from nst_core.engine import load_model

    return load_model("caffe", "cpu")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """scikit-image's astronaut, 64 x 64 RGB u8."""
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((64, 64), Image.Resampling.LANCZOS))


@pytest.fixture(scope="session")
def style_image() -> np.ndarray:
    """The bundled swirls style, 96 x 96 RGB u8."""
    from PIL import Image

    from nst_app.demo import swirls

    return np.asarray(Image.fromarray(swirls(256)).resize((96, 96), Image.Resampling.LANCZOS))


LANES = ("unit", "model", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent
    for item in items:
        lane = Path(str(item.path)).resolve().relative_to(root).parts[0]
        if lane not in LANES:
            raise pytest.UsageError(
                f"{item.nodeid}: tests live in tests/unit, tests/model or tests/e2e"
            )
        item.add_marker(getattr(pytest.mark, lane))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With NST_REQUIRE_HOSTS=1 (CI, as root) a skipped end-to-end test is a failure."""
    report = yield
    if (
        report.skipped
        and os.environ.get("NST_REQUIRE_HOSTS") == "1"
        and item.get_closest_marker("e2e") is not None
    ):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"end-to-end test skipped but NST_REQUIRE_HOSTS=1: {reason}"
    return report
