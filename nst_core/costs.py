"""The seed's cost functions (Gatys et al.), as a public API on (1, nC, nH, nW) tensors.

The optimisation loop in `engine` precomputes style targets but calls these same functions,
so a run's costs are exactly these definitions.

The activations may come in the VGG pass's own precision (bf16, fp16) and layout
(channels_last): the costs and Gram matrices are computed in fp32 whatever they are, and the
whole-image style gradient is written in the activation's precision and layout, the form it
re-enters the network's backward in (an fp32, channels-first gradient there cost a conversion
and a strided sum per layer: a fifth of a 512x384 evaluation on the 2-core CPU).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

LayerWeights = Mapping[str, float] | Iterable[tuple[str, float]]


def _exact(t: torch.Tensor) -> torch.Tensor:
    """t in fp32 or better: what the costs are summed in."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def content_cost(a_C: torch.Tensor, a_G: torch.Tensor) -> torch.Tensor:
    """Jc = sum((a_C - a_G)^2) / (4 * nH * nW * nC)."""
    _, n_c, n_h, n_w = a_G.shape
    return (_exact(a_C) - _exact(a_G)).pow(2).sum() / (4 * n_h * n_w * n_c)


def gram_matrix(A: torch.Tensor) -> torch.Tensor:
    """G = A @ A^T for A of shape (nC, nH*nW)."""
    return A @ A.transpose(-1, -2)


def _positions(a: torch.Tensor) -> torch.Tensor:
    """(nH*nW, nC) of a (1, nC, nH, nW) activation: a view of a channels_last one."""
    return a[0].permute(1, 2, 0).reshape(-1, a.shape[1])


