#!/usr/bin/env bash
# Debian's Krita (5.1.x) under Xvfb, as a real test host for the Krita plug-in.
#
# See docs/hosts.md: Krita runs pykrita plug-ins with the system python3, needs an
# X server (Xvfb; the offscreen platform aborts), and python3-pyqt5 is only "recommended" by
# the krita package, so it is named here. python3-zmq/msgpack let the plug-in talk ZeroMQ
# directly; the bridge path is tested by forcing it in the plug-in's config.
#
#   krita_host.sh install           apt-get install what is missing (root; ~45 s, ~315 MB)
#   krita_host.sh check             exit 0 when everything is there, else print what is missing
#   krita_host.sh without-zmq CMD   run CMD where the system python3 cannot import zmq (root)
#
# without-zmq is Krita on Windows/macOS or a distribution without python3-zmq, for real: in a
# private mount namespace (unshare) /usr/lib/python3/dist-packages is replaced by a folder of
# links to all of its entries except pyzmq's, so `import zmq` fails in CMD and its children
# only. (An empty folder bound over .../zmq is not enough: Python imports it as a namespace
# package, `import zmq` succeeds and only zmq.Context is missing.)
set -euo pipefail

DIST=/usr/lib/python3/dist-packages

PACKAGES=(krita python3-pyqt5 xvfb xauth python3-zmq python3-msgpack x11-apps)

missing() {
    local out=()
    command -v krita >/dev/null || out+=(krita)
    command -v xvfb-run >/dev/null || out+=(xvfb)
    command -v xauth >/dev/null || out+=(xauth)
    command -v xwd >/dev/null || out+=(x11-apps)
    /usr/bin/python3 -c 'import PyQt5.QtWidgets' 2>/dev/null || out+=(python3-pyqt5)
    /usr/bin/python3 -c 'import zmq' 2>/dev/null || out+=(python3-zmq)
    /usr/bin/python3 -c 'import msgpack' 2>/dev/null || out+=(python3-msgpack)
    echo "${out[@]:-}"
}

# Inside the namespace: shadow dist-packages, check, exec the command.
shadow_zmq() {
    local keep shadow entry name
    keep=$(mktemp -d) shadow=$(mktemp -d)
    mount --bind "$DIST" "$keep"
    for entry in "$keep"/*; do
        name=$(basename "$entry")
        case "$name" in zmq | pyzmq-* | pyzmq.libs) continue ;; esac
        ln -s "$entry" "$shadow/$name"
    done
    mount --bind "$shadow" "$DIST"
    if /usr/bin/python3 -c 'import zmq' 2>/dev/null; then
        echo "krita_host: zmq is still importable without $DIST/zmq" >&2
        exit 1
    fi
    exec "$@"
}

case "${1:-}" in
    shadow-zmq)  # internal: the namespace's first step
        shift
        shadow_zmq "$@"
        ;;
    without-zmq)
        shift
        if [ "$(id -u)" != 0 ]; then
            echo "krita_host: without-zmq needs root (a mount namespace)" >&2
            exit 2
        fi
        exec unshare --mount --propagation private "$0" shadow-zmq "$@"
        ;;
    check)
        m="$(missing)"
        if [ -n "$m" ]; then echo "missing: $m"; exit 1; fi
        ;;
    install)
        m="$(missing)"
        [ -z "$m" ] && exit 0
        if [ "$(id -u)" != 0 ]; then
            echo "krita_host: need root to apt-get install ${PACKAGES[*]} (missing: $m)" >&2
            exit 2
        fi
        echo "krita_host: installing ${PACKAGES[*]} (missing: $m)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${PACKAGES[@]}" >/dev/null
        m="$(missing)"
        if [ -n "$m" ]; then echo "krita_host: still missing after install: $m" >&2; exit 1; fi
        ;;
    *)
        echo "usage: $0 install|check|without-zmq CMD..." >&2
        exit 2
        ;;
esac
