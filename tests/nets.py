"""Tiny modules shared by the proxy tests."""
from __future__ import annotations

import torch
from torch import nn


class Mul(nn.Module):
    """f(x) = factor * x."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor
