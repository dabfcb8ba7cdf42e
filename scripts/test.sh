#!/usr/bin/env bash
# Every check, in order of speed: ruff (lint + format), mypy, then the test lanes
# (tests/unit: seconds; tests/model: the real VGG-19; tests/e2e: real daemon processes, GIMP 3
# in a Debian 13 chroot, Krita under Xvfb; all of them run the product as the wheel installs
# it, in .venv-product, which `scripts/setup.sh product` brings up to date first). The editor
# hosts are set up by the tests themselves (apt-get / debootstrap, cached under
# ~/.cache/nst-tests; docs/hosts.md); that needs root. As root (as in CI) a real-host test that
# cannot run fails instead of skipping.
#
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh unit       the fast lane only (no root, under 30 s); also: model, e2e
#   bash scripts/test.sh e2e -k gimp   a lane, with pytest's own options after it
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
    export NST_REQUIRE_HOSTS="${NST_REQUIRE_HOSTS:-1}"
fi
lanes=(unit model e2e)
case "${1:-}" in
    unit|model|e2e) lanes=("$1"); shift ;;
esac
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
for lane in "${lanes[@]}"; do
    if [ "$lane" = e2e ]; then
        # The end-to-end lane runs the wheel-installed product: rebuilt when the tree changed.
        bash scripts/setup.sh product
    fi
    echo "== tests/$lane"
    .venv/bin/python -m pytest -ra --durations=10 "tests/$lane" "$@"
done
