"""Plain: first-order Taylor saliency without absolute value."""
from __future__ import annotations

import torch

from ._common import ce_weight_gradients
from ._registry import ProxyContext, proxy


@proxy("plain", needs=("data", "labels", "loss"), bn="train", dtype=torch.float32, higher_is_better=True,
       reference="Mozer & Smolensky, NeurIPS 1989; Abdelfattah et al., ICLR 2021 (zero-cost proxies, plain)",
       cost="backward")
def plain(ctx: ProxyContext) -> float:
    """``sum_l sum W_l * dL/dW_l`` over every Conv2d / Linear weight (signed), L = mean cross-entropy.

    Train-mode BatchNorm, float32 gradients, sum in float64. Exactly 0 (no weight gradient at all) is
    flagged ``degenerate``.
    """
    value = float(sum((w.double() * g.double()).sum() for w, g in ce_weight_gradients(ctx)))
    if value == 0.0:
        ctx.flag("degenerate")
    return value
