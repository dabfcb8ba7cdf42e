#!/usr/bin/env bash
# Run every check: ruff, the fast unit tests and the end-to-end tests (real daemon processes,
# real sockets, GIMP 3 in a Debian 13 chroot, Krita under Xvfb). The editor hosts are set up
# by the tests themselves (apt-get / debootstrap, cached under ~/.cache/nst-tests); that
# needs root. As root (as in CI) a real-host test that cannot run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
    export NST_REQUIRE_HOSTS="${NST_REQUIRE_HOSTS:-1}"
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -ra --durations=15 "$@"
