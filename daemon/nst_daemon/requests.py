"""Reading requests: every field checked and named before any pixel is touched.

Runs on the socket thread, so it stays cheap: descriptors are checked against the frames and
--max-pixels, params against nst_client.params (the one definition); no buffer is converted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nst_client import layouts
from nst_client import protocol as P
from nst_client.params import MAX_WEIGHT, ParamError, StyleParams, make_params
from nst_core.plan import LimitError, check_limits
from nst_core.styles import check_mask_shape, check_strength

from .jobs import Job


@dataclass(frozen=True)
class Limits:
    """What one job may make the daemon allocate (nst-daemon's --max-pixels, --max-tile-size)."""

    max_pixels: int = P.DEFAULT_MAX_PIXELS
    max_tile_size: int = P.DEFAULT_MAX_TILE_SIZE

    def defaults(self) -> StyleParams:
        """The params a job gets for what it leaves out: the engine's, with the tile size
        brought within --max-tile-size (a lowered limit must not refuse default jobs)."""
        params = StyleParams()
        params.tile_size = min(params.tile_size, self.max_tile_size)
        return params


def require(header: P.Header, key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    """header[key] of the given type, or ProtocolError(bad_request) naming the field."""
    name = f"{where}{key}"
    if key not in header:
        raise P.ProtocolError(P.BAD_REQUEST, f"missing field '{name}'")
    value = header[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise P.ProtocolError(P.BAD_REQUEST, f"field '{name}' has the wrong type (bool)")
    if not isinstance(value, kind):
        raise P.ProtocolError(
            P.BAD_REQUEST, f"field '{name}' has the wrong type ({type(value).__name__})"
        )
    return value


def require_name(header: P.Header, key: str) -> str:
    """A short string field (an id, a client name): echoed and logged, so its length is
    bounded."""
    value: str = require(header, key, str)
    if len(value) > P.MAX_ID_LENGTH:
        raise P.ProtocolError(
            P.BAD_REQUEST,
            f"field '{key}' is {len(value)} characters long (at most {P.MAX_ID_LENGTH})",
        )
    return value


def reply_id(header: P.Header) -> str | None:
    """The id a reply to this request may echo: its id if that is a valid one, else None."""
    value = header.get("id")
    return value if isinstance(value, str) and len(value) <= P.MAX_ID_LENGTH else None


def envelope(header: P.Header) -> tuple[str, str]:
    """(type, id) of a request whose type, id and protocol are valid."""
    kind = require(header, "type", str)
    request_id = require_name(header, "id")
    if kind not in P.REQUESTS:
        raise P.ProtocolError(
            P.BAD_REQUEST,
            f"field 'type': unknown request type {P.quote(kind)} (known: {', '.join(P.REQUESTS)})",
        )
    protocol = header.get("protocol", P.PROTOCOL_VERSION)
    if protocol != P.PROTOCOL_VERSION or isinstance(protocol, bool):
        raise P.ProtocolError(
            P.UNSUPPORTED_PROTOCOL,
            f"field 'protocol': this daemon speaks protocol {P.PROTOCOL_VERSION}, "
            f"not {P.quote(protocol)}",
        )
    return kind, request_id


def check_image(desc: Any, buffers: Sequence[P.Buffer], field: str, max_pixels: int) -> P.ImageDesc:
    """Validate one descriptor against --max-pixels and its frame, before any allocation."""
    try:
        checked = layouts.check_descriptor(desc, field)
    except layouts.LayoutError as exc:
        raise P.ProtocolError(P.BAD_REQUEST, str(exc)) from None
    pixels = checked["width"] * checked["height"]
    if pixels > max_pixels:
        raise P.ProtocolError(
            P.TOO_LARGE,
            f"{field}: {checked['width']}x{checked['height']} = {pixels} pixels is "
            f"over this daemon's limit of {max_pixels} (--max-pixels)",
        )
    frame = checked["frame"]
    if not 1 <= frame <= len(buffers):
        raise P.ProtocolError(
            P.BAD_REQUEST,
            f"{field}.frame: {frame} is out of range (this message has "
            f"{len(buffers)} image frame(s), numbered from 1)",
        )
    try:
        layouts.check_buffer(checked, buffers[frame - 1], field)
    except layouts.LayoutError as exc:
        raise P.ProtocolError(P.BAD_IMAGE, str(exc)) from None
    return checked


def check_mask(
    raw: Any, buffers: Sequence[P.Buffer], style: str, content: P.ImageDesc, max_pixels: int
) -> P.ImageDesc | None:
    """A style's mask descriptor (or None): one channel at the content's size, its frame
    there. Its values (within 0..1, not all 0) are the engine's to check, off this thread."""
    if raw is None:
        return None
    field = f"{style}.mask"
    try:
        mask = layouts.check_descriptor(raw, field)
    except layouts.LayoutError as exc:
        raise P.ProtocolError(P.BAD_REQUEST, str(exc)) from None
    try:
        check_mask_shape(
            mask["channels"],
            (mask["height"], mask["width"]),
            (content["height"], content["width"]),
            field,
        )
    except ValueError as exc:
        raise P.ProtocolError(P.BAD_REQUEST, str(exc)) from None
    return check_image(mask, buffers, field, max_pixels)


def parse_params(raw: Any, device_type: str, limits: Limits = Limits()) -> StyleParams:
    """Client params -> StyleParams; the daemon's device is fixed, so `device` may only agree."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise P.ProtocolError(
            P.BAD_REQUEST, f"field 'params' has the wrong type ({type(raw).__name__})"
        )
    device = raw.get("device", "auto")
    if device not in ("auto", device_type):
        raise P.ProtocolError(
            P.BAD_REQUEST,
            f"params.device: the daemon's device is fixed at start "
            f"({device_type}); send 'auto' or leave it out, not {P.quote(device)}",
        )
    try:
        return make_params({k: v for k, v in raw.items() if k != "device"}, limits.defaults())
    except ParamError as exc:
        raise P.ProtocolError(P.BAD_REQUEST, f"params.{exc}") from None


def parse_stylize(
    header: P.Header,
    buffers: Sequence[P.Buffer],
    client: bytes,
    limits: Limits,
    device_type: str,
) -> Job:
    """A stylize request -> a Job, refused before any allocation when it would exceed the
    limits (frames kept as they came; the runner converts them)."""
    request_id = require_name(header, "id")
    content = check_image(require(header, "content", dict), buffers, "content", limits.max_pixels)
    raw_styles = require(header, "styles", list)
    if not raw_styles:
        raise P.ProtocolError(P.BAD_REQUEST, "field 'styles' is empty: send at least one style")
    if len(raw_styles) > P.MAX_STYLES:
        raise P.ProtocolError(
            P.BAD_REQUEST, f"field 'styles' has {len(raw_styles)} entries (at most {P.MAX_STYLES})"
        )
    styles: list[P.StyleDesc] = []
    for i, desc in enumerate(raw_styles):
        name = f"styles[{i}]"
        checked = check_image(desc, buffers, name, limits.max_pixels)
        weight = desc.get("weight", 1.0)
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not (0 <= weight <= MAX_WEIGHT)
        ):
            raise P.ProtocolError(
                P.BAD_REQUEST,
                f"{name}.weight: expected a number 0..{MAX_WEIGHT:g}, got {P.quote(weight)}",
            )
        mask = check_mask(desc.get("mask"), buffers, name, content, limits.max_pixels)
        strength = desc.get("strength")
        if strength is not None:
            try:
                strength = check_strength(strength, f"{name}.strength")
            except ValueError as exc:
                raise P.ProtocolError(P.BAD_REQUEST, str(exc)) from None
        styles.append(P.style_entry(checked, float(weight), mask, strength))
    if not any(s["weight"] > 0 for s in styles):
        raise P.ProtocolError(
            P.BAD_REQUEST, "styles: every weight is 0; give at least one style a weight"
        )
    used = {content["frame"], *(s["frame"] for s in styles)}
    used |= {s["mask"]["frame"] for s in styles if "mask" in s}
    if len(used) != len(buffers):
        raise P.ProtocolError(
            P.BAD_REQUEST,
            f"this message has {len(buffers)} image frame(s) but refers to {len(used)}; "
            f"send only the frames the descriptors name",
        )
    params = parse_params(header.get("params"), device_type, limits)
    try:
        check_limits(
            (content["height"], content["width"]),
            [(s["height"], s["width"]) for s in styles],
            params,
            limits.max_pixels,
            limits.max_tile_size,
        )
    except LimitError as exc:
        raise P.ProtocolError(P.TOO_LARGE, f"params.{exc}") from None
    preview_every = header.get("preview_every", 0)
    if preview_every is None:
        preview_every = 0
    if (
        isinstance(preview_every, bool)
        or not isinstance(preview_every, int)
        or not (0 <= preview_every <= P.MAX_PREVIEW_EVERY)
    ):
        raise P.ProtocolError(
            P.BAD_REQUEST,
            f"field 'preview_every': expected an integer 0..{P.MAX_PREVIEW_EVERY}, "
            f"got {P.quote(preview_every)}",
        )
    return Job(
        client=client,
        id=request_id,
        content=content,
        styles=styles,
        frames=list(buffers),
        params=params,
        preview_every=preview_every,
    )
