"""Fisher: channel saliency from activations times their gradients."""
from __future__ import annotations

import torch

from ._hooks import check_batch
from ._passes import train_pass
from ._registry import ProxyContext, proxy


@proxy("fisher", needs=("data", "labels", "loss"), bn="train", dtype=torch.float32, higher_is_better=True,
       reference="Theis et al., 2018 (Fisher pruning); Turner et al., ICLR 2020; "
                 "Abdelfattah et al., ICLR 2021 (zero-cost proxies)",
       cost="backward")
def fisher(ctx: ProxyContext) -> float:
    """``sum_l m_l sum_k 1/2 mean_n (sum_hw a_nkhw * dL/da_nkhw)^2``: ``a`` is the output of Conv2d /
    Linear layer l (before BatchNorm), ``m_l`` the number of weights of one of its output channels
    (C_in/groups * k_h * k_w, or in_features) and L the mean cross-entropy of the batch.

    As zero-cost-nas ``compute_fisher_per_weight`` (train-mode BatchNorm, float32), which broadcasts each
    channel's value over that channel's weights before NAS-Bench-Suite-Zero sums every weight, hence the
    factor ``m_l``. A layer called several times contributes once per call (the reference supports
    one call). Sum accumulated in float64. The forward and the cross-entropy backward are the call's
    shared ones (:mod:`zcproxy.proxies._passes`: snip, grad_norm, plain and grasp use the same pass).
    """
    check_batch(ctx.x, "fisher")
    if ctx.y is None:
        raise ValueError("fisher needs labels; pass batch=(x, y)")
    pass_ = train_pass(ctx)
    if not pass_.weights:
        raise ValueError("fisher needs at least one Conv2d or Linear layer; the model has none")
    return pass_.fisher()
