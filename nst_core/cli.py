"""The `nst` command: stylize files (locally or through the daemon), demo, the daemon's state,
starting and stopping it (`nst daemon start|stop|status`), plug-ins.

Every user error (missing file, unreadable image, bad value, no daemon) is one line on stderr
naming what was wrong, with exit status 2; an optimisation that failed is one line and exit
status 1, with nothing written; Ctrl-C writes the image as far as it got.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from nst_client.launcher import precision_words
from nst_client.progress import Progress, parse_duration
from nst_client.protocol import DEFAULT_ENDPOINT, DEFAULT_MAX_PIXELS
from nst_client.settings import TRANSPORTS, Settings
from nst_plugins.install import CHOICES as PLUGIN_HOSTS
from nst_plugins.install import DEFAULT_IDLE_EXIT_S, idle_seconds

from .imageio import ImageFileError
from .params import PARAM_NAMES, QUALITY_PRESETS, ParamError, StyleParams, make_params

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error to print as one line, exit status 2."""


def _size(text: str) -> int | str:
    if text == "full":
        return "full"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of pixels or 'full', got {text!r}"
        ) from None


def _duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(
            f"expected seconds or a duration like 90s, 2m or 1m30s, got {text!r}"
        )
    return seconds


def _pixels(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels, got {text!r}")
    return int(text)


def _add_param_options(parser: argparse.ArgumentParser) -> None:
    d = StyleParams()
    parser.add_argument(
        "--quality",
        default=d.quality,
        metavar="PRESET",
        help=f"{', '.join(QUALITY_PRESETS)}: a quick look at a small size, the classic look "
        "(about a minute on a laptop CPU), or the layer's own resolution where the machine "
        "allows (default %(default)s)",
    )
    parser.add_argument(
        "--time-budget",
        type=_duration,
        default=d.time_budget,
        metavar="SECONDS",
        help="fit the job into this time (90, 90s, 2m, 1m30s; 5 s to 24 h): the planner picks "
        "the size and the work for this device, and --quality does not apply",
    )
    parser.add_argument(
        "--size",
        type=_size,
        default=d.size,
        help="long side of the last scale in pixels, or 'full' (default: the planner's, from "
        "--quality or --time-budget and the device's speed)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=d.iterations,
        help="a fixed number of iterations at every scale, for scripts (default: the "
        "planner's, from --quality or --time-budget)",
    )
    parser.add_argument(
        "--no-restore-detail",
        dest="restore_detail",
        action="store_false",
        help="when the last scale is smaller than the content, upscale the result plainly "
        "(bicubic) instead of putting the content's fine detail back",
    )
    parser.add_argument(
        "--strength",
        type=float,
        default=d.strength,
        help="how much style: 0 = a hint, 50 = the classic look, 100 = only the "
        "painting's texture (default %(default)s)",
    )
    parser.add_argument(
        "--content-weight", type=float, default=d.content_weight, help="alpha (default %(default)s)"
    )
    parser.add_argument(
        "--style-weight",
        type=float,
        default=d.style_weight,
        help="beta, for experts: overrides --strength",
    )
    parser.add_argument(
        "--tv-weight",
        type=float,
        default=d.tv_weight,
        help="total-variation weight (default %(default)s)",
    )
    parser.add_argument(
        "--raw-costs",
        dest="normalize_costs",
        action="store_false",
        help="the seed's raw costs: no division by the targets' energies",
    )
    parser.add_argument("--optimizer", default=d.optimizer, help="lbfgs or adam")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=d.learning_rate,
        help="Adam step size (default %(default)s)",
    )
    parser.add_argument("--init", default=d.init, help="content or noise")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--style-scale", type=float, default=d.style_scale)
    parser.add_argument(
        "--preserve-colors",
        action="store_true",
        help="luminance-only transfer: keep the content's colours",
    )
    parser.add_argument("--pooling", default=d.pooling, help="max or avg")
    parser.add_argument(
        "--tile-size",
        type=int,
        default=d.tile_size,
        help="scales larger than this are optimised in tiles (bounded memory)",
    )
    parser.add_argument("--device", default=d.device, help="auto, cpu, cuda or mps")
    parser.add_argument(
        "--precision",
        default=d.precision,
        help="auto (the fastest measured on this device within tolerance), fp32, bf16 or fp16",
    )
    parser.add_argument(
        "--weights",
        default="caffe",
        help="caffe (default, offline), torchvision, or a state-dict path",
    )
    parser.add_argument(
        "--allow-download",
        action="store_true",
        help="let --weights torchvision download once if not cached",
    )
    parser.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="also write the image every N iterations (OUT_iterNNNN.ext)",
    )


