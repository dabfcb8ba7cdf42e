"""The seed's cost functions (Gatys et al.), as a public API on (1, nC, nH, nW) tensors.

The optimisation loop in `engine` precomputes style targets but calls these same functions,
so a run's costs are exactly these definitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

LayerWeights = Mapping[str, float] | Iterable[tuple[str, float]]


def content_cost(a_C: torch.Tensor, a_G: torch.Tensor) -> torch.Tensor:
    """Jc = sum((a_C - a_G)^2) / (4 * nH * nW * nC)."""
    _, n_c, n_h, n_w = a_G.shape
    return (a_C - a_G).pow(2).sum() / (4 * n_h * n_w * n_c)


def gram_matrix(A: torch.Tensor) -> torch.Tensor:
    """G = A @ A^T for A of shape (nC, nH*nW)."""
    return A @ A.transpose(-1, -2)


def _unrolled(a: torch.Tensor) -> torch.Tensor:
    _, n_c, n_h, n_w = a.shape
    return a.reshape(n_c, n_h * n_w)


def style_target(a_S: torch.Tensor) -> torch.Tensor:
    """G_S / (nH*nW) of the style activation: what a layer's style cost compares against.

    Dividing by the style's own nH*nW makes the cost defined when the style image and the
    generated image differ in size; with equal sizes it is exactly the seed's formula.
    """
    _, _, n_h, n_w = a_S.shape
    return gram_matrix(_unrolled(a_S)) / (n_h * n_w)


def guided_gram(a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum_p m_p a_p a_p^T / sum_p m_p: the Gram matrix of the features the mask covers, each
    position weighed by its mask value, normalised by the mask's weight.

    Gatys et al.'s guided Gram ("Controlling Perceptual Factors in Neural Style Transfer",
    2017) with the guidance sqrt(m): a position's pull towards the style is then linear in its
    mask value. For an all-ones mask it is style_target's G / (nH*nW) exactly; for a 0/1 mask,
    the Gram of the region alone. mask: nH x nW values (any leading dims of size 1).
    """
    unrolled = _unrolled(a)
    weights = mask.reshape(1, -1)
    return (unrolled * weights) @ unrolled.transpose(-1, -2) / weights.sum()


def layer_style_cost_from_target(
    target: torch.Tensor, a_G: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """sum((G_S - G_G)^2) / (4 * nC^2 * (nH*nW)^2) with G_S given as style_target(a_S); with a
    mask, G_G is the guided Gram of the region it covers (guided_gram)."""
    _, n_c, n_h, n_w = a_G.shape
    if mask is None:
        g_g = gram_matrix(_unrolled(a_G)) / (n_h * n_w)
    else:
        g_g = guided_gram(a_G, mask)
    return (target - g_g).pow(2).sum() / (4 * n_c**2)


def layer_style_cost(a_S: torch.Tensor, a_G: torch.Tensor) -> torch.Tensor:
    """J_style_layer = sum((G_S - G_G)^2) / (4 * nC^2 * (nH*nW)^2)."""
    return layer_style_cost_from_target(style_target(a_S), a_G)


def _pairs(layer_weights: LayerWeights) -> list[tuple[str, float]]:
    items = layer_weights.items() if isinstance(layer_weights, Mapping) else layer_weights
    return [(str(name), float(weight)) for name, weight in items]


def style_cost(
    feats_S: Mapping[str, torch.Tensor],
    feats_G: Mapping[str, torch.Tensor],
    layer_weights: LayerWeights,
) -> torch.Tensor:
    """Js = sum over layers l of lambda_l * layer_style_cost(S_l, G_l), layers matched by name."""
    total = None
    for name, weight in _pairs(layer_weights):
        term = weight * layer_style_cost(feats_S[name], feats_G[name])
        total = term if total is None else total + term
    if total is None:
        raise ValueError("style_cost needs at least one layer")
    return total


def total_cost(
    J_content: torch.Tensor, J_style: torch.Tensor, alpha: float = 10.0, beta: float = 40.0
) -> torch.Tensor:
    """J = alpha * Jc + beta * Js."""
    return alpha * J_content + beta * J_style


def tv_cost(image: torch.Tensor) -> torch.Tensor:
    """Total variation 0.5 * sum(dx^2 + dy^2) of an (N, C, H, W) image (neural-style's form)."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return 0.5 * (dx.pow(2).sum() + dy.pow(2).sum())
