#!/usr/bin/env bash
# A Debian 13 (trixie) chroot with GIMP 3.0.x, as a real test host for the GIMP plug-in.
#
# Why a chroot: CI runs Debian 12, whose GIMP 2.10 has no Python 3 plug-ins; trixie's GIMP 3
# does. docs/hosts.md has the recipe, how the tests drive GIMP, and what was seen. Needs root.
# The rootfs lives outside the repository, under $NST_TEST_CACHE (default ~/.cache/nst-tests),
# so later runs skip the ~3 min build.
#
#   gimp_rootfs.sh prepare            build or restore the rootfs; prints its path last
#   gimp_rootfs.sh pack               save the rootfs as a .tar.zst next to it (for CI caches)
#   gimp_rootfs.sh run IO CMD [ARG..] run CMD in the chroot as uid 1000 with IO at /io;
#                                     env vars named in $NST_CHROOT_ENV are passed through;
#                                     host folders named in $NST_CHROOT_BINDS are bound
#                                     read-only at the same paths (the installed product)
#   gimp_rootfs.sh umount             unmount anything left under the rootfs
#   gimp_rootfs.sh path               print the rootfs path
set -euo pipefail

CACHE="${NST_TEST_CACHE:-$HOME/.cache/nst-tests}"
ROOT="${NST_GIMP_ROOT:-$CACHE/gimp-trixie}"
TARBALL="$CACHE/gimp-trixie-v2.tar.zst"
MIRROR="${NST_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
STAMP="$ROOT/.nst-rootfs-v2"  # bump when PACKAGES change
# xvfb + xdotool: the interactive test drives the plug-in's dialogs on a virtual display.
PACKAGES=(gimp python3-gi gir1.2-gimp-3.0 python3-zmq python3-msgpack xvfb xauth xdotool)

log() { echo "gimp_rootfs: $*" >&2; }

# Mount points under ROOT, deepest first.
mounts_under_root() {
    local real
    real="$(realpath -m "$ROOT")"
    awk -v r="$real/" '{ gsub(/\\040/, " ", $2); if (index($2 "/", r) == 1) print $2 }' \
        /proc/self/mounts | sort -r
}

unmount_all() {
    local m
    for _ in 1 2 3; do
        while read -r m; do
            [ -n "$m" ] && umount -l "$m" 2>/dev/null || true
        done < <(mounts_under_root)
        [ -z "$(mounts_under_root)" ] && return 0
        sleep 0.2
    done
    log "still mounted under $ROOT:"; mounts_under_root >&2
    return 1
}

# Never delete a rootfs with /dev bound into it: that would delete the host's device nodes.
safe_remove_root() {
    unmount_all
    if [ -n "$(mounts_under_root)" ]; then
        log "refusing to delete $ROOT: mounts remain"; exit 1
    fi
    rm -rf --one-file-system "$ROOT"
}

mount_basics() {
    mount -t proc proc "$ROOT/proc"
    mount --rbind /dev "$ROOT/dev"
    mount --make-rslave "$ROOT/dev"
}

build() {
    log "building $ROOT (debootstrap trixie + GIMP 3, a few minutes)"
    if ! command -v debootstrap >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >&2 \
            || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y debootstrap >&2; }
    fi
    [ -e "$ROOT" ] && safe_remove_root
    mkdir -p "$CACHE"
    local final="$ROOT"
    ROOT="$final.partial"   # built aside, moved in place only when complete
    [ -e "$ROOT" ] && safe_remove_root
    debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >&2
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    trap unmount_all EXIT
    trap 'exit 143' TERM INT HUP
    mount_basics
    chroot "$ROOT" apt-get update >&2
    chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y \
        --no-install-recommends "${PACKAGES[@]}" >&2
    chroot "$ROOT" apt-get clean
    chroot "$ROOT" useradd -m -u 1000 tester
    unmount_all
    trap - EXIT TERM INT HUP
    rm -rf "$ROOT/var/lib/apt/lists/"*
    mkdir -p "$ROOT/io"
    touch "$ROOT/$(basename "$STAMP")"
    mv "$ROOT" "$final"
    ROOT="$final"
}

prepare() {
    if [ -f "$STAMP" ]; then
        unmount_all
    elif [ -f "$TARBALL" ]; then
        log "restoring $ROOT from $TARBALL"
        [ -e "$ROOT" ] && safe_remove_root
        mkdir -p "$ROOT"
        zstd -dc -T0 "$TARBALL" | tar -x -C "$ROOT" --numeric-owner
    else
        build
    fi
    [ -f "$STAMP" ] || { log "rootfs at $ROOT is incomplete"; exit 1; }
    echo "$ROOT"
}

pack() {
    [ -f "$STAMP" ] || { log "no rootfs at $ROOT"; exit 1; }
    unmount_all
    log "packing $ROOT into $TARBALL"
    tar -C "$ROOT" --numeric-owner -cf - . | zstd -q -T0 -3 -o "$TARBALL.partial" -f
    mv "$TARBALL.partial" "$TARBALL"
}

# A host folder, read-only at the same path inside: the product (its venv and the Python the
# venv was made from) installed on GIMP's machine, as a user has it. The folders above it in
# the rootfs (never the host's) are opened for the chroot user to walk through (/root is 700).
bind_ro() {
    local src dst dir
    case "$1" in /*) ;; *) log "NST_CHROOT_BINDS: not an absolute path: $1"; exit 2 ;; esac
    src="$(realpath -e "$1")" || { log "NST_CHROOT_BINDS: no folder $1"; exit 2; }
    [ -d "$src" ] && [ "$src" != / ] || { log "NST_CHROOT_BINDS: not a folder: $1"; exit 2; }
    dst="$ROOT$src"
    mkdir -p "$dst"
    dir="$src"
    while dir="$(dirname "$dir")"; [ "$dir" != / ]; do chmod go+x "$ROOT$dir"; done
    mount --bind "$src" "$dst"
    mount -o remount,bind,ro "$dst"
}

run() {
    local io="$1"; shift
    [ -f "$STAMP" ] || { log "no rootfs at $ROOT: run prepare first"; exit 1; }
    [ -d "$io" ] || { log "no folder $io"; exit 1; }
    trap unmount_all EXIT
    trap 'exit 143' TERM INT HUP   # so the EXIT trap unmounts on a kill too
    unmount_all
    mkdir -p "$ROOT/io"
    mount_basics
    mount --bind "$io" "$ROOT/io"
    local bind
    for bind in ${NST_CHROOT_BINDS:-}; do
        bind_ro "$bind"
    done
    local envs=(HOME=/home/tester LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin)
    local name
    for name in ${NST_CHROOT_ENV:-}; do
        [ -n "${!name+x}" ] && envs+=("$name=${!name}")
    done
    set +e
    chroot --userspec=1000:1000 "$ROOT" env -i "${envs[@]}" "$@"
    local rc=$?
    set -e
    unmount_all
    return $rc
}

case "${1:-}" in
    prepare) prepare ;;
    pack) pack ;;
    run) shift; run "$@" ;;
    umount) unmount_all ;;
    path) echo "$ROOT" ;;
    *) echo "usage: $0 prepare|pack|run IO CMD...|umount|path" >&2; exit 2 ;;
esac
