"""`nst stylize` (and the demo's run): files in, a file out, locally or on the daemon.

Everything that can be wrong with the files is found before the model loads. A local job runs
the engine in this process; a daemon job goes through nst_client.job, the job path the GIMP
filter and the Krita docker use. Ctrl-C writes a local image as far as it got.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from nst_client import job, layouts
from nst_client.client import JobAbandoned, JobCancelled, RawStyle
from nst_client.params import StyleParams
from nst_client.progress import Progress
from nst_client.protocol import OPTIMISATION_FAILED
from nst_core.breakdown import Breakdown
from nst_core.imageio import ImageFileError, check_output, read_image, read_mask, write_image
from nst_core.styles import StyleImage, check_mask, check_strength

from .engine_commands import CLIENT_NAME, daemon_settings, starting_printer
from .options import UserError, daemon_params, params_from_args

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
#: How `nst` names its settings in a daemon job's messages.
WORDS = job.ClientWords(
    CLIENT_NAME,
    "pip install --upgrade nst-studio",
    {
        "endpoint": "the endpoint (--daemon ENDPOINT or NST_ENDPOINT)",
        "curve_server_key": "--curve-server-key (or NST_CURVE_SERVER_KEY)",
        "curve_client_cert": "--curve-client-cert (or NST_CURVE_CLIENT_CERT)",
    },
    "the options",
)


class ProgressBar:
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


def save_every_path(output: Path, iteration: int) -> Path:
    return output.with_name(f"{output.stem}_iter{iteration:04d}{output.suffix}")


def _failed(message: str) -> int:
    print(f"nst: error: optimisation failed: {message}; nothing written", file=sys.stderr)
    return EXIT_FAILED


def _since_process_start() -> float | None:
    """Seconds since this process started (Linux: /proc), None where that cannot be read."""
    try:
        with open("/proc/self/stat") as f:
            started_ticks = float(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def cmd_stylize(args: argparse.Namespace) -> int:
    breakdown = Breakdown()
    started = _since_process_start()
    if started is not None:
        breakdown.add("start-up (Python, the command)", started)
    try:
        return _stylize(args, breakdown)
    finally:
        if args.verbose:
            print("where the seconds went:", file=sys.stderr)
            for line in breakdown.lines():
                print(f"  {line}", file=sys.stderr)


def _stylize(args: argparse.Namespace, breakdown: Breakdown) -> int:
    output = Path(args.output)
    outputs = [output]
    if args.save_every > 0:
        outputs.append(save_every_path(output, args.save_every))
    for path in outputs:
        check_output(path)  # the place, before reading a large content
    for option in ("weights", "masks", "strengths"):
        given = getattr(args, f"style_{option}")
        if given is not None and len(given) != len(args.styles):
            raise UserError(
                f"--style-{option}: {len(given)} {option} for {len(args.styles)} style images"
            )
    weights = args.style_weights or [1.0] * len(args.styles)
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise UserError("--style-weights: weights must be >= 0 and not all 0")
    params = params_from_args(args)
    try:
        with breakdown.phase("reading the images"):
            content = read_image(args.content, args.max_pixels)
            styles = _read_styles(args, weights, content)
        for path in outputs:
            check_output(path, content)  # the format, for the result's dtype and channels
    except ImageFileError as exc:
        raise UserError(str(exc)) from None
    if args.daemon is not None:
        if args.weights != "caffe" or params.device != "auto":
            raise UserError(
                "--weights and --device choose a local run's model; the daemon's "
                "are fixed when it starts (nst-daemon --weights/--device)"
            )
        with breakdown.phase("the job on the daemon (start, queue, run, hand-back)"):
            return _stylize_daemon(content, styles, params, args, output)
    if args.curve_server_key or args.curve_client_cert:
        raise UserError("--curve-server-key and --curve-client-cert go with --daemon")
    return _stylize_local(content, styles, params, args, output, breakdown)


def _read_styles(args: argparse.Namespace, weights: list[float], content: Any) -> list[StyleImage]:
    """The style files with their weights, masks and strengths, every mask checked against
    the content (its size, its values) before any work; errors name the file."""
    masks = args.style_masks or ["-"] * len(args.styles)
    strengths = args.style_strengths or ["-"] * len(args.styles)
    size = (int(content.shape[0]), int(content.shape[1]))
    styles = []
    for path, weight, mask_path, strength in zip(
        args.styles, weights, masks, strengths, strict=True
    ):
        mask = None
        if mask_path != "-":
            mask = read_mask(mask_path, args.max_pixels)
            try:
                check_mask(mask, size, f"--style-masks: {mask_path}")
            except ValueError as exc:
                raise UserError(str(exc)) from None
        own = None
        if strength != "-":
            try:
                own = check_strength(float(strength), "--style-strengths")
            except ValueError:
                raise UserError(
                    f"--style-strengths: expected a number 0..100 or '-', got {strength!r}"
                ) from None
        styles.append(StyleImage(read_image(path, args.max_pixels), weight, mask, own))
    return styles


def _stylize_local(
    content: Any,
    styles: list[StyleImage],
    params: StyleParams,
    args: argparse.Namespace,
    output: Path,
    breakdown: Breakdown,
) -> int:
    with breakdown.phase("imports (torch, the engine)"):
        from nst_core import calibrate
        from nst_core.engine import OptimisationFailed, StylizeCancelled, load_model, stylize
        from nst_core.vgg import WeightsError

    try:
        with breakdown.phase("loading VGG-19"):
            model = load_model(args.weights, params.device, args.allow_download)
    except (WeightsError, ValueError) as exc:
        raise UserError(str(exc)) from None
    with breakdown.phase("measuring the device (once per machine)"):
        calibrate.profile(model)
    _say_plan(model, content.shape[:2], params)
    stop = threading.Event()
    bar = ProgressBar()

    def on_progress(p: Progress) -> None:
        bar.update(p)
        if p.preview is not None:
            write_image(save_every_path(output, p.iteration), p.preview)

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
            breakdown=breakdown,
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
    with breakdown.phase("writing the image"):
        write_image(output, result)
    print(f"wrote {output}")
    return 0


def _raw_style(style: StyleImage) -> RawStyle:
    mask = None if style.mask is None else layouts.from_array(style.mask, 0)
    return RawStyle(layouts.from_array(style.pixels, 0), style.weight, mask, style.strength)


def _say_plan(model: Any, content_hw: tuple[int, int], params: StyleParams) -> None:
    """The job's plan and the precision it runs in, on stderr above the progress bar, in
    the words `nst status` uses for a daemon's. The engine plans the same (make_plan is a
    pure function of these), after the same one-off measurement of this device."""
    from nst_core import calibrate
    from nst_core.plan import make_plan

    profile = calibrate.profile(model)
    plan = make_plan((int(content_hw[0]), int(content_hw[1])), params, profile.speed)
    print(f"plan: {plan.describe()}", file=sys.stderr)
    if params.precision == "auto":
        print(f"precision: {profile.words()}", file=sys.stderr)
    else:
        print(f"precision: {params.precision} (as asked)", file=sys.stderr)


def _stylize_daemon(
    content: Any,
    styles: list[StyleImage],
    params: StyleParams,
    args: argparse.Namespace,
    output: Path,
) -> int:
    """The job on the daemon, through the clients' one job path (nst_client.job)."""
    stop = threading.Event()
    bar = ProgressBar()
    starting = starting_printer()

    def on_event(event: job.JobEvent) -> None:
        if isinstance(event, job.EngineChanged):
            starting(event.state)
        elif isinstance(event, job.Welcomed) and event.note:
            print(f"note: {event.note}", file=sys.stderr)
        elif isinstance(event, job.Progressed):
            bar.update(event.progress)
            if event.progress.preview is not None:
                image = layouts.to_array(*event.progress.preview)
                write_image(save_every_path(output, event.progress.iteration), image)

    settings = daemon_settings(args, args.daemon, start_on_demand=False if args.no_start else None)
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        done = job.run_job(
            settings,
            WORDS,
            layouts.from_array(content, 0),
            [_raw_style(s) for s in styles],
            daemon_params(params),
            on_event=on_event,
            should_cancel=stop.is_set,
            preview_every=args.save_every,
        )
    except JobCancelled as exc:
        bar.close()
        why = exc if isinstance(exc, JobAbandoned) else "the daemon cancelled the job"
        print(f"interrupted: {why}; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except job.JobFailed as exc:
        bar.close()
        if exc.code == OPTIMISATION_FAILED:
            return _failed(exc.detail)
        raise UserError(exc.message) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    bar.close()
    write_image(output, layouts.to_array(done.image, done.data))
    print(f"wrote {output}")
    return 0
