"""The product the end-to-end tests run: the wheel installed in a fresh venv, as a user has it.

`scripts/setup.sh` builds the wheel (dist/) and installs it, and nothing else, into
`.venv-product`; the editor tests install the plug-ins with that venv's `nst`, start its
`nst-daemon` and run the bridge with its Python. The tests themselves run in `.venv` (they
import nst_core to judge pixels). NST_PRODUCT_VENV points elsewhere; where there is no
product venv (a developer who ran only `pip install -e .`), the test venv stands in, unless
NST_REQUIRE_HOSTS=1 (CI, root), where that is a failure.

A product venv older than the checkout (a file changed since setup.sh installed the wheel)
fails the test that asks for it: it would test yesterday's code. `bash scripts/setup.sh
product` brings it up to date (scripts/test.sh does that before the e2e lane).
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = ROOT / ".venv-product"
#: Where each installed package's files come from in the checkout (pyproject's package-dir),
#: longest prefix first.
SOURCES = (
    ("nst_plugins/gimp/", "plugins/gimp/"),
    ("nst_plugins/krita/", "plugins/krita/"),
    ("nst_plugins/", "plugins/nst_plugins/"),
    ("nst_daemon/", "daemon/nst_daemon/"),
    ("nst_client/", "nst_client/"),
    ("nst_core/", "nst_core/"),
)


def _record(venv: Path) -> tuple[Path, dict[str, str]] | None:
    """The product's site-packages and its wheel's files (path -> sha256 as in RECORD)."""
    for dist_info in venv.glob("lib/python*/site-packages/nst_studio-*.dist-info"):
        text = (dist_info / "RECORD").read_text(encoding="utf-8")
        files = {
            row[0]: row[1].removeprefix("sha256=")
            for row in csv.reader(text.splitlines())
            if len(row) == 3 and row[1].startswith("sha256=")
        }
        return dist_info.parent, files
    return None


def _digest(path: Path) -> str:
    raw = hashlib.sha256(path.read_bytes()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _source(installed: str) -> Path | None:
    for prefix, folder in SOURCES:
        if installed.startswith(prefix):
            return ROOT / folder / installed.removeprefix(prefix)
    return None


def stale_files(venv: Path) -> list[str]:
    """The checkout's files that differ from the product's copies, or that the product
    lacks (a new module); [] when the product is this checkout's."""
    found = _record(venv)
    if found is None:
        return ["(no nst_studio installed)"]
    _, files = found
    stale = []
    for installed, digest in sorted(files.items()):
        source = _source(installed)
        if source is not None and (not source.is_file() or _digest(source) != digest):
            stale.append(str(source.relative_to(ROOT)))
    shipped = {_source(name) for name in files}
    for _, folder in SOURCES:
        for source in sorted((ROOT / folder).rglob("*.py")):
            if source not in shipped and "__pycache__" not in source.parts:
                stale.append(str(source.relative_to(ROOT)))
    return sorted(set(stale))


@functools.cache
def venv() -> Path:
    """The product's venv folder (the wheel's), or the test venv where there is none."""
    chosen = os.environ.get("NST_PRODUCT_VENV")
    path = Path(chosen) if chosen else DEFAULT_VENV
    if (path / "bin" / "nst-daemon").exists():
        stale = stale_files(path)
        if stale:
            pytest.fail(
                f"the product in {path} is older than the checkout ({', '.join(stale[:5])}"
                f"{', ...' if len(stale) > 5 else ''}): run `bash scripts/setup.sh product`"
            )
        return path
    if os.environ.get("NST_REQUIRE_HOSTS") == "1":
        pytest.fail(f"no wheel-installed product at {path}: run scripts/setup.sh")
    return Path(sys.executable).parent.parent


def bin_path(name: str) -> str:
    """An executable of the product: nst, nst-daemon, python."""
    return str(venv() / "bin" / name)


def python() -> str:
    return bin_path("python")


def site_packages() -> Path | None:
    """Where the product's packages are installed (None when the test venv stands in)."""
    if venv() == Path(sys.executable).parent.parent:
        return None
    found = _record(venv())
    return found[0] if found else None
