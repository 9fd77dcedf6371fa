"""ZiCo: inverse coefficient of variation of the gradients across mini-batches (Li et al., ICLR 2023)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._hooks import check_batch, weighted_layers
from ._registry import ProxyContext, proxy


@proxy("zico", needs=("data", "labels", "loss"), bn="train", cost="backward", higher_is_better=True,
       reference="Li, Yang, Bhardwaj & Marculescu, ICLR 2023 (ZiCo), SLDGroup/ZiCo compute_zico.py",
       defaults={"splits": 2})
def zico(ctx: ProxyContext) -> float:
    """ZiCo = sum over layers l of log( sum_{theta in l, sigma_theta > 0} mean_b|g_theta,b| / sigma_theta ).

    g_theta,b is the gradient of the mean cross-entropy of mini-batch b w.r.t. weight theta of a
    Conv2d / Linear layer (weights only, as the reference); mean and population std (numpy ``std``,
    ddof=0) run over the ``splits`` mini-batches, made by splitting the proxy batch into equal parts
    (``splits`` = 2 halves by default). Weights with sigma = 0 are skipped and layers whose sum is 0 are
    left out, exactly as the reference; when no layer is left (e.g. a network whose output ignores its
    input) the value is 0.0, flagged ``degenerate``. Deviation: gradients are zeroed between
    mini-batches (the paper's definition); the reference code forgets ``zero_grad`` and records running
    sums. Statistics are computed in float64.
    """
    splits = int(ctx.options["splits"])
    if splits < 2:
        raise ValueError(f"zico: splits must be >= 2 (the std needs two mini-batches), got {splits}")
    x = check_batch(ctx.x, "zico", minimum=splits)
    y = ctx.y
    model = ctx.model_copy()
    layers = weighted_layers(model)
    per_batch: list[list[torch.Tensor]] = [[] for _ in layers]
    for xb, yb in zip(x.tensor_split(splits), y.tensor_split(splits)):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb.to(ctx.spec.dtype)), yb).backward()
        for slot, (_, layer) in zip(per_batch, layers):
            g = layer.weight.grad
            slot.append(torch.zeros_like(layer.weight).flatten() if g is None else g.detach().flatten())
    total, used = 0.0, 0
    for grads in per_batch:
        g = torch.stack(grads).to(torch.float64)
        std = g.std(dim=0, unbiased=False)
        keep = std > 0
        ratio_sum = float((g.abs().mean(dim=0)[keep] / std[keep]).sum())
        if ratio_sum > 0:
            total += math.log(ratio_sum)
            used += 1
    if used == 0:
        ctx.flag("degenerate")
        return 0.0
    return total
