"""logsynflow: SynFlow with log-compressed gradients (Cavagnero et al., FreeREA, WACV 2023)."""
from __future__ import annotations

import torch

from ._registry import ProxyContext, proxy
from .synflow import synaptic_flow


@proxy("logsynflow", bn="eval", dtype=torch.float64, higher_is_better=True, cost="backward",
       reference="Cavagnero et al., WACV 2023 (FreeREA), NiccoloCavagnero/FreeREA metrics/synflow.py")
def logsynflow(ctx: ProxyContext) -> float:
    """``sum_l sum |theta_l * log(1 + dR/dtheta_l)|`` over Conv2d / Linear weights, ``R = sum f(1; |theta|)``.

    As the FreeREA reference (``compute_synflow_per_weight`` with ``remap='log'``): a float64 copy whose
    every parameter is replaced by its absolute value, BatchNorm layers bypassed (identity), one all-ones
    input of shape 1 x 3 x S x S (S = the dataset's image size; the reference takes the shape of its
    batch), and the gradient of the summed output with respect to each weight compressed by
    ``log(g + 1)`` before the product with the weight. The input-normalisation layer is stripped (the
    reference networks have none), exactly as our ``synflow``. Deviation: none beyond the shared
    SynFlow conventions (the reference's train mode only matters for the bypassed BatchNorm). A network
    whose output does not depend on its input scores 0 and is flagged ``degenerate``.
    """
    return synaptic_flow(ctx, torch.log1p)
