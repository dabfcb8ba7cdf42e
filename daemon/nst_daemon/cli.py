"""`nst-daemon`: options -> DaemonConfig -> Server; a one-line reason for every refusal."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

from nst_client import protocol as P

from . import logs
from .server import DaemonConfig, Server
from .transport import SetupError

log = logging.getLogger("nst_daemon")


def build_parser() -> argparse.ArgumentParser:
    d = DaemonConfig()
    p = argparse.ArgumentParser(
        prog="nst-daemon",
        description="Serve neural style transfer from a warm VGG-19 over ZeroMQ "
        "(protocol v1, see docs/protocol.md).",
    )
    p.add_argument(
        "--endpoint",
        default=d.endpoint,
        help="tcp://HOST:PORT or ipc://PATH (default %(default)s); a non-loopback "
        "address needs --curve-secret-key and --curve-allow",
    )
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--weights", default=d.weights, help="VGG-19 weights (default %(default)s)")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=d.max_pixels,
        help="largest image (width x height) a request may carry or a style may be scaled "
        "to; also caps each ZeroMQ frame and the images the queue holds "
        f"({P.HELD_LAYERS} f32 RGBA layers of this size) (default %(default)s)",
    )
    p.add_argument(
        "--max-tile-size",
        type=int,
        default=d.max_tile_size,
        help="largest tile (side in pixels) one VGG-19 pass may see: a job's tile_size and "
        "the pieces its styles are read in; memory per job grows with its square "
        "(default %(default)s)",
    )
    p.add_argument(
        "--client-timeout",
        type=float,
        default=d.client_timeout_s,
        help="seconds of silence after which a client's jobs are cancelled "
        "(clients ping every second while waiting; default %(default)s)",
    )
    p.add_argument(
        "--style-cache-mb",
        type=int,
        default=d.style_cache_mb,
        help="memory bound of the style-target cache (default %(default)s)",
    )
    p.add_argument(
        "--memory-fraction",
        type=float,
        default=d.memory_fraction,
        help="cap this process at this fraction of the GPU's memory (0 = no cap)",
    )
    p.add_argument(
        "--curve-secret-key",
        metavar="FILE",
        help="server certificate with its secret key (zmq.auth .key_secret file)",
    )
    p.add_argument(
        "--curve-allow",
        metavar="DIR",
        help="directory of allowed client public certificates (*.key)",
    )
    p.add_argument(
        "--idle-exit",
        type=float,
        default=d.idle_exit_s,
        metavar="SECONDS",
        help="exit after this many seconds without a job; 0 = never (default %(default)s; "
        "an engine a plug-in starts on demand gets its idle_exit_s setting, 1800)",
    )
    p.add_argument(
        "--on-demand",
        action="store_true",
        help="mark this daemon as started by a plug-in or `nst daemon start` (shown in status)",
    )
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the jobs on a Ray cluster's workers (one per GPU, or per CPU worker slot on "
        "a node without one) instead of in this process: the Ray head's HOST:PORT, or 'auto' "
        "on a node of the cluster (needs nst-studio[cluster]; docs/cluster.md)",
    )
    p.add_argument(
        "--worker-threads",
        type=int,
        default=d.worker_threads,
        metavar="N",
        help="CPU threads of a worker on a CPU: the daemon's own model, or with --cluster each "
        "CPU worker, a GPU-less node with C CPUs running C // N of them (default 0: all the "
        "cores; with --cluster one worker per such node)",
    )
    p.add_argument(
        "--no-warmup", action="store_true", help="skip the tiny warm-up job after loading the model"
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    return DaemonConfig(
        endpoint=args.endpoint,
        device=args.device,
        weights=args.weights,
        max_pixels=args.max_pixels,
        max_tile_size=args.max_tile_size,
        client_timeout_s=args.client_timeout,
        style_cache_mb=args.style_cache_mb,
        memory_fraction=args.memory_fraction,
        curve_secret_key=args.curve_secret_key,
        curve_allow=args.curve_allow,
        warmup=not args.no_warmup,
        idle_exit_s=args.idle_exit,
        on_demand=args.on_demand,
        cluster=args.cluster,
        worker_threads=args.worker_threads,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level)
    try:
        server = Server(config_from_args(args))
    except SetupError as exc:
        print(f"nst-daemon: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only set a flag: the handler runs on the main thread, which may hold the job lock.
        server.stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.bind()
    except SetupError as exc:
        print(f"nst-daemon: {exc}", file=sys.stderr)
        server.close()
        return 2

    def ready() -> None:
        print(
            f"ready endpoint={server.config.endpoint} device={server.engine.describe()} "
            f"weights={server.engine.weights_name} max_pixels={server.config.max_pixels} "
            f"pid={os.getpid()}",
            flush=True,
        )

    # The socket answers (state "starting") while the model loads on its own thread.
    server.start_loading(on_ready=ready)
    server.serve()
    if server.load_error is not None:
        what = "reach the cluster" if server.config.cluster else "load the model"
        print(f"nst-daemon: cannot {what}: {server.load_error}", file=sys.stderr)
        return 1
    log.info("bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
