"""NASWOT: log-determinant of the binary ReLU-code kernel."""
from __future__ import annotations

import math

import torch

from ._hooks import check_batch
from ._passes import feature_pass, nwot_kernel
from ._registry import ProxyContext, proxy


@proxy("nwot", needs=("data",), bn="train", dtype=torch.float32, higher_is_better=True, cost="forward",
       reference="Mellor et al., ICML 2021 (NASWOT, arXiv 2006.04647 v2); NAS-Bench-Suite-Zero nwot")
def nwot(ctx: ProxyContext) -> float:
    """``log |det K|`` with ``K = sum_r c_r c_r^T + (1 - c_r)(1 - c_r)^T``: c_r (N x D_r) is the binary code
    ``input > 0`` of every ``nn.ReLU`` module r, one row per image, so ``K_ij`` counts the units on which
    images i and j agree.

    One forward pass of a train-mode float32 copy (as the reference; the call's shared feature pass, also
    read by MeCo, :mod:`zcproxy.proxies._passes`); K is accumulated exactly in float64 (integer entries,
    one product per ReLU) and ``torch.linalg.slogdet`` taken in float64. ReLUs applied functionally are not seen. A singular K
    (two images with identical codes, e.g. a network whose features are constant) scores ``-inf`` and
    is flagged ``degenerate``.
    """
    x = check_batch(ctx.x, "nwot")
    features = feature_pass(ctx)
    if not features.relus:
        raise ValueError("nwot reads binary codes of nn.ReLU modules, and the model has none")
    kernel = nwot_kernel(features.codes, x.shape[0], x.device)
    sign, logabsdet = torch.linalg.slogdet(kernel)
    if float(sign) == 0.0 or not math.isfinite(float(logabsdet)):
        ctx.flag("degenerate")
        return -math.inf
    return float(logabsdet)
