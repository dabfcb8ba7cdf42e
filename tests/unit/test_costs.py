"""The seed's cost formulas, checked against an independent numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nst_core import costs

SHAPES = [(1, 3, 4, 5), (1, 8, 7, 3), (1, 16, 1, 9), (1, 64, 6, 6)]


def _np_gram(a: np.ndarray) -> np.ndarray:
    n_c = a.shape[1]
    unrolled = a.reshape(n_c, -1)
    return unrolled @ unrolled.T


@pytest.mark.parametrize("shape", SHAPES)
def test_content_cost_matches_formula(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    a_c, a_g = rng.normal(size=shape), rng.normal(size=shape)
    _, n_c, n_h, n_w = shape
    expected = ((a_c - a_g) ** 2).sum() / (4 * n_h * n_w * n_c)
    got = costs.content_cost(torch.from_numpy(a_c), torch.from_numpy(a_g)).item()
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("shape", [(3, 20), (8, 5), (64, 36)])
def test_gram_matrix_is_a_at(shape: tuple[int, int]) -> None:
    a = np.random.default_rng(2).normal(size=shape)
    got = costs.gram_matrix(torch.from_numpy(a)).numpy()
    np.testing.assert_allclose(got, a @ a.T, rtol=1e-12)
    assert got.shape == (shape[0], shape[0])


@pytest.mark.parametrize("shape", SHAPES)
def test_layer_style_cost_matches_formula(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(3)
    a_s, a_g = rng.normal(size=shape), rng.normal(size=shape)
    _, n_c, n_h, n_w = shape
    expected = ((_np_gram(a_s) - _np_gram(a_g)) ** 2).sum() / (4 * n_c**2 * (n_h * n_w) ** 2)
    got = costs.layer_style_cost(torch.from_numpy(a_s), torch.from_numpy(a_g)).item()
    assert got == pytest.approx(expected, rel=1e-10)


def test_style_cost_weights_layers_by_name() -> None:
    rng = np.random.default_rng(4)
    shapes = {"relu1_1": (1, 4, 6, 6), "relu2_1": (1, 8, 3, 3), "relu3_1": (1, 16, 2, 2)}
    fs = {k: rng.normal(size=s) for k, s in shapes.items()}
    fg = {k: rng.normal(size=s) for k, s in shapes.items()}
    weights = [("relu3_1", 0.5), ("relu1_1", 0.2), ("relu2_1", 0.3)]
    expected = 0.0
    for name, lam in weights:
        _, n_c, n_h, n_w = shapes[name]
        expected += (
            lam
            * ((_np_gram(fs[name]) - _np_gram(fg[name])) ** 2).sum()
            / (4 * n_c**2 * (n_h * n_w) ** 2)
        )
    t = {k: torch.from_numpy(v) for k, v in fs.items()}
    g = {k: torch.from_numpy(v) for k, v in fg.items()}
    assert costs.style_cost(t, g, weights).item() == pytest.approx(expected, rel=1e-10)
    assert costs.style_cost(t, g, dict(weights)).item() == pytest.approx(expected, rel=1e-10)


def test_total_cost() -> None:
    j = costs.total_cost(torch.tensor(2.0), torch.tensor(3.0), alpha=10, beta=40)
    assert j.item() == pytest.approx(10 * 2 + 40 * 3)


def test_style_target_generalises_to_other_sizes() -> None:
    """With equal shapes the target-based cost is the seed's formula exactly."""
    rng = np.random.default_rng(5)
    a_s, a_g = (torch.from_numpy(rng.normal(size=(1, 8, 5, 4))) for _ in range(2))
    direct = costs.layer_style_cost(a_s, a_g)
    via_target = costs.layer_style_cost_from_target(costs.style_target(a_s), a_g)
    assert via_target.item() == pytest.approx(direct.item(), rel=1e-12)


def test_gradcheck_costs() -> None:
    torch.manual_seed(0)
    a = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    g = torch.randn(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: costs.content_cost(a, x), (g,))
    assert torch.autograd.gradcheck(lambda x: costs.layer_style_cost(a, x), (g,))
    assert torch.autograd.gradcheck(costs.tv_cost, (g,))
    m = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(costs.gram_matrix, (m,))


def _by_autograd(target: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer style cost written out as the formula on a (1, 16, 9, 11) activation's
    values, and its gradient by autograd: what the written gradient is checked against."""
    b = a.detach().clone().requires_grad_(True)
    flat = b.reshape(16, -1)
    formula = (target - flat @ flat.T / 99).pow(2).sum() / (4 * 16**2)
    (grad,) = torch.autograd.grad(formula, b)
    return formula.detach(), grad


def test_the_written_style_gradient_is_autograds_of_the_formula() -> None:
    """The whole-image layer cost's hand-written gradient against autograd of the formula,
    in float64 and on a channels_last float32 activation (the engine's layouts)."""
    gen = torch.Generator().manual_seed(4)
    target = costs.style_target(torch.rand((1, 16, 9, 11), generator=gen, dtype=torch.float64))
    for dtype, layout in (
        (torch.float64, torch.contiguous_format),
        (torch.float32, torch.channels_last),
    ):
        a = torch.rand((1, 16, 9, 11), generator=gen, dtype=dtype)
        a = a.contiguous(memory_format=layout).requires_grad_(True)
        written = costs.layer_style_cost_from_target(target.to(dtype), a)
        (got,) = torch.autograd.grad(written, a)
        formula, want = _by_autograd(target.to(dtype), a)
        tol = 1e-12 if dtype == torch.float64 else 1e-6
        assert torch.allclose(written, formula, rtol=tol) and torch.allclose(
            got, want, rtol=1e-5, atol=tol
        )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_costs_of_a_low_precision_pass_are_summed_in_fp32(dtype: torch.dtype) -> None:
    """Activations as a bf16/fp16 pass makes them (channels_last): the costs equal the fp32
    formulas on the same values, and the style gradient comes back in the activation's
    layout and precision, the fp32 gradient to that precision's rounding."""
    gen = torch.Generator().manual_seed(5)
    target = costs.style_target(torch.rand((1, 16, 9, 11), generator=gen))
    a = torch.rand((1, 16, 9, 11), generator=gen).to(dtype)
    a = a.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    exact = a.detach().float()

    cost = costs.layer_style_cost_from_target(target, a)
    (got,) = torch.autograd.grad(cost, a)
    formula, want = _by_autograd(target, exact)

    assert cost.dtype == torch.float32
    assert torch.allclose(cost, formula, rtol=1e-5)
    assert got.dtype == dtype and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got.float(), want, rtol=1e-2, atol=1e-2 * float(want.abs().max()))
    assert torch.equal(costs.style_target(a.detach()), costs.style_target(exact))

    content = costs.content_cost(a.detach(), torch.zeros_like(a))
    assert content.dtype == torch.float32
    assert torch.allclose(content, costs.content_cost(exact, torch.zeros_like(exact)))
