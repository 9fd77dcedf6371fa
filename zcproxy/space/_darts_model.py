"""The DARTS CIFAR network (``NetworkCIFAR`` of Liu et al., ICLR 2019, without auxiliary head or drop path).

Ops follow the DARTS evaluation network, where every BatchNorm is affine (``affine=False`` is only used by
the DARTS *search* supernet, which also appends a BN to the pools; the evaluation network does not):

- ``sep_conv_k``: twice (ReLU, k x k depthwise conv, 1 x 1 conv, BN); only the first depthwise conv strides.
- ``dil_conv_k``: ReLU, k x k depthwise conv with dilation 2, 1 x 1 conv, BN.
- ``max_pool_3x3`` / ``avg_pool_3x3`` (``count_include_pad=False``): no BN, no conv.
- ``skip_connect``: ``nn.Identity`` at stride 1, :class:`FactorizedReduce` at stride 2.
- ``none``: :class:`Zero`, kept in the graph (output zeros of the strided shape).

:class:`FactorizedReduce` splits its output channels as ``c // 2`` and ``c - c // 2`` and zero-pads the
shifted branch (the NAS-Bench-201 / SWAP variant), so odd channel counts and odd image sizes work; on even
sizes its output equals the DARTS original.
"""
from __future__ import annotations

import torch
from torch import nn

from .._datasets import DatasetInfo
from ._model import Normalize

Cell = tuple[tuple[str, int], ...]
"""Eight (op, input) pairs; pair k feeds intermediate node 2 + k // 2."""

IMAGE_CHANNELS = 3
STEM_MULTIPLIER = 3


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int = 1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=True),
        )


class DwPwConv(nn.Sequential):
    """ReLU, depthwise k x k conv (optionally strided and dilated), pointwise 1 x 1 conv, BN: ``dil_conv_k``
    is one of these with dilation 2, ``sep_conv_k`` two with dilation 1."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in,
                      bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=True),
        )


class SepConv(nn.Sequential):
    """Two stacked :class:`DwPwConv` with dilation 1; the first carries the stride and keeps c_in channels."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int):
        super().__init__(
            DwPwConv(c_in, c_in, kernel, stride, padding, 1),
            DwPwConv(c_in, c_out, kernel, 1, padding, 1),
        )


class FactorizedReduce(nn.Module):
    """ReLU, then two 1 x 1 stride-2 convs on the input and on the input shifted by one pixel, concatenated, BN."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


class Zero(nn.Module):
    """The ``none`` op: zeros of the (strided) input shape, computed from the input so it stays in the graph."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


def make_op(name: str, channels: int, stride: int) -> nn.Module:
    """The DARTS op ``name`` on ``channels`` channels (a ValueError for an unknown name)."""
    c = channels
    if name == "none":
        return Zero(stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "sep_conv_3x3":
        return SepConv(c, c, 3, stride, 1)
    if name == "sep_conv_5x5":
        return SepConv(c, c, 5, stride, 2)
    if name == "dil_conv_3x3":
        return DwPwConv(c, c, 3, stride, 2, 2)
    if name == "dil_conv_5x5":
        return DwPwConv(c, c, 5, stride, 4, 2)
    raise ValueError(f"unknown DARTS op {name!r}")


class DartsCell(nn.Module):
    """One DARTS cell: preprocess the two previous states to ``channels``, four intermediate nodes (each the
    sum of its two ops), output the concatenation of nodes 2..5 (``4 * channels`` channels). In a reduction
    cell the ops reading the cell inputs (0, 1) have stride 2."""

    def __init__(self, pairs: Cell, c_prev_prev: int, c_prev: int, channels: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, channels)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0)
        self.inputs = [index for _, index in pairs]
        self.ops = nn.ModuleList(
            make_op(op, channels, 2 if reduction and index < 2 else 1) for op, index in pairs
        )
        self.out_channels = 4 * channels

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(4):
            a, b = 2 * node, 2 * node + 1
            states.append(self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]]))
        return torch.cat(states[2:], dim=1)


def reduction_layers(layers: int) -> tuple[int, ...]:
    """Positions of the reduction cells: ``layers // 3`` and ``2 * layers // 3`` (one cell when they coincide)."""
    return tuple(sorted({layers // 3, 2 * layers // 3}))


class DartsNetwork(nn.Module):
    """Normalize, optional stem (3 x 3 conv to 3C + BN), ``layers`` cells (C doubles at each reduction cell),
    global average pool, linear classifier. Without the stem both inputs of the first cell are the
    normalised image (3 channels)."""

    def __init__(self, normal: Cell, reduce: Cell, arch: str, num_classes: int, C: int, layers: int,
                 stem: bool, dataset: DatasetInfo):
        super().__init__()
        self.arch = arch
        self.dataset = dataset.name
        self.normalize = Normalize(dataset.mean, dataset.std)
        if stem:
            c_stem = STEM_MULTIPLIER * C
            self.stem: nn.Module = nn.Sequential(
                nn.Conv2d(IMAGE_CHANNELS, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
            )
        else:
            c_stem = IMAGE_CHANNELS
            self.stem = nn.Identity()
        c_prev_prev, c_prev, channels = c_stem, c_stem, C
        reductions = reduction_layers(layers)
        cells = []
        reduction_prev = False
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                channels *= 2
            cell = DartsCell(reduce if reduction else normal, c_prev_prev, c_prev, channels, reduction,
                             reduction_prev)
            cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.out_channels
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(self.normalize(x))
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, dataset={self.dataset!r}"
