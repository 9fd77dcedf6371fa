"""Seeded weight re-initialisations used by SWAP and VKDNW, and the constant-output check.

Each initialiser edits a private model copy in place and draws only from the given generator, so a
proxy's value depends on (architecture, seed) and never on the global RNG or the caller's weights.
"""
from __future__ import annotations

import math

import torch
from torch import nn

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)


def _reset_norms(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, _NORMS) and m.affine:
            m.weight.fill_(1.0)
            m.bias.zero_()


@torch.no_grad()
def gaussian_init(model: nn.Module, generator: torch.Generator) -> None:
    """Conv2d / Linear weights ~ N(0, 1), their biases 0; BatchNorm / GroupNorm affine weight 1, bias 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.copy_(torch.randn(m.weight.shape, generator=generator, dtype=torch.float64))
            if m.bias is not None:
                m.bias.zero_()
    _reset_norms(model)


@torch.no_grad()
def kaiming_normal_fan_in_init(model: nn.Module, generator: torch.Generator) -> None:
    """``nn.init.kaiming_normal_(w, mode='fan_in', nonlinearity='relu')`` on Conv2d / Linear weights
    (std = sqrt(2 / fan_in)), their biases 0; BatchNorm / GroupNorm affine weight 1, bias 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()  # in_channels / groups x kernel area, as torch computes it
            std = math.sqrt(2.0) / math.sqrt(fan_in)
            m.weight.copy_(torch.randn(m.weight.shape, generator=generator, dtype=torch.float64) * std)
            if m.bias is not None:
                m.bias.zero_()
    _reset_norms(model)


def rows_identical(output: torch.Tensor) -> bool:
    """True when every sample's output equals the first one (the network ignores its input)."""
    flat = output.detach().reshape(output.shape[0], -1)
    return flat.shape[0] > 1 and bool((flat == flat[:1]).all())
