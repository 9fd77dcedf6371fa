"""GraSP: gradient-signal preservation (Hessian-gradient product)."""
from __future__ import annotations

import torch

from ._hooks import check_batch
from ._passes import train_pass
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
    pass serves both; that forward is the call's shared one (:mod:`zcproxy.proxies._passes`, also used by
    snip, grad_norm, plain, fisher, jacov and epe_nas). Sum in float64. Exactly 0 (no curvature reaches the weights) is flagged ``degenerate``.
    """
    check_batch(ctx.x, "grasp")
    if ctx.y is None:
        raise ValueError("grasp needs labels; pass batch=(x, y)")
    value = train_pass(ctx).grasp()
    if value == 0.0:
        ctx.flag("degenerate")
    return value
