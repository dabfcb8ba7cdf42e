"""The bundled images: photos from scikit-image and paintings made by our own code.

The default style, "swirls", is white noise smeared along a vortex flow field (line integral
convolution) in a night-sky palette. Three more paintings, with the strong brush texture and
narrow palettes of the paintings people stylize with, serve the quality bench, the tests and
the docs: "strokes" (impasto dabs along a flow), "mosaic" (stained glass with dark leading),
"dots" (pointillism) and "bands" (an expressionist sky in long curved strokes: the hardest to
match, closest to a real painting). No image is copied from elsewhere.
"""

from __future__ import annotations

import numpy as np

PALETTE = (
    np.array(
        [
            [12, 20, 60],
            [25, 55, 130],
            [50, 100, 180],
            [95, 150, 205],
            [225, 205, 95],
            [245, 225, 140],
            [250, 245, 210],
        ],
        dtype=np.float32,
    )
    / 255.0
)


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
    return _u8(_palette_lookup(PALETTE, value))


def _upsample(values: np.ndarray, size: int, smooth: bool) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(values.astype(np.float32), mode="F")
    method = Image.Resampling.BICUBIC if smooth else Image.Resampling.NEAREST
    return np.asarray(img.resize((size, size), method), dtype=np.float32)


def _palette_lookup(palette: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Colours along a palette (N x 3, 0..1) for values in 0..1, linearly between entries."""
    pos = np.clip(value, 0.0, 1.0) * (len(palette) - 1)
    lo = np.floor(pos).astype(np.int32).clip(0, len(palette) - 2)
    frac = (pos - lo)[..., None]
    return palette[lo] * (1 - frac) + palette[lo + 1] * frac


def _u8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


STROKE_PALETTE = (
    np.array(
        [
            [70, 45, 20],
            [150, 90, 30],
            [215, 150, 40],
            [245, 200, 60],
            [250, 230, 150],
            [120, 140, 60],
            [60, 90, 140],
            [190, 60, 35],
        ],
        dtype=np.float32,
    )
    / 255.0
)


def strokes(size: int = 512, seed: int = 3) -> np.ndarray:
    """Thick impasto dabs in a warm palette, laid along a smooth flow, each with bristle lines."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    field = _upsample(rng.random((6, 6)), size, smooth=True)
    hue = _upsample(rng.random((5, 5)), size, smooth=True)
    base = _palette_lookup(STROKE_PALETTE[:5], hue)
    canvas = Image.fromarray(_u8(base * 0.8))
    draw = ImageDraw.Draw(canvas)
    length, width = size / 14, max(3, size // 40)
    for _ in range(int(9 * (size / length) ** 2)):
        x, y = rng.uniform(0, size, 2)
        angle = field[int(y) % size, int(x) % size] * 2 * np.pi + rng.normal(0, 0.2)
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        pick = (
            STROKE_PALETTE[rng.integers(len(STROKE_PALETTE))]
            if rng.random() < 0.15
            else base[int(y) % size, int(x) % size]
        )
        for b in np.linspace(-0.5, 0.5, 4):  # bristles: parallel lines, slightly varied
            ox, oy = -np.sin(angle) * b * width, np.cos(angle) * b * width
            colour = _u8(pick * rng.uniform(0.75, 1.2) + rng.normal(0, 0.03, 3))
            draw.line(
                [(x - dx + ox, y - dy + oy), (x + dx + ox, y + dy + oy)],
                fill=tuple(int(c) for c in colour),
                width=max(1, width // 3),
            )
    return np.asarray(canvas)


MOSAIC_PALETTE = (
    np.array(
        [
            [150, 20, 30],
            [20, 50, 150],
            [20, 120, 70],
            [230, 160, 30],
            [100, 40, 120],
            [200, 200, 180],
            [30, 140, 170],
        ],
        dtype=np.float32,
    )
    / 255.0
)


def mosaic(size: int = 512, seed: int = 5) -> np.ndarray:
    """Stained glass: Voronoi panes in jewel colours, mottled, with dark leading between them."""
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, size, (int(size * size / 1100), 2))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    first = np.full((size, size), np.inf, np.float32)
    second = np.full((size, size), np.inf, np.float32)
    owner = np.zeros((size, size), np.int32)
    for i, (sy, sx) in enumerate(seeds):
        d = np.hypot(yy - sy, xx - sx)
        closer = d < first
        second = np.where(closer, first, np.minimum(second, d))
        owner = np.where(closer, i, owner)
        first = np.where(closer, d, first)
    colours = MOSAIC_PALETTE[rng.integers(len(MOSAIC_PALETTE), size=len(seeds))]
    colours = colours * rng.uniform(0.7, 1.15, (len(seeds), 1))
    mottle = _upsample(rng.random((size // 8, size // 8)), size, smooth=True)[..., None]
    rgb = colours[owner] * (0.8 + 0.4 * mottle)
    lead = np.clip((second - first - 1.5) / 2.5, 0.0, 1.0)[..., None]
    return _u8(rgb * lead + 0.06 * (1 - lead))


DOT_PALETTE = (
    np.array(
        [
            [40, 70, 140],
            [70, 140, 190],
            [120, 180, 90],
            [240, 220, 120],
            [240, 150, 90],
            [210, 90, 120],
            [250, 245, 225],
        ],
        dtype=np.float32,
    )
    / 255.0
)


def dots(size: int = 512, seed: int = 11) -> np.ndarray:
    """Pointillism: round dots of pure colours over a pale ground, varied by a smooth field."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    field = _upsample(rng.random((5, 5)), size, smooth=True)
    canvas = Image.new("RGB", (size, size), (235, 225, 200))
    draw = ImageDraw.Draw(canvas)
    r = max(2, size // 90)
    for _ in range(int(1.6 * size * size / (r * r * 3))):
        x, y = rng.uniform(0, size, 2)
        index = field[int(y), int(x)] * (len(DOT_PALETTE) - 1) + rng.normal(0, 0.9)
        colour = _u8(DOT_PALETTE[int(np.clip(round(index), 0, len(DOT_PALETTE) - 1))])
        rr = r * rng.uniform(0.8, 1.3)
        draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=tuple(int(c) for c in colour))
    return np.asarray(canvas)


SCREAM_PALETTE = (
    np.array(
        [
            [230, 110, 30],
            [240, 170, 50],
            [200, 60, 40],
            [40, 70, 120],
            [30, 100, 110],
            [90, 60, 40],
            [235, 205, 140],
        ],
        dtype=np.float32,
    )
    / 255.0
)


def bands(size: int = 512, seed: int = 13) -> np.ndarray:
    """An expressionist sky: wide wavy bands of hot and cold colour, painted over in long,
    thick strokes that follow the bands; large strokes and strong local structure, closer to a
    real painting than the other generated ones (harder to match at every layer)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    warp = _upsample(rng.random((4, 4)), size, smooth=True) - 0.5
    phase = 5.0 * yy + 1.2 * np.sin(2.5 * np.pi * xx + 3.0 * warp) + 2.0 * warp
    band = (np.floor(phase * 1.3) % len(SCREAM_PALETTE)).astype(np.int64)
    canvas = Image.fromarray(_u8(SCREAM_PALETTE[band] * 0.9))
    draw = ImageDraw.Draw(canvas)
    # The stroke direction follows the bands: along the level lines of `phase`.
    gy, gx = np.gradient(phase)
    length, width = size / 6, max(4, size // 28)
    for _ in range(int(5 * (size / length) ** 2 * 6)):
        x, y = rng.uniform(0, size, 2)
        iy, ix = int(y) % size, int(x) % size
        angle = np.arctan2(gx[iy, ix], -gy[iy, ix]) + rng.normal(0, 0.1)
        pick = SCREAM_PALETTE[band[iy, ix]] * rng.uniform(0.7, 1.15)
        points = []
        cx, cy = x, y
        for _step in range(6):  # a curved stroke: a few segments along the flow
            points.append((cx, cy))
            jy, jx = int(cy) % size, int(cx) % size
            a = np.arctan2(gx[jy, jx], -gy[jy, jx]) if _step else angle
            cx, cy = cx + np.cos(a) * length / 6, cy + np.sin(a) * length / 6
        for b in np.linspace(-0.5, 0.5, 3):
            ox, oy = -np.sin(angle) * b * width, np.cos(angle) * b * width
            colour = _u8(pick * rng.uniform(0.8, 1.15) + rng.normal(0, 0.04, 3))
            draw.line(
                [(px + ox, py + oy) for px, py in points],
                fill=tuple(int(c) for c in colour),
                width=max(2, width // 2),
                joint="curve",
            )
    return np.asarray(canvas)


#: The generated paintings by name (each a function of the side length).
PAINTINGS = {
    "swirls": swirls,
    "strokes": strokes,
    "mosaic": mosaic,
    "dots": dots,
    "bands": bands,
}


def photo(name: str = "astronaut") -> np.ndarray:
    """A colour photo that ships inside the scikit-image wheel (astronaut, coffee, chelsea,
    rocket, motorcycle_left): public domain or free to use."""
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "the bundled demo photos come from scikit-image: pip install 'nst-studio[demo]'"
        ) from exc
    if name == "motorcycle_left":
        return np.asarray(data.stereo_motorcycle()[0])
    return np.asarray(getattr(data, name)())


def default_content() -> np.ndarray:
    """scikit-image's astronaut photo, the demo's content."""
    return photo("astronaut")
