"""Model cost: parameter count and FLOPs (multiply-adds) in NAS-Bench-201's convention.

FLOPs are the multiply-adds of convolutions and linear layers per input: a convolution costs
``H_out * W_out * C_out * (C_in / groups) * k_h * k_w`` (+ ``H_out * W_out * C_out`` for a bias) and a
linear layer ``in * out`` (+ ``out`` for a bias); pooling, normalisation, activations and additions are
free. This reproduces NAS-Bench-201's published 153.27 M for index 13714 on CIFAR-10 (we get 153.273 M;
also counting the reduction blocks' average pooling would give 153.298 M).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of trainable-or-not parameter elements (buffers such as BN running stats excluded)."""
    return sum(p.numel() for p in model.parameters())


def _module_flops(module: nn.Module, output: torch.Tensor) -> int:
    batch = output.shape[0]
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        positions = output.shape[2] * output.shape[3]
        flops = positions * module.out_channels * (module.in_channels // module.groups) * kh * kw
        if module.bias is not None:
            flops += positions * module.out_channels
        return flops * batch
    if isinstance(module, nn.Linear):
        flops = module.in_features * module.out_features + (module.out_features if module.bias is not None else 0)
        return flops * (output.numel() // module.out_features)
    return 0


def count_flops(model: nn.Module, input_size: Sequence[int] = (1, 3, 32, 32)) -> int:
    """FLOPs of one forward pass on a zero input of ``input_size``, divided by the batch size.

    Forward hooks on every conv and linear layer add up their cost; the hooks are removed and
    the train/eval mode of every module restored afterwards, and no gradients are recorded.
    """
    size = tuple(int(s) for s in input_size)
    if len(size) != 4 or min(size) < 1:
        raise ValueError(f"input_size must be (batch, channels, height, width) with positive sizes, got {input_size}")
    total = [0]

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        total[0] += _module_flops(module, output)

    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model.eval()
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        dtype = parameter.dtype if parameter is not None else torch.float32
        with torch.no_grad():
            model(torch.zeros(size, device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.train(training)
    return total[0] // size[0]