def _params(args: argparse.Namespace) -> Any:
    values = {name: getattr(args, name) for name in PARAM_NAMES if hasattr(args, name)}
    if values.get("iterations") is not None and values.get("time_budget") is not None:
        raise UserError(
            "--iterations fixes the work and --time-budget fits it to a time: give one of them"
        )
    return make_params(values)


def _add_curve_options(parser: argparse.ArgumentParser) -> None:
    """The CURVE keys of a remote daemon (one bound to a non-loopback address)."""
    parser.add_argument(
        "--curve-server-key",
        metavar="FILE",
        help="the daemon's public CURVE key: its server.key file, or the 40-character key "
        "(default: $NST_CURVE_SERVER_KEY)",
    )
    parser.add_argument(
        "--curve-client-cert",
        metavar="FILE",
        help="this client's secret certificate, client.key_secret; its client.key must be "
        "in the daemon's --curve-allow folder (default: $NST_CURVE_CLIENT_CERT)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nst", description="Neural style transfer for artists.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stylize", help="stylize CONTENT with one or more STYLE images")
    s.add_argument("content")
    s.add_argument("styles", nargs="+", metavar="style")
    s.add_argument("-o", "--output", required=True)
    s.add_argument(
        "--max-pixels",
        type=_pixels,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="refuse content and style images with more pixels, from their header "
        "(default %(default)s, 8192 x 8192, the daemon's)",
    )
    s.add_argument(
        "--style-weights",
        type=float,
        nargs="+",
        metavar="W",
        help="blend weight of each style image (default equal)",
    )
    s.add_argument(
        "--daemon",
        nargs="?",
        const=DEFAULT_ENDPOINT,
        metavar="ENDPOINT",
        help="run the job on the warm daemon (default endpoint %(const)s); a local one that "
        "is not running is started and exits after 30 min without a job",
    )
    s.add_argument(
        "--no-start",
        action="store_true",
        help="with --daemon: do not start the daemon when none answers",
    )
    _add_curve_options(s)
    _add_param_options(s)

    demo = sub.add_parser("demo", help="stylize the bundled photo with the bundled style")
    demo.add_argument("-o", "--output", default="nst-demo.png")
    _add_param_options(demo)
    # The demo runs cmd_stylize locally (the default preset unless told): every stylize
    # option it lacks, at its default.
    demo.set_defaults(
        max_pixels=DEFAULT_MAX_PIXELS,
        style_weights=None,
        daemon=None,
        no_start=False,
        curve_server_key=None,
        curve_client_cert=None,
    )

    dm = sub.add_parser(
        "daemon",
        help="start, stop or look at the local style engine (nst-daemon) shared by the "
        "plug-ins and this command",
    )
    dm.add_argument("action", choices=("start", "stop", "status"))
    dm.add_argument(
        "--endpoint", help=f"the engine's endpoint (default: $NST_ENDPOINT or {DEFAULT_ENDPOINT})"
    )
    dm.add_argument(
        "--idle-exit",
        type=idle_seconds,
        default=0.0,
        metavar="SECONDS",
        help="start: exit after this long without a job (default 0: stays until stopped)",
    )
    dm.add_argument("--device", help="start: auto, cpu, cuda, cuda:N or mps (default auto)")
    _add_curve_options(dm)

    st = sub.add_parser("status", help="show the daemon's state")
    st.add_argument(
        "--endpoint", help=f"the daemon's endpoint (default: $NST_ENDPOINT or {DEFAULT_ENDPOINT})"
    )
    st.add_argument(
        "--timeout", type=float, help="seconds to wait for it (default: $NST_TIMEOUT or 5)"
    )
    _add_curve_options(st)

    for verb in ("install-plugin", "uninstall-plugin"):
        p = sub.add_parser(verb, help=f"{verb.split('-')[0]} the GIMP or Krita plug-in, or both")
        p.add_argument("host", choices=PLUGIN_HOSTS)
        p.add_argument("--dest", help="the editor's plug-in folder (default: found)")
        p.add_argument(
            "--flatpak",
            action=argparse.BooleanOptionalAction,
            help="the Flatpak editor (~/.var/app); --no-flatpak: the one installed otherwise "
            "(default: the Flatpak one only when it alone has a profile"
            + (")" if verb == "install-plugin" else "; uninstall: both)"),
        )
        if verb == "install-plugin":
            p.add_argument("--endpoint", default=DEFAULT_ENDPOINT)
            p.add_argument("--transport", default="auto", choices=TRANSPORTS)
            _add_curve_options(p)
            p.add_argument(
                "--idle-exit",
                type=idle_seconds,
                default=DEFAULT_IDLE_EXIT_S,
                metavar="SECONDS",
                help="an engine the plug-ins started exits after this long without a job "
                "(0: never; default %(default)g)",
            )
            p.add_argument(
                "--no-start-on-demand",
                dest="start_on_demand",
                action="store_false",
                help="never start the engine from the plug-ins (start it with nst daemon start)",
            )

    fw = sub.add_parser("fetch-weights", help="download torchvision's VGG-19 once (internet)")
    fw.add_argument("which", choices=("torchvision",))
    return parser


