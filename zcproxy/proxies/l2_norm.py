"""L2 norm of the initial weights."""
from __future__ import annotations

import torch

from ._hooks import weighted_layers
from ._registry import ProxyContext, proxy


@proxy("l2_norm", bn="eval", dtype=torch.float64, higher_is_better=True, cost="static",
       reference="NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022), l2_norm")
def l2_norm(ctx: ProxyContext) -> float:
    """``sum_l ||W_l||_2``: Frobenius norm of every Conv2d / Linear weight, summed (float64)."""
    model = ctx.model_copy()
    with torch.no_grad():
        return float(sum(torch.linalg.vector_norm(m.weight) for _, m in weighted_layers(model)))
