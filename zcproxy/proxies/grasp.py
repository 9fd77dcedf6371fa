"""GraSP: gradient-signal preservation (Hessian-gradient product)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._hooks import check_batch, weighted_layers
from ._registry import ProxyContext, proxy


@proxy("grasp", needs=("data", "labels", "loss"), bn="train", dtype=torch.float32, higher_is_better=True,
       reference="Wang et al., ICLR 2020 (GraSP); Abdelfattah et al., ICLR 2021 (zero-cost proxies)",
       cost="backward")
def grasp(ctx: ProxyContext) -> float:
    """``sum_l sum -W_l * (H g)_l`` over Conv2d / Linear weights: g = dL/dW (held constant), H the Hessian
    of the mean cross-entropy L with respect to those weights, ``H g = d(g . dL/dW)/dW``.

    As zero-cost-nas ``compute_grasp_per_weight`` (T = 1, one iteration, train-mode BatchNorm, float32)
    including its sign: its authors negate ``theta * Hg`` because accuracy correlated negatively with
    it, and read the negated sum as higher-is-better, as done here. The reference runs a second forward
    pass for the differentiable gradient; with train-mode BatchNorm it is identical to the first, so one
    pass serves both. Sum in float64. Exactly 0 (no curvature reaches the weights) is flagged ``degenerate``.
    """
    x = check_batch(ctx.x, "grasp")
    model = ctx.model_copy(bn="train", dtype=torch.float32)
    weights = [m.weight for _, m in weighted_layers(model)]
    if not weights:
        raise ValueError("grasp needs at least one Conv2d or Linear layer; the model has none")
    loss = F.cross_entropy(model(x), ctx.y)
    grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    pairs = [(w, g) for w, g in zip(weights, grads) if g is not None]
    inner = sum((g.detach() * g).sum() for _, g in pairs)
    value = 0.0
    if isinstance(inner, torch.Tensor) and inner.requires_grad:
        hessian_grads = torch.autograd.grad(inner, [w for w, _ in pairs], allow_unused=True)
        value = float(sum((-(w.detach().double()) * hg.double()).sum()
                          for (w, _), hg in zip(pairs, hessian_grads) if hg is not None))
    if value == 0.0:
        ctx.flag("degenerate")
    return value
