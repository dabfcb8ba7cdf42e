#!/bin/sh
# Inside the GIMP chroot: the filter with no engine running. GIMP runs the filter (the plug-in
# starts the installed engine: the product bound in read-only at its host path), quits, and
# runs it again in a new GIMP against the engine left running; gimp_ondemand_driver.py times
# both. The engine then lives on inside this chroot until its idle time is up: the script
# keeps the chroot's mounts until the host has seen it exit (it touches /io/release).
# Run by tests/e2e/test_gimp.py through gimp_rootfs.sh run (see docs/hosts.md).
gimp() {
    timeout 400 gimp-console-3.0 -i --batch-interpreter=python-fu-eval \
        -b "PHASE = '$1'; exec(open('/io/ondemand_driver.py').read())" --quit
}
gimp cold || exit $?
gimp warm || exit $?
touch /io/out/gimp-done
for _ in $(seq 1800); do   # up to 180 s
    [ -e /io/release ] && exit 0
    sleep 0.1
done
echo "gimp_ondemand.sh: no release from the host within 180 s" >&2
exit 3
