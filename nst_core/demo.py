"""The bundled default: a photo from scikit-image and a style made by our own code.

The style, "swirls", is drawn here: white noise smeared along a vortex flow field (line
integral convolution) and coloured with a night-sky palette, so it carries brush-stroke-like
texture at several scales. No image is copied from elsewhere.
"""

from __future__ import annotations

import numpy as np

PALETTE = np.array([
    [12, 20, 60], [25, 55, 130], [50, 100, 180], [95, 150, 205],
    [225, 205, 95], [245, 225, 140], [250, 245, 210],
], dtype=np.float32) / 255.0


def swirls(size: int = 512, seed: int = 7) -> np.ndarray:
    """A size x size RGB u8 style image of swirling strokes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    # A few vortices with alternating spin, plus a drift, give the flow field.
    vx = np.full_like(xx, 0.3)
    vy = np.full_like(xx, 0.1)
    for _ in range(6):
        cx, cy = rng.uniform(0.1, 0.9, 2)
        spin = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)
        dx, dy = xx - cx, yy - cy
        r2 = dx * dx + dy * dy + 0.01
        falloff = np.exp(-r2 / 0.05)
        vx += spin * -dy / r2 * falloff * 0.12
        vy += spin * dx / r2 * falloff * 0.12
    norm = np.sqrt(vx * vx + vy * vy) + 1e-6
    vx, vy = vx / norm, vy / norm
    # Noise in 3x3 cells gives strokes a brush's width; smooth blobs vary their brightness.
    noise = _upsample(rng.random((size // 3 + 1, size // 3 + 1)), size, smooth=False)
    blobs = _upsample(rng.random((size // 48 + 2, size // 48 + 2)), size, smooth=True)
    acc = np.zeros_like(noise)
    px, py = xx * size, yy * size
    steps = 30
    for direction in (1.0, -1.0):
        x, y = px.copy(), py.copy()
        for _ in range(steps):
            ix = np.clip(x.astype(np.int32), 0, size - 1)
            iy = np.clip(y.astype(np.int32), 0, size - 1)
            acc += noise[iy, ix]
            x += direction * vx[iy, ix] * 1.5
            y += direction * vy[iy, ix] * 1.5
    lic = acc / (2 * steps)
    lic = (lic - lic.mean()) / (lic.std() + 1e-6)
    value = np.clip(0.5 + 0.22 * lic + 0.35 * (blobs - 0.5) + 0.25 * (yy - 0.5), 0.0, 1.0)
    pos = value * (len(PALETTE) - 1)
    lo = np.floor(pos).astype(np.int32).clip(0, len(PALETTE) - 2)
    frac = (pos - lo)[..., None]
    rgb = PALETTE[lo] * (1 - frac) + PALETTE[lo + 1] * frac
    return (rgb * 255 + 0.5).astype(np.uint8)


def _upsample(values: np.ndarray, size: int, smooth: bool) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(values.astype(np.float32), mode="F")
    method = Image.Resampling.BICUBIC if smooth else Image.Resampling.NEAREST
    return np.asarray(img.resize((size, size), method), dtype=np.float32)


def default_content() -> np.ndarray:
    """scikit-image's astronaut photo (public domain, ships inside the scikit-image wheel)."""
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("the bundled demo photo comes from scikit-image: "
                           "pip install 'nst-studio[demo]'") from exc
    return data.astronaut()