class _Bar:
    """tqdm progress bar in thousandths of the job, fed by engine or daemon progress."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.bar: Any = None

    def update(self, p: Progress) -> None:
        if self.bar is None:
            self.bar = self._tqdm(
                total=1000,
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {postfix}",
            )
        self.bar.set_description(p.text(), refresh=False)
        if p.iteration > 0:
            postfix = (
                f"step {p.iteration}/{p.iterations}, J={p.loss_total:.3g} "
                f"Jc={p.loss_content:.3g} Js={p.loss_style:.3g}"
            )
        else:  # the planned job, before its first step
            postfix = f"step 0/{p.iterations}"
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(int(p.fraction * 1000) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _save_every_path(output: Path, iteration: int) -> Path:
    return output.with_name(f"{output.stem}_iter{iteration:04d}{output.suffix}")


def _failed(message: str) -> int:
    print(f"nst: error: optimisation failed: {message}; nothing written", file=sys.stderr)
    return EXIT_FAILED


def _stylize_local(
    content: Any,
    styles: list[tuple[Any, float]],
    params: StyleParams,
    args: argparse.Namespace,
    output: Path,
) -> int:
    from .engine import OptimisationFailed, StylizeCancelled, load_model, stylize
    from .imageio import write_image
    from .vgg import WeightsError

    try:
        model = load_model(args.weights, params.device, args.allow_download)
    except (WeightsError, ValueError) as exc:
        raise UserError(str(exc)) from None
    _say_plan(model, content.shape[:2], params)
    stop = threading.Event()
    bar = _Bar()

    def on_progress(p: Progress) -> None:
        bar.update(p)
        if p.preview is not None:
            write_image(_save_every_path(output, p.iteration), p.preview)

    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        result = stylize(
            content,
            styles,
            params,
            on_progress,
            stop.is_set,
            preview_every=args.save_every,
            model=model,
        )
    except StylizeCancelled as cancelled:
        bar.close()
        if cancelled.partial is not None:
            write_image(output, cancelled.partial)
            print(f"interrupted: wrote the image as far as it got to {output}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OptimisationFailed as exc:
        bar.close()
        return _failed(str(exc))
    finally:
        signal.signal(signal.SIGINT, previous)
    bar.close()
    write_image(output, result)
    print(f"wrote {output}")
    return 0


def _say_plan(model: Any, content_hw: tuple[int, int], params: StyleParams) -> None:
    """The job's plan and the precision it runs in, on stderr above the progress bar, in
    the words `nst status` uses for a daemon's. The engine plans the same (make_plan is a
    pure function of these), after the same one-off measurement of this device."""
    from . import calibrate
    from .plan import make_plan

    profile = calibrate.profile(model)
    plan = make_plan((int(content_hw[0]), int(content_hw[1])), params, profile.speed)
    print(f"plan: {plan.describe()}", file=sys.stderr)
    if params.precision == "auto":
        print(f"precision: {profile.words()}", file=sys.stderr)
    else:
        print(f"precision: {params.precision} (as asked)", file=sys.stderr)


def daemon_params(params: StyleParams) -> dict[str, Any]:
    """What a job sends the daemon: the params that differ from the engine's defaults (so an
    unsized job stays the daemon's planner's to size), never the device (the daemon's own)."""
    defaults = StyleParams().to_dict()
    return {k: v for k, v in params.to_dict().items() if k != "device" and v != defaults[k]}


def _stylize_daemon(
    content: Any,
    styles: list[tuple[Any, float]],
    params: Any,
    args: argparse.Namespace,
    output: Path,
) -> int:
    from nst_client import layouts
    from nst_client.client import DaemonError, DaemonUnavailable, JobCancelled, connect
    from nst_client.protocol import OPTIMISATION_FAILED

    from .imageio import write_image

    stop = threading.Event()
    bar = _Bar()
    sent = daemon_params(params)

    def on_progress(p: Progress) -> None:
        bar.update(p)
        if p.preview is not None:
            write_image(_save_every_path(output, p.iteration), layouts.to_array(*p.preview))

    settings = _daemon_settings(args.daemon, args)
    settings.start_on_demand = not args.no_start
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        _ensure_engine(settings, stop.is_set)
        with connect(settings, "nst-cli") as client:
            client.hello()
            raw = [(layouts.from_array(a, 0), w) for a, w in styles]
            done = client.stylize_raw(
                layouts.from_array(content, 0),
                raw,
                sent,
                on_progress=on_progress,
                should_cancel=stop.is_set,
                preview_every=args.save_every,
            )
    except JobCancelled:
        bar.close()
        print("interrupted: the daemon cancelled the job; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (DaemonUnavailable, DaemonError) as exc:
        bar.close()
        if isinstance(exc, DaemonError) and exc.code == OPTIMISATION_FAILED:
            return _failed(exc.message)
        raise UserError(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    bar.close()
    write_image(output, layouts.to_array(done.image, done.data))
    print(f"wrote {output}")
    return 0


def cmd_stylize(args: argparse.Namespace) -> int:
    """Everything that can be wrong with the files is found before the model loads."""
    from .imageio import check_output, read_image

    output = Path(args.output)
    outputs = [output]
    if args.save_every > 0:
        outputs.append(_save_every_path(output, args.save_every))
    for path in outputs:
        check_output(path)  # the place, before reading a large content
    if args.style_weights is not None and len(args.style_weights) != len(args.styles):
        raise UserError(
            f"--style-weights: {len(args.style_weights)} weights for "
            f"{len(args.styles)} style images"
        )
    weights = args.style_weights or [1.0] * len(args.styles)
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise UserError("--style-weights: weights must be >= 0 and not all 0")
    params = _params(args)
    try:
        content = read_image(args.content, args.max_pixels)
        styles = [
            (read_image(path, args.max_pixels), w)
            for path, w in zip(args.styles, weights, strict=True)
        ]
        for path in outputs:
            check_output(path, content)  # the format, for the result's dtype and channels
    except ImageFileError as exc:
        raise UserError(str(exc)) from None
    if args.daemon:
        if args.weights != "caffe" or params.device != "auto":
            raise UserError(
                "--weights and --device choose a local run's model; the daemon's "
                "are fixed when it starts (nst-daemon --weights/--device)"
            )
        return _stylize_daemon(content, styles, params, args, output)
    if args.curve_server_key or args.curve_client_cert:
        raise UserError("--curve-server-key and --curve-client-cert go with --daemon")
    return _stylize_local(content, styles, params, args, output)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import default_content, swirls
    from .imageio import check_output, write_image

    output = Path(args.output)
    try:
        content = default_content()
    except RuntimeError as exc:  # the demo photo's package (scikit-image) is not installed
        raise UserError(str(exc)) from None
    check_output(output, content)
    style_path = output.with_name(f"{output.stem}_style.png")
    content_path = output.with_name(f"{output.stem}_content.png")
    write_image(style_path, swirls())
    write_image(content_path, content)
    print(f"content {content_path}, style {style_path}")
    args.content, args.styles = str(content_path), [str(style_path)]
    start = time.monotonic()
    code = cmd_stylize(args)
    print(f"demo took {time.monotonic() - start:.0f} s")
    return code


def _daemon_settings(endpoint: str | None, args: argparse.Namespace) -> Settings:
    """How to reach the daemon on this run: the options given, over the NST_* variables (so
    a user sets the CURVE keys once), over the defaults; key files are checked here."""
    from nst_client.settings import SettingsError, load

    try:
        return load(
            None,
            endpoint=endpoint or "",
            curve_server_key=args.curve_server_key or "",
            curve_client_cert=args.curve_client_cert or "",
        )
    except SettingsError as exc:
        raise UserError(str(exc)) from None


def _ensure_engine(settings: Settings, should_cancel: Any = None) -> Any:
    """The local engine, started when none answers (the plug-ins' launcher), with its
    start-up on stderr; DaemonUnavailable when there is none to be had."""
    from nst_client import launcher
    from nst_daemon import launch_command

    if settings.daemon is None:
        settings.daemon = launch_command()
    shown: list[str] = []

    def on_state(state: Any) -> None:
        if state.phase == launcher.STARTING and state.summary not in shown:
            shown.append(state.summary)
            print(state.summary, file=sys.stderr, flush=True)

    return launcher.ensure_running(settings, on_state, should_cancel)


def cmd_daemon(args: argparse.Namespace) -> int:
    """`nst daemon start|stop|status`: exit status 0, or 3 when status finds none running."""
    from nst_client import launcher
    from nst_client.client import DaemonError, DaemonUnavailable

    settings = _daemon_settings(args.endpoint, args)
    if args.action == "status":
        state = launcher.probe(settings, timeout_s=settings.timeout_s)
        local_stop = state.phase == launcher.STOPPED
        print(
            "Style engine not running: start it with `nst daemon start`"
            if local_stop
            else state.summary
        )
        print(state.details)
        if state.usable():
            line = _precision_line(_engine_status(settings))
            if line:
                print(line)
        return 3 if state.down() else 0
    if args.action == "stop":
        try:
            stopped = launcher.stop(settings)
        except DaemonError as exc:
            raise UserError(exc.message) from None
        print(f"stopped the engine at {settings.endpoint}" if stopped else "no engine was running")
        return 0
    from nst_daemon import launch_command

    settings.daemon = launch_command() + (["--device", args.device] if args.device else [])
    settings.idle_exit_s = args.idle_exit
    settings.start_on_demand = True
    try:
        already = not launcher.probe(settings).down()
        state = _ensure_engine(settings)
    except DaemonUnavailable as exc:
        raise UserError(str(exc)) from None
    print(("already running: " if already else "") + state.summary)
    print(state.details)
    line = _precision_line(_engine_status(settings))
    if line:
        print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from nst_client.client import DaemonError, DaemonUnavailable, connect

    settings = _daemon_settings(args.endpoint, args)
    if args.timeout is not None:
        settings.timeout_s = args.timeout
    try:
        with connect(settings, "nst-cli") as client:
            status = client.status()
    except (DaemonUnavailable, DaemonError) as exc:
        raise UserError(str(exc)) from None
    for key, value in status.items():
        if key == "profile":
            print(_precision_line(status) or "precision: not measured yet (the engine is starting)")
            if isinstance(value, dict) and isinstance(value.get("s_per_mpix"), (int, float)):
                layout = ", channels_last" if value.get("channels_last") else ""
                print(f"speed: {value['s_per_mpix']:.3g} s per megapixel pass{layout}")
        elif key not in ("type", "id"):
            print(f"{key}: {value}")
    return 0


def _precision_line(status: Any) -> str | None:
    words = precision_words(status.get("profile")) if isinstance(status, dict) else None
    return f"precision: {words}" if words else None


def _engine_status(settings: Settings) -> dict[str, Any] | None:
    """The engine's status reply, or None when it does not give one now."""
    from nst_client.client import DaemonError, DaemonUnavailable, connect

    try:
        with connect(settings, "nst-cli") as client:
            return dict(client.status())
    except (DaemonUnavailable, DaemonError, OSError):
        return None


def cmd_plugin(args: argparse.Namespace) -> int:
    from nst_plugins import install

    try:
        if args.command == "install-plugin":
            done = install.install_hosts(
                args.host,
                args.dest,
                args.endpoint,
                args.transport,
                args.curve_server_key,
                args.curve_client_cert,
                start_on_demand=args.start_on_demand,
                idle_exit_s=args.idle_exit,
                flatpak=args.flatpak,
            )
            print(install.install_report(done))
        else:
            removed = install.uninstall_hosts(args.host, args.dest, args.flatpak)
            print(install.uninstall_report(removed))
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    return 0


def cmd_fetch_weights(args: argparse.Namespace) -> int:
    from .vgg import WeightsError, torchvision_weights_path

    try:
        print(torchvision_weights_path(download=True))
    except (WeightsError, OSError) as exc:
        raise UserError(f"fetch-weights: {exc}") from None
    return 0


COMMANDS = {
    "stylize": cmd_stylize,
    "demo": cmd_demo,
    "status": cmd_status,
    "daemon": cmd_daemon,
    "install-plugin": cmd_plugin,
    "uninstall-plugin": cmd_plugin,
    "fetch-weights": cmd_fetch_weights,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UserError, ImageFileError) as exc:
        print(f"nst: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ParamError as exc:
        print(
            f"nst: error: --{exc.name.replace('_', '-')}: {str(exc).split(': ', 1)[1]}",
            file=sys.stderr,
        )
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
