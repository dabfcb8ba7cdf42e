#!/bin/sh
# Inside the GIMP chroot: an interactive run of plug-in-nst-stylize on a virtual display.
# A "user" (xdotool) presses OK in the procedure dialog, then Escape (Cancel) in the progress
# dialog once the job runs; gimp_interactive_driver.py records what came of it in /io/out.
# Run by tests/e2e/test_gimp.py through gimp_rootfs.sh run (see docs/hosts.md).
D=":$(( $$ % 900 + 100 ))"   # abstract X sockets are shared with the host's network namespace
Xvfb "$D" -screen 0 1280x1024x24 -nolisten tcp -noreset >/io/out/xvfb.log 2>&1 &
XVFB=$!
export DISPLAY="$D"
for _ in $(seq 50); do xdotool getmouselocation >/dev/null 2>&1 && break; sleep 0.1; done

find_window() {  # $1: exact title regex; waits up to 60 s
    for _ in $(seq 300); do
        w=$(xdotool search --name "$1" 2>/dev/null | head -1)
        [ -n "$w" ] && { echo "$w"; return 0; }
        sleep 0.2
    done
    return 1
}
(
    w=$(find_window "^Neural Style Transfer$") || { echo "no procedure dialog"; exit 1; }
    echo "procedure dialog $w"
    sleep 1
    xdotool windowfocus --sync "$w" key Return
    p=$(find_window "^Neural Style Transfer: working$") || { echo "no progress dialog"; exit 1; }
    echo "progress dialog $p"
    sleep 2
    xdotool windowfocus --sync "$p" key Escape
    echo "pressed Escape"
) >/io/out/user.log 2>&1 &
USER_PID=$!

timeout 180 gimp-console-3.0 -i --batch-interpreter=python-fu-eval \
    -b 'exec(open("/io/interactive_driver.py").read())' --quit
rc=$?
kill "$USER_PID" 2>/dev/null
kill "$XVFB" 2>/dev/null
wait "$XVFB" 2>/dev/null
exit $rc
