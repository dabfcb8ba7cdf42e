#!/usr/bin/env bash
# Debian's Krita (5.1.x) under Xvfb, as a real test host for the Krita plug-in.
#
# See docs/hosts.md: Krita runs pykrita plug-ins with the system python3, needs an
# X server (Xvfb; the offscreen platform aborts), and python3-pyqt5 is only "recommended" by
# the krita package, so it is named here. python3-zmq/msgpack let the plug-in talk ZeroMQ
# directly; the bridge path is tested by forcing it in the plug-in's config.
#
#   krita_host.sh install   apt-get install what is missing (root; ~45 s, ~315 MB); idempotent
#   krita_host.sh check     exit 0 when everything is there, else print what is missing
set -euo pipefail

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

case "${1:-}" in
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
        echo "usage: $0 install|check" >&2
        exit 2
        ;;
esac
