"""The picture of a style per region in GIMP (docs/screenshots/gimp-regions.png), remade:

    sudo .venv/bin/python tests/hosts/gimp_regions_screenshot.py docs/screenshots/gimp-regions.png

As root, like the GIMP end-to-end tests, whose host it uses (tests/hosts/gimp_rootfs.sh, the
product from `bash scripts/setup.sh product`, docs/hosts.md). A product engine runs on this
machine's loopback (CPU); the full GIMP 3 runs on Xvfb inside the chroot with a profile of its
own (nothing of the tests' GIMP profile changes): scikit-image's astronaut at 384 px, a
feathered ellipse around her saved as the channel "Astronaut", the filter with swirls on the
rest of the image and dots on the channel (the normal preset), then its dialog over the
result on the Style 2 tab (gimp_regions.sh, gimp_regions_driver.py). A few minutes on two
CPU cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOSTS = REPO / "tests" / "hosts"
sys.path.insert(0, str(REPO / "tests" / "e2e"))

#: The photo's side; the ellipse around the astronaut (x, y, w, h) and its feather, in it.
SIDE = 384
ELLIPSE = (20, 12, 270, 440)
FEATHER = 40.0


def _pictures(io: Path) -> None:
    from PIL import Image

    from nst_app.demo import default_content, dots, swirls

    photo = Image.fromarray(default_content()).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    photo.save(io / "photo.png")
    Image.fromarray(swirls(256)).save(io / "swirls.png")
    Image.fromarray(dots(256)).save(io / "dots.png")
    job = {
        "photo": "/io/photo.png",
        "style": "/io/swirls.png",
        "style_2": "/io/dots.png",
        "channel": "Astronaut",
        "ellipse": list(ELLIPSE),
        "feather": FEATHER,
        "args": {"quality": "normal", "size": 0, "iterations": 0, "strength-2": 60.0},
    }
    (io / "regions.json").write_text(json.dumps(job, indent=1))
    for name in ("gimp_regions.sh", "gimp_regions_driver.py", "gimp_screenshot.py"):
        shutil.copyfile(HOSTS / name, io / name.replace("gimp_", ""))


def main(out: Path) -> int:
    if os.geteuid() != 0:
        print("needs root (the GIMP host is a chroot)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="nst-gimp-regions-"))
    os.environ["XDG_CONFIG_HOME"] = str(work / "config")  # the engine's keys: this run's own
    import product
    import test_gimp as e2e
    from daemon_process import DaemonProc, free_port

    prepared = subprocess.run(
        [str(e2e.ROOTFS_SH), "prepare"], capture_output=True, text=True, check=True
    )
    print("GIMP rootfs:", prepared.stdout.strip().splitlines()[-1])
    io = e2e._new_io(work)
    _pictures(io)
    e2e._open_io(io)
    profile = io / "profile"
    (profile / "plug-ins").mkdir(parents=True)
    (profile / "gimprc").write_text("(show-welcome-dialog no)\n")
    daemon = DaemonProc(f"tcp://127.0.0.1:{free_port()}", "--device", "cpu")
    try:
        install = [product.bin_path("nst"), "install-plugin", "gimp"]
        subprocess.run(
            [*install, "--dest", str(profile / "plug-ins"), "--endpoint", daemon.endpoint],
            check=True,
        )
        subprocess.run(["chown", "-R", "1000:1000", str(profile)], check=True)
        run = e2e._run_in_chroot(io, ["sh", "/io/regions.sh"], e2e._host_keys(io))
    finally:
        daemon.stop()
    print(run.stdout[-3000:])
    result = io / "out" / "regions.json"
    print(result.read_text() if result.exists() else "(the driver wrote no result)")
    picture = io / "out" / "gimp-regions.png"
    if run.returncode != 0 or not picture.exists():
        log = io / "out" / "gimp.log"
        print(log.read_text()[-4000:] if log.exists() else "(no GIMP log)", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(picture, out)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{out}: GIMP's screen with the dialog over a result of two regions")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts/gimp/gimp-regions.png")))
