"""The engine's pixel layout: colour as 0..1 floats, alpha set aside and handed back as sent.

The wire layouts (u8/u16/f32 frames, Krita's and GIMP's orders) are nst_client.layouts'; this
is what the engine does with an array once it has one.
"""

from __future__ import annotations

import numpy as np

from nst_client.layouts import DTYPES, NUMPY_DTYPES, wire_dtype


def to_unit_float(arr: np.ndarray) -> np.ndarray:
    """uint8/uint16/float32 array -> float32 array in [0, 1]."""
    scale = DTYPES[wire_dtype(arr)][2]
    out = arr.astype(np.float32)
    if scale != 1.0:
        out /= scale
    return np.clip(out, 0.0, 1.0)


def from_unit_float(values: np.ndarray, dtype: str) -> np.ndarray:
    """float array in [0, 1] -> array of the wire dtype (rounded, clipped)."""
    scale = DTYPES[dtype][2]
    values = np.clip(values, 0.0, 1.0)
    if dtype == "f32":
        return values.astype(np.float32)
    native = np.dtype(NUMPY_DTYPES[dtype]).newbyteorder("=")
    return np.rint(values * scale).astype(native)


def split_alpha(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, C) -> (colour as RGB (grey expanded), alpha or None). Alpha is a view, untouched."""
    channels = arr.shape[2]
    colour = arr[:, :, :3] if channels >= 3 else np.repeat(arr[:, :, :1], 3, axis=2)
    alpha = arr[:, :, channels - 1 : channels] if channels in (2, 4) else None
    return colour, alpha


def join_alpha(colour: np.ndarray, alpha: np.ndarray | None, channels: int) -> np.ndarray:
    """Inverse of split_alpha: RGB colour (+ alpha) -> (H, W, channels)."""
    if channels in (1, 2):
        # ITU-R BT.601 luma, as GIMP and Krita use for RGB -> grey.
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float64)
        grey = (colour.astype(np.float64) @ weights)[:, :, None]
        colour = (
            grey.round().astype(colour.dtype)
            if colour.dtype.kind in "ui"
            else grey.astype(colour.dtype)
        )
    parts = [colour] if alpha is None else [colour, alpha]
    return np.concatenate(parts, axis=2)
