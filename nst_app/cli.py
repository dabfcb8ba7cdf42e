"""The `nst` command: its parser and the dispatch to the commands.

Every user error (missing file, unreadable image, bad value, no daemon) is one line on stderr
naming what was wrong, with exit status 2; an optimisation that failed is one line and exit
status 1, with nothing written; Ctrl-C writes the image as far as it got.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from nst_client.params import ParamError
from nst_client.protocol import DEFAULT_ENDPOINT, DEFAULT_MAX_PIXELS
from nst_client.settings import TRANSPORTS
from nst_core.imageio import ImageFileError
from nst_plugins.install import CHOICES as PLUGIN_HOSTS
from nst_plugins.install import DEFAULT_IDLE_EXIT_S, idle_seconds

from .engine_commands import cmd_daemon, cmd_status
from .keys import cmd_keys
from .options import UserError, add_param_options
from .stylize import cmd_stylize

EXIT_USAGE = 2


def _pixels(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels, got {text!r}")
    return int(text)


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
        help="weight of each style image: the blend of the styles without a mask (default "
        "equal); a masked style's own scale (default 1)",
    )
    s.add_argument(
        "--style-masks",
        nargs="+",
        metavar="MASK",
        help="where each style goes: an image file per style at the content's size, white = "
        "all of the style, grey = less, black = none ('-' for the whole image); a colour mask "
        "counts by its brightness, transparency as black; where no mask reaches, the photo stays",
    )
    s.add_argument(
        "--style-strengths",
        nargs="+",
        metavar="S",
        help="each style's own strength on the --strength scale ('-' for the job's)",
    )
    s.add_argument(
        "--daemon",
        nargs="?",
        const="",
        metavar="ENDPOINT",
        help=f"run the job on the warm daemon (default endpoint: $NST_ENDPOINT, else "
        f"{DEFAULT_ENDPOINT}); a local one that is not running is started and exits after "
        "30 min without a job",
    )
    s.add_argument(
        "--no-start",
        action="store_true",
        help="with --daemon: do not start the daemon when none answers",
    )
    _add_curve_options(s)
    add_param_options(s)

    demo = sub.add_parser("demo", help="stylize the bundled photo with the bundled style")
    demo.add_argument("-o", "--output", default="nst-demo.png")
    add_param_options(demo)
    # The demo runs cmd_stylize locally (the default preset unless told): every stylize
    # option it lacks, at its default.
    demo.set_defaults(
        max_pixels=DEFAULT_MAX_PIXELS,
        style_weights=None,
        style_masks=None,
        style_strengths=None,
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
                "--force",
                action="store_true",
                help="replace a folder of the plug-in's name that no install of nst recorded",
            )
            p.add_argument(
                "--no-start-on-demand",
                dest="start_on_demand",
                action="store_false",
                help="never start the engine from the plug-ins (start it with nst daemon start)",
            )

    keys = sub.add_parser(
        "keys", help="make a CURVE key pair (NAME.key, NAME.key_secret readable by you alone)"
    )
    keys.add_argument("name", help="server, or the artist's or machine's name")
    keys.add_argument("--dir", default=".", help="where to write them (default: here)")

    fw = sub.add_parser("fetch-weights", help="download torchvision's VGG-19 once (internet)")
    fw.add_argument("which", choices=("torchvision",))
    return parser


def cmd_demo(args: argparse.Namespace) -> int:
    from nst_core.imageio import check_output, write_image

    from .demo import default_content, swirls

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
                force=args.force,
            )
            print(install.install_report(done))
        else:
            left: dict[str, list[Path]] = {}
            removed = install.uninstall_hosts(args.host, args.dest, args.flatpak, left)
            print(install.uninstall_report(removed, left))
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    return 0


def cmd_fetch_weights(args: argparse.Namespace) -> int:
    from nst_core.vgg import WeightsError, torchvision_weights_path

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
    "keys": cmd_keys,
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
    except BrokenPipeError:  # `nst status | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
