"""Model cost: multiply-adds of one forward pass, in millions (NAS-Bench-201 convention)."""
from __future__ import annotations

from .._datasets import dataset_info
from ..space._cost import count_flops
from ._registry import ProxyContext, proxy


@proxy("flops", reference="FLOPs (multiply-adds); NAS-Bench-201 (Dong & Yang, ICLR 2020) convention, "
       "NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022)", cost="static", bn="eval",
       higher_is_better=True)
def flops(ctx: ProxyContext) -> float:
    """Conv2d + Linear multiply-adds for one image of the dataset's size, / 1e6 (MFLOPs).

    Counted by :func:`zcproxy.space._cost.count_flops` (pooling, normalisation and activations free, as
    NAS-Bench-201's xautodl counter). NAS-Bench-201 index 13714 on CIFAR-10 (C=16, N=5): 153.27.
    """
    size = dataset_info(ctx.dataset).image_size
    return count_flops(ctx.model_copy(), (1, 3, size, size)) / 1e6
