"""The native-resolution finish: the content's fine structure put back on an upscaled result.

The engine optimises at a working size and upsamples the result to the layer's size; past
the working size's resolution that upscale holds nothing, so a 3000 x 2000 layer painted at
512 px is a soft painting stretched six times. `restore_detail` adds back the band the
working size could not represent, taken from the content: the content's luminance minus a
Gaussian blur of it whose sigma is BAND_SIGMA x the upscale factor, so that at the working
size's Nyquist frequency the blur keeps half the amplitude and the band takes the other half
(the band starts where the working size stops). The band is added as a grey offset (the
same amount on R, G and B), which moves luminance only: YIQ's I and Q rows sum to zero, so
the painting's colours stay its own; only where a channel reaches 0 or 1 does the clamp pale
or deepen the colour, as white or black paint would. Everything the working size holds
(brush strokes, palette, large forms) is the stylized image's; only the scale it never saw
is the content's.

Measured on a 3000 x 2000 collage of photos painted at 512 px (bench/bench_resolution.py):
the full band (AMOUNT 1) brings the high-frequency energy from 0.01x the content's
(bicubic) to about 0.87x, with the shared style and content figures within a few percent of
the bicubic result's. A hue-keeping limit instead of the clamp (the offset cut to each
pixel's room) lost a sixth of the energy and, being one-sided near the palette's bright
yellows and dark blues, shifted the mean more; an RGB band measured the same as luminance
but would bring the photo's colour fringes; unsharp masking the painting's own strokes
raised (worsened) the style figure from 0.048 to 0.066..0.14 and was left out.

`high_frequency_energy` is the one number for "how sharp" that benches and tests share.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

#: ITU-R BT.601 luma weights (YIQ's Y; the engine's rgb_to_yiq and the editors use them).
LUMA = (0.299, 0.587, 0.114)
#: Width of the low-pass that splits off the band, in upscale factors: the band is the
#: content's luminance minus its Gaussian blur of sigma BAND_SIGMA * factor (full-size px).
#: 0.375: the blur's half-amplitude frequency, sqrt(ln 2 / 2) / (pi * sigma) = 0.4997 /
#: factor cycles per px, is the working size's Nyquist frequency, 0.5 / factor.
BAND_SIGMA = 0.375
#: How much of the content's band goes back on (1 = all of it).
AMOUNT = 1.0
#: Below this upscale factor the working size already holds the layer: nothing to restore.
MIN_FACTOR = 1.0 + 1e-6
#: Pixels per band of rows: bounds the extra memory to a few of these (float32, one plane).
BAND_PIXELS = 1 << 21
#: The Gaussian's reach in sigmas (the kernel's half-width).
TRUNCATE = 3.0
#: high_frequency_energy's blur, in px at the image's own size.
HF_SIGMA = 1.0


def restore_detail(
    stylized_full: torch.Tensor,
    content_full: torch.Tensor,
    working_hw: tuple[int, int],
    *,
    amount: float = AMOUNT,
    band_sigma: float = BAND_SIGMA,
) -> torch.Tensor:
    """The upscaled result with the content's band above the working size's put back.

    stylized_full: (1, 3, H, W) 0..1, the working-size result already upsampled to (H, W);
    content_full: (1, 3, H, W) 0..1, the layer's RGB; working_hw: the (h, w) it was
    optimised at. Returns (1, 3, H, W) in 0..1, stylized_full's device and dtype; the input
    itself when the working size is the full size. Works in bands of rows, so the memory it
    adds beyond the output is a few planes of BAND_PIXELS whatever the layer's size.
    """
    if stylized_full.dim() != 4 or stylized_full.shape[:2] != (1, 3):
        raise ValueError(f"stylized_full must be (1, 3, H, W), not {tuple(stylized_full.shape)}")
    if content_full.shape != stylized_full.shape:
        raise ValueError(
            f"content_full {tuple(content_full.shape)} != stylized_full "
            f"{tuple(stylized_full.shape)}"
        )
    height, width = stylized_full.shape[-2:]
    factor = max(height / max(1, working_hw[0]), width / max(1, working_hw[1]))
    if factor < MIN_FACTOR or amount == 0.0:
        return stylized_full
    sigma = band_sigma * factor
    radius = max(1, int(TRUNCATE * sigma + 0.5))
    device = stylized_full.device
    luma = torch.tensor(LUMA, dtype=torch.float32, device=device)
    out = torch.empty_like(stylized_full)
    rows = max(1, BAND_PIXELS // width)
    with torch.no_grad():
        for top in range(0, height, rows):
            bottom = min(height, top + rows)
            lo, hi = max(0, top - radius), min(height, bottom + radius)
            content = content_full[0, :, lo:hi].to(device, torch.float32)
            y = torch.einsum("c,chw->hw", luma, content)
            band = (y - _blur(y, sigma, radius))[top - lo : top - lo + bottom - top]
            stylized = stylized_full[0, :, top:bottom].float()
            # The same offset on R, G and B moves luminance only (YIQ's I and Q rows sum to
            # zero); only where a channel reaches 0 or 1 does the clamp pale or deepen it.
            band.mul_(amount)
            out[0, :, top:bottom] = (stylized + band).clamp_(0.0, 1.0).to(out.dtype)
    return out


def _blur(y: torch.Tensor, sigma: float, radius: int) -> torch.Tensor:
    """Separable Gaussian of an (h, w) float32 plane, edges mirrored (replicated when the
    plane is shorter than the kernel): scipy.ndimage on the CPU (several times faster there
    than torch's convolutions), torch's conv2d with the same kernel elsewhere."""
    if y.device.type == "cpu":
        arr = y.numpy()
        for axis in (1, 0):
            mode = "mirror" if radius < arr.shape[axis] else "nearest"
            arr = ndimage.gaussian_filter1d(arr, sigma, axis=axis, mode=mode, radius=radius)
        return torch.from_numpy(arr)
    return _blur_torch(y, sigma, radius)


def _blur_torch(y: torch.Tensor, sigma: float, radius: int) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=y.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    plane = y[None, None]
    for dim in (3, 2):
        pad = (radius, radius, 0, 0) if dim == 3 else (0, 0, radius, radius)
        mode = "reflect" if radius < plane.shape[dim] else "replicate"
        shape = (1, 1, 1, -1) if dim == 3 else (1, 1, -1, 1)
        plane = F.conv2d(F.pad(plane, pad, mode=mode), kernel.view(shape))
    return plane[0, 0]


def high_frequency_energy(rgb: np.ndarray) -> float:
    """Sharpness of an image: the mean square of its luminance minus a Gaussian blur of it
    (sigma HF_SIGMA = 1 px at the image's own size), luminance in 0..1.

    rgb: (H, W, 3) or (H, W, 4) (alpha ignored), uint8, uint16 or float 0..1. Why this
    definition: what a soft upscale lacks is exactly the energy in the top octave or so of
    the image's own pixel grid, and a 1 px Gaussian's complement measures that band and
    little else (a bicubic 6x upscale keeps almost none of it, the sharp original keeps all
    of it); luminance, because that is where the eye reads sharpness and where detail.py
    puts the detail back; a mean square, so it is independent of the image's size and is 0
    for a flat image. Compare images of the same size only.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"rgb must be (H, W, 3) or (H, W, 4), not {arr.shape}")
    if arr.dtype == np.uint8:
        scale = 255.0
    elif arr.dtype == np.uint16:
        scale = 65535.0
    elif arr.dtype.kind == "f":
        scale = 1.0
    else:
        raise ValueError(f"rgb must be uint8, uint16 or float, not {arr.dtype}")
    weights = np.asarray(LUMA, dtype=np.float32) / np.float32(scale)
    y = arr[:, :, :3].astype(np.float32) @ weights
    residual = y - ndimage.gaussian_filter(y, HF_SIGMA, mode="reflect")
    return float(np.mean(np.square(residual, dtype=np.float64)))
