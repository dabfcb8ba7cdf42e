#!/bin/sh
# Inside the GIMP chroot: the picture of a style per region, in GIMP's own window. Starts Xvfb
# and the full GIMP (gimp-3.0, the profile in /io/profile) with gimp_regions_driver.py as its
# batch script, which stylizes the photo with two styles and then opens the filter's dialog
# over the result; this script shows the dialog's Style 2 tab, saves the whole screen as
# /io/out/gimp-regions.png, closes the dialog and ends GIMP.
# Run by gimp_regions_screenshot.py through gimp_rootfs.sh run.
D=":$(( $$ % 900 + 100 ))"   # abstract X sockets are shared with the host's network namespace
Xvfb "$D" -screen 0 1600x1000x24 -nolisten tcp -noreset >/io/out/xvfb.log 2>&1 &
XVFB=$!
export DISPLAY="$D" GIMP3_DIRECTORY=/io/profile
for _ in $(seq 50); do xdotool getmouselocation >/dev/null 2>&1 && break; sleep 0.1; done

gimp-3.0 --no-splash --batch-interpreter=python-fu-eval \
    -b 'exec(open("/io/regions_driver.py").read())' >/io/out/gimp.log 2>&1 &
GIMP=$!

find_window() {  # $1: title regex, $2: seconds to wait
    for _ in $(seq $(( $2 * 5 ))); do
        w=$(xdotool search --onlyvisible --name "$1" 2>/dev/null | head -1)
        [ -n "$w" ] && { echo "$w"; return 0; }
        sleep 0.2
    done
    return 1
}
rc=0
if dialog=$(find_window "^Neural Style Transfer$" 900); then
    # GIMP's window fills the screen, the dialog over its docks on the right (no window
    # manager places them), the 384 px photo at 200 % on the canvas beside it.
    main=$(find_window "GIMP$" 10) || { echo "no GIMP window" >&2; rc=1; }
    xdotool windowmove "$main" 0 0 windowsize "$main" 1600 1000
    xdotool windowmove "$dialog" 1196 40
    sleep 2
    xdotool windowfocus --sync "$main" key 2   # View > Zoom > 2:1 (200 %)
    sleep 2   # and the engine's state line has its first answer
    xdotool mousemove --window "$dialog" 96 29 click 1    # the dialog's Style 2 tab
    xdotool mousemove 900 10                              # the pointer on the menu bar
    sleep 1
    python3 /io/screenshot.py root /io/out/gimp-regions.png || rc=1
    xdotool windowfocus --sync "$dialog" key Escape
    sleep 2
else
    echo "no dialog of the filter" >&2
    rc=1
fi
kill "$GIMP" 2>/dev/null
wait "$GIMP" 2>/dev/null
kill "$XVFB" 2>/dev/null
wait "$XVFB" 2>/dev/null
exit $rc
