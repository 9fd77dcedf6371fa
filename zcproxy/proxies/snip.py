"""SNIP: connection sensitivity at initialisation."""
from __future__ import annotations

import torch

from ._common import ce_weight_gradients
from ._registry import ProxyContext, proxy


@proxy("snip", needs=("data", "labels", "loss"), bn="train", dtype=torch.float32, higher_is_better=True,
       reference="Lee et al., ICLR 2019 (SNIP); Abdelfattah et al., ICLR 2021 (zero-cost proxies)",
       cost="backward")
def snip(ctx: ProxyContext) -> float:
    """``sum_l sum |W_l * dL/dW_l|`` over every Conv2d / Linear weight, L = mean cross-entropy.

    Equals the reference's ``|dL/dm|`` for a multiplicative mask m = 1. Train-mode BatchNorm, float32,
    sum accumulated in float64. Exactly 0 (no weight gradient at all) is flagged ``degenerate``.
    """
    value = float(sum((w.double() * g.double()).abs().sum() for w, g in ce_weight_gradients(ctx)))
    if value == 0.0:
        ctx.flag("degenerate")
    return value
