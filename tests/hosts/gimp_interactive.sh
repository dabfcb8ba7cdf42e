#!/bin/sh
# Inside the GIMP chroot: interactive runs of plug-in-nst-stylize on a virtual display.
# A "user" (xdotool) plays one of two scenarios, taking pictures of the dialogs on the way
# (screenshot.py); gimp_interactive_driver.py records what came of each run in /io/out.
#   sh interactive.sh job     OK in the procedure dialog and Escape (Cancel) in the progress
#                             dialog while the job runs; then OK again and the job runs to its
#                             end (pictures: gimp-procedure-dialog-time-limit of the first,
#                             gimp-procedure-dialog and gimp-progress-dialog of the second)
#   sh interactive.sh start   no engine running: OK, and Escape while the engine starts
#                             (picture: gimp-progress-starting); the engine goes on starting
#                             inside this chroot, so the script then keeps the chroot's mounts
#                             until the host is done with it (it touches /io/release)
# Run by tests/e2e/test_gimp.py through gimp_rootfs.sh run (see docs/hosts.md).
SCENARIO="${1:-job}"
D=":$(( $$ % 900 + 100 ))"   # abstract X sockets are shared with the host's network namespace
Xvfb "$D" -screen 0 1280x1024x24 -nolisten tcp -noreset >/io/out/xvfb.log 2>&1 &
XVFB=$!
export DISPLAY="$D"
for _ in $(seq 50); do xdotool getmouselocation >/dev/null 2>&1 && break; sleep 0.1; done

find_window() {  # $1: exact title regex; waits up to 60 s
    for _ in $(seq 300); do
        w=$(xdotool search --onlyvisible --name "$1" 2>/dev/null | head -1)
        [ -n "$w" ] && { echo "$w"; return 0; }
        sleep 0.2
    done
    return 1
}
wait_gone() {  # $1: window id; waits up to 120 s for it to close
    for _ in $(seq 600); do
        xdotool getwindowname "$1" >/dev/null 2>&1 || return 0
        sleep 0.2
    done
    return 1
}
shot() {  # $1: window id, $2: name
    python3 /io/screenshot.py "$1" "/io/out/$2.png" || echo "screenshot $2 failed"
}
ok() {  # OK in the procedure dialog; prints the progress dialog's id
    w=$(find_window "^Neural Style Transfer$") || { echo "no procedure dialog" >&2; return 1; }
    echo "procedure dialog $w" >&2
    sleep "$1"
    [ -n "$2" ] && shot "$w" "$2" >&2
    xdotool windowfocus --sync "$w" key Return
    p=$(find_window "^Neural Style Transfer: working$") || { echo "no progress dialog" >&2; return 1; }
    echo "progress dialog $p" >&2
    echo "$p"
}
job() {
    # 1. A job cancelled while it runs (first: a cancelled run leaves no last-used values);
    #    it has a time limit, so the dialog's quality is greyed.
    p=$(ok 1 gimp-procedure-dialog-time-limit) || exit 1
    sleep 2
    xdotool windowfocus --sync "$p" key Escape
    echo "pressed Escape"
    wait_gone "$p" || { echo "the cancelled job's dialog stayed"; exit 1; }
    # 2. A job through to its end; the state line has its first answer after 3 s. The
    #    picture 1 s in: the job (the final preset on the small layer) takes about 2 s.
    p=$(ok 3 gimp-procedure-dialog) || exit 1
    sleep 1
    shot "$p" gimp-progress-dialog
    wait_gone "$p" || { echo "the job did not end"; exit 1; }
    echo "job ended"
}
start() {
    p=$(ok 1 "") || exit 1
    sleep 1
    shot "$p" gimp-progress-starting
    xdotool windowfocus --sync "$p" key Escape
    echo "pressed Escape"
    wait_gone "$p" || { echo "the cancelled start's dialog stayed"; exit 1; }
    echo "dialog closed"
}
(
    case "$SCENARIO" in
        job) job ;;
        start) start ;;
        *) echo "unknown scenario $SCENARIO"; exit 2 ;;
    esac
) >/io/out/user.log 2>&1 &
USER_PID=$!

timeout 300 gimp-console-3.0 -i --batch-interpreter=python-fu-eval \
    -b 'exec(open("/io/interactive_driver.py").read())' --quit
rc=$?
kill "$USER_PID" 2>/dev/null
kill "$XVFB" 2>/dev/null
wait "$XVFB" 2>/dev/null
if [ "$SCENARIO" = start ]; then
    touch /io/out/gimp-done
    for _ in $(seq 1800); do   # up to 180 s
        [ -e /io/release ] && exit $rc
        sleep 0.1
    done
    echo "interactive.sh: no release from the host within 180 s" >&2
    exit 3
fi
exit $rc
