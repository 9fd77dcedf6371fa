"""Fisher: channel saliency from activations times their gradients."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import check_batch, forward_hooks, weighted_layers
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
    one call). Sum accumulated in float64.
    """
    x = check_batch(ctx.x, "fisher")
    model = ctx.model_copy(bn="train", dtype=torch.float32)
    layers = [m for _, m in weighted_layers(model)]
    if not layers:
        raise ValueError("fisher needs at least one Conv2d or Linear layer; the model has none")
    activations: list[torch.Tensor] = []
    fan_in: list[int] = []

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        activations.append(output)
        fan_in.append(module.weight[0].numel())

    with forward_hooks(layers, keep):
        loss = F.cross_entropy(model(x), ctx.y)
    grads = torch.autograd.grad(loss, activations, allow_unused=True)
    total = 0.0
    for act, grad, weights_per_channel in zip(activations, grads, fan_in):
        if grad is None:
            continue
        product = (act.detach() * grad).double()
        per_channel = product.sum(dim=tuple(range(2, product.dim()))) if product.dim() > 2 else product
        total += float(per_channel.pow(2).mean(0).mul(0.5).sum()) * weights_per_channel
    return total
