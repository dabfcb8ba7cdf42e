"""A job's images as the engine takes them: the content, and each style with its blend weight
and, for a style per region, its mask and strength. Everything is checked here, before any
work, and each error names the entry at fault.

numpy only (no torch), so the daemon's runner builds these without loading the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from nst_client import strength as strength_scale
from nst_client.layouts import wire_dtype

from . import pixels


@dataclass
class StyleImage:
    """A style image with its blend weight, and where it goes.

    mask: H x W (or H x W x 1) over the content, u8/u16/f32: 0 = none of this style, the
    dtype's top value (f32: 1) = all of it, grey between; None = the whole image. A style with
    a mask (or its own strength) is a region of its own: its weight scales that region's style
    instead of being normalised against the others. strength: its own place on the artist's
    strength scale (None: the job's).
    """

    pixels: np.ndarray
    weight: float = 1.0
    mask: np.ndarray | None = None
    strength: float | None = None

    @property
    def is_region(self) -> bool:
        """A style of its own region (else one of the blend that covers the whole image)."""
        return self.mask is not None or self.strength is not None


def check_image(arr: Any, what: str) -> np.ndarray:
    """An H x W x C array (C in 1..4) of a wire dtype with finite values; else ValueError."""
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{what}: expected a numpy array, got {type(arr).__name__}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{what}: expected H x W x C with C in 1..4, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{what}: empty image {arr.shape}")
    try:
        wire_dtype(arr)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(arr.size - np.isfinite(arr).sum())
        raise ValueError(f"{what}: {bad} pixel values are not finite (NaN or infinity)")
    return arr


def check_mask_shape(
    channels: int, mask_size: tuple[int, int], size: tuple[int, int], what: str
) -> None:
    """ValueError unless a mask of `channels` and (H, W) `mask_size` fits content of (H, W)
    `size`: one channel, the content's size (the daemon checks a descriptor with it, the
    engine an array)."""
    if channels != 1:
        raise ValueError(f"{what}.channels: a mask has one channel (grey), got {channels}")
    if mask_size != size:
        raise ValueError(
            f"{what}: the mask is {mask_size[1]}x{mask_size[0]}, the content "
            f"{size[1]}x{size[0]}: a mask covers the content at its size"
        )


def check_mask(arr: Any, size: tuple[int, int], what: str) -> np.ndarray:
    """A mask over content of size (H, W) -> H x W float32 in 0..1; ValueError naming what is
    wrong: not one channel, another size, values outside 0..1, or nothing covered."""
    arr = check_image(arr, what)
    check_mask_shape(arr.shape[2], (arr.shape[0], arr.shape[1]), size, what)
    if arr.dtype.kind == "f" and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(
            f"{what}: f32 mask values must be within 0..1, got {float(arr.min()):g}.."
            f"{float(arr.max()):g}"
        )
    unit = pixels.to_unit_float(arr)[:, :, 0]
    if not unit.any():
        raise ValueError(
            f"{what}: the mask is all black (it covers nothing): paint where the style goes, "
            f"or leave the mask out for the whole image"
        )
    return unit


def check_strength(value: Any, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not strength_scale.MINIMUM <= value <= strength_scale.MAXIMUM
    ):
        raise ValueError(
            f"{what}: expected a number {strength_scale.MINIMUM:g}..{strength_scale.MAXIMUM:g}, "
            f"got {value!r}"
        )
    return float(value)


def as_styles(styles: Sequence[Any], size: tuple[int, int]) -> list[StyleImage]:
    """Arrays, (array, weight) pairs or StyleImage -> checked StyleImage, masks as 0..1
    float32 over content of `size`. Blend weights (the styles without a region) are
    normalised to sum 1 among themselves; a region's weight is kept as given."""
    out = []
    for i, s in enumerate(styles):
        if isinstance(s, StyleImage):
            style = s
        elif isinstance(s, tuple):
            style = StyleImage(s[0], float(s[1]))
        else:
            style = StyleImage(s, 1.0)
        what = f"styles[{i}]"
        style = replace(style, pixels=check_image(style.pixels, what))
        if style.weight < 0:
            raise ValueError(f"{what}.weight: must be >= 0, got {style.weight:g}")
        if style.mask is not None:
            style = replace(style, mask=check_mask(style.mask, size, f"{what}.mask"))
        if style.strength is not None:
            style = replace(style, strength=check_strength(style.strength, f"{what}.strength"))
        out.append(style)
    if not out:
        raise ValueError("styles: at least one style image is needed")
    if sum(s.weight for s in out) <= 0:
        raise ValueError("styles: blend weights must be >= 0 and not all 0")
    blend_total = sum(s.weight for s in out if not s.is_region)
    return [
        s if s.is_region else replace(s, weight=s.weight / blend_total if blend_total > 0 else 0.0)
        for s in out
    ]
