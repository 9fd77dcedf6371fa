"""SynFlow: synaptic flow of the all-positive linearised network."""
from __future__ import annotations

from typing import Callable

import torch

from .._datasets import dataset_info
from ._common import strip_input_normalization
from ._hooks import replace_batchnorm, weighted_layers
from ._registry import ProxyContext, proxy


@proxy("synflow", bn="eval", dtype=torch.float64, higher_is_better=True, cost="backward",
       reference="Tanaka et al., NeurIPS 2020 (SynFlow); Abdelfattah et al., ICLR 2021 (zero-cost proxies)")
def synflow(ctx: ProxyContext) -> float:
    """``sum_l sum |theta_l * dR/dtheta_l|`` over Conv2d / Linear weights, ``R = sum f(1; |theta|)``.

    As the zero-cost-nas reference (``synflow``, registered with ``bn=False``): a float64 copy whose every
    parameter is replaced by its absolute value, BatchNorm layers bypassed (identity), and one all-ones
    input of shape 1 x 3 x S x S fed to the network after its input normalisation (S = the dataset's
    image size; the reference takes the shape of its batch). Values reach ~1e60, hence float64; the raw
    sum is returned. A network whose output does not depend on its input scores 0.
    """
    return synaptic_flow(ctx, lambda g: g)


def synaptic_flow(ctx: ProxyContext, remap: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """``sum |theta * remap(dR/dtheta)|`` of the linearised network (shared by synflow and logsynflow).

    The weights and gradients are computed once per ``score()`` call (``ctx.shared``); a zero sum flags
    ``degenerate``.
    """
    total = sum((w * remap(g)).abs().sum() for w, g in ctx.shared(("synflow.gradients",), lambda: _gradients(ctx)))
    value = float(total)
    if value == 0.0:
        ctx.flag("degenerate")
    return value


def _gradients(ctx: ProxyContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(|W|, dR/d|W|) of every Conv2d / Linear weight, R = sum f(1; |theta|), BN bypassed, float64."""
    model = ctx.model_copy(bn="eval", dtype=torch.float64)
    strip_input_normalization(model)
    replace_batchnorm(model)
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    size = dataset_info(ctx.dataset).image_size
    ones = torch.ones(1, 3, size, size, dtype=torch.float64, device=ctx.device)
    weights = [m.weight for _, m in weighted_layers(model)]
    if not weights:
        raise ValueError(f"{ctx.spec.name if ctx.spec else 'synflow'} needs at least one Conv2d or Linear layer; "
                         "the model has none")
    grads = torch.autograd.grad(model(ones).sum(), weights, allow_unused=True)
    return [(w.detach(), g.detach()) for w, g in zip(weights, grads) if g is not None]
