"""Gradient norm at initialisation."""
from __future__ import annotations

import torch

from ._common import ce_weight_gradients
from ._registry import ProxyContext, proxy


@proxy("grad_norm", needs=("data", "labels", "loss"), bn="train", dtype=torch.float32, higher_is_better=True,
       reference="Abdelfattah et al., ICLR 2021 (zero-cost proxies, grad_norm)", cost="backward")
def grad_norm(ctx: ProxyContext) -> float:
    """``sum_l ||dL/dW_l||_2`` (Frobenius norm per Conv2d / Linear weight), L = mean cross-entropy.

    Train-mode BatchNorm, float32 gradients, norms and sum in float64. Exactly 0 (no weight gradient at
    all) is flagged ``degenerate``.
    """
    value = float(sum(torch.linalg.vector_norm(g.double()) for _, g in ce_weight_gradients(ctx)))
    if value == 0.0:
        ctx.flag("degenerate")
    return value