def _matrix(a: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """A 2-D view of a (1, nC, nH, nW) activation in its own layout, without a copy: the
    (nH*nW, nC) positions of a channels_last one (True), else the (nC, nH*nW) unrolled one."""
    _, n_c, n_h, n_w = a.shape
    if a.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous():
        return _positions(a), True
    return a.reshape(n_c, n_h * n_w), False


def _gram(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(G in fp32, the activation's 2-D view, whether that view is the positions one)."""
    m, positions = _matrix(a)
    exact = _exact(m)
    return (exact.transpose(0, 1) @ exact if positions else gram_matrix(exact)), m, positions


def style_target(a_S: torch.Tensor) -> torch.Tensor:
    """G_S / (nH*nW) of the style activation: what a layer's style cost compares against.

    Dividing by the style's own nH*nW makes the cost defined when the style image and the
    generated image differ in size; with equal sizes it is exactly the seed's formula.
    """
    _, _, n_h, n_w = a_S.shape
    return _gram(a_S)[0] / (n_h * n_w)


def guided_gram(a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum_p m_p a_p a_p^T / sum_p m_p: the Gram matrix of the features the mask covers, each
    position weighed by its mask value, normalised by the mask's weight.

    Gatys et al.'s guided Gram ("Controlling Perceptual Factors in Neural Style Transfer",
    2017) with the guidance sqrt(m): a position's pull towards the style is then linear in its
    mask value. For an all-ones mask it is style_target's G / (nH*nW); for a 0/1 mask, the
    Gram of the region alone. mask: nH x nW values (any leading dims of size 1).
    """
    positions = _exact(_positions(a))
    weights = mask.reshape(-1, 1)
    return (positions * weights).transpose(0, 1) @ positions / weights.sum()


#: Rows and columns (r0, r1, c0, c1) of a layer outside which a mask is 0.
Box = tuple[int, int, int, int]


def mask_box(mask: torch.Tensor) -> Box:
    """The smallest box holding every nonzero value of a (..., nH, nW) mask."""
    rows = torch.nonzero(mask.reshape(mask.shape[-2:]).sum(1)).flatten()
    cols = torch.nonzero(mask.reshape(mask.shape[-2:]).sum(0)).flatten()
    if len(rows) == 0:
        return (0, 0, 0, 0)
    return (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


class _GuidedStyleCosts(torch.autograd.Function):
    """Each region's layer_style_cost over its mask, in one pass over one activation.

    Same values as layer_style_cost_from_target with guided_gram, at about the cost of the
    unmasked one: each region reads only its mask's box, and the gradient is written
    directly, B (G - T) / (nC^2 sum(m)) per region (B: the positions times their mask
    values), one product where autograd would make two, added into one tensor for all
    regions.
    """

    @staticmethod
    def forward(
        ctx: Any,
        a: torch.Tensor,
        targets: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor],
        boxes: Sequence[Box],
    ) -> torch.Tensor:
        n_c = a.shape[1]
        parts, out = [], []
        for target, mask, (r0, r1, c0, c1) in zip(targets, masks, boxes, strict=True):
            positions = _exact(_positions(a[..., r0:r1, c0:c1]))
            weights = mask[..., r0:r1, c0:c1].reshape(-1, 1)
            total = weights.sum()
            weighted = positions * weights
            diff = weighted.transpose(0, 1) @ positions / total - target
            out.append(diff.pow(2).sum() / (4 * n_c**2))
            parts.append((diff, weighted, total))
        ctx.parts, ctx.boxes, ctx.shape = parts, boxes, a.shape
        return torch.stack(out)

    @staticmethod
    def backward(ctx: Any, grad_costs: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        _, n_c, n_h, n_w = ctx.shape
        grad = grad_costs.new_zeros((1, n_h, n_w, n_c))
        for g, (diff, weighted, total), (r0, r1, c0, c1) in zip(
            grad_costs, ctx.parts, ctx.boxes, strict=True
        ):
            part = (weighted @ diff) * (g / (n_c**2 * total))
            grad[0, r0:r1, c0:c1] += part.reshape(r1 - r0, c1 - c0, n_c)
        ctx.parts = None
        return grad.permute(0, 3, 1, 2), None, None, None


def guided_style_costs(
    a_G: torch.Tensor,
    targets: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    boxes: Sequence[Box] | None = None,
) -> torch.Tensor:
    """layer_style_cost_from_target(targets[r], a_G, masks[r]) for each region r, as a
    vector (boxes: each mask's mask_box, when the caller has them)."""
    if boxes is None:
        boxes = [mask_box(m) for m in masks]
    costs: torch.Tensor = _GuidedStyleCosts.apply(a_G, list(targets), list(masks), list(boxes))
    return costs


class _StyleCost(torch.autograd.Function):
    """layer_style_cost_from_target over the whole image with its gradient written directly,
    (G - T) A / (nC^2 nH nW): one product where autograd of A A^T makes two (and their
    transposed copies). The gradient is made in the activation's layout and in its precision
    where that keeps fp32's range (bf16; fp16 gets fp32): the values it would be rounded to
    on entering the network's backward anyway."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _, n_c, n_h, n_w = a.shape
        gram, m, positions = _gram(a)
        diff = gram / (n_h * n_w) - target
        ctx.save_for_backward(m, diff)
        ctx.shape, ctx.positions = a.shape, positions
        return diff.pow(2).sum() / (4 * n_c**2)

    @staticmethod
    def backward(ctx: Any, grad_cost: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        m, diff = ctx.saved_tensors
        _, n_c, n_h, n_w = ctx.shape
        if m.dtype == torch.float16:
            m = m.float()
        scaled = (diff * (grad_cost / (n_c**2 * n_h * n_w))).to(m.dtype)
        if ctx.positions:  # diff is symmetric: (positions @ diff) is (diff @ unrolled)^T
            return (m @ scaled).view(1, n_h, n_w, n_c).permute(0, 3, 1, 2), None
        return (scaled @ m).view(ctx.shape), None


def layer_style_cost_from_target(
    target: torch.Tensor, a_G: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """sum((G_S - G_G)^2) / (4 * nC^2 * (nH*nW)^2) with G_S given as style_target(a_S); with a
    mask, G_G is the guided Gram of the region it covers (guided_gram)."""
    if mask is not None:
        return guided_style_costs(a_G, [target], [mask])[0]
    cost: torch.Tensor = _StyleCost.apply(a_G, target)
    return cost


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
