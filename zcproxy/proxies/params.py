"""Model size: the number of parameters, in millions."""
from __future__ import annotations

from ..space._cost import count_params
from ._registry import ProxyContext, proxy


@proxy("params", reference="parameter count; NAS-Bench-201 (Dong & Yang, ICLR 2020) convention, "
       "NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022)", cost="static", bn="eval",
       higher_is_better=True)
def params(ctx: ProxyContext) -> float:
    """Number of parameter elements (weights, biases, BatchNorm affine; no buffers) / 1e6.

    NAS-Bench-201 index 13714 on CIFAR-10 (C=16, N=5): 1.073466.
    """
    return count_params(ctx.model_copy()) / 1e6
