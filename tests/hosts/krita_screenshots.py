"""Copy the Krita pictures the end-to-end tests took into docs/screenshots, as JPEG.

The tests write whole-screen PNGs under $NST_ARTIFACTS/krita (default ./artifacts/krita); the
docs keep JPEG copies at the screen's size. Run after `tests/e2e/test_krita.py` (the pictures
come from test_the_readme_pictures and test_the_regions_picture):

    .venv/bin/python tests/hosts/krita_screenshots.py krita-regions.jpg    # or no name: all
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("NST_ARTIFACTS", REPO / "artifacts")) / "krita"
DOCS = REPO / "docs" / "screenshots"
#: The docs' picture and the test's screenshot it is made from.
PICTURES = {
    "krita-docker.jpg": "krita_readme_result.png",
    "krita-docker-running.jpg": "krita_readme_during_run.png",
    "krita-regions.jpg": "krita_regions_picture_result.png",
}
JPEG_QUALITY = 88


def main(names: list[str]) -> int:
    unknown = [name for name in names if name not in PICTURES]
    if unknown:
        print(f"unknown pictures {unknown}; known: {sorted(PICTURES)}", file=sys.stderr)
        return 2
    for name in names or list(PICTURES):
        source = ARTIFACTS / PICTURES[name]
        if not source.is_file():
            print(f"{source} is missing: run tests/e2e/test_krita.py first", file=sys.stderr)
            return 1
        with Image.open(source) as picture:
            picture.convert("RGB").save(DOCS / name, quality=JPEG_QUALITY, optimize=True)
        print(f"{DOCS / name} from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
