"""Model cost: multiply-adds of one forward pass, in millions (NAS-Bench-201 convention)."""
from __future__ import annotations

import torch
from torch import nn

from .._datasets import dataset_info
from ._hooks import forward_hooks
from ._registry import ProxyContext, proxy


def _layer_flops(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        positions = output.numel() // module.out_channels
        per_position = module.out_channels * (module.in_channels // module.groups) * kh * kw
        return positions * (per_position + (module.out_channels if module.bias is not None else 0))
    rows = output.numel() // module.out_features
    return rows * (module.in_features * module.out_features + (module.out_features if module.bias is not None else 0))


def conv_linear_flops(model: nn.Module, image_size: int) -> int:
    """Multiply-adds of every Conv2d / Linear call for one 3 x image_size x image_size input.

    Convolution: ``H_out W_out C_out (C_in / groups) k_h k_w`` (+ ``H_out W_out C_out`` for a bias);
    linear: ``in * out`` (+ ``out`` for a bias). Pooling, normalisation, activations and additions are
    free, as in NAS-Bench-201's ``compute_average_flops_cost`` (xautodl), which sums Conv2d and Linear only.
    ``model`` must be a private copy: it runs once in whatever mode it is in, without gradients.
    """
    total = [0]

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        total[0] += _layer_flops(module, output)

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    with forward_hooks(layers, count), torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size, device=device, dtype=dtype))
    return total[0]


@proxy("flops", reference="FLOPs (multiply-adds); NAS-Bench-201 (Dong & Yang, ICLR 2020) convention, "
       "NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022)", cost="static", bn="eval",
       higher_is_better=True)
def flops(ctx: ProxyContext) -> float:
    """Conv2d + Linear multiply-adds of one image of the dataset's size, / 1e6 (MFLOPs).

    NAS-Bench-201 index 13714 on CIFAR-10 (C=16, N=5): 153.27 (published: 153.27 MFLOPs).
    """
    return conv_linear_flops(ctx.model_copy(), dataset_info(ctx.dataset).image_size) / 1e6
