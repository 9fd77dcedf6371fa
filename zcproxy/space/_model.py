"""The NAS-Bench-201 network (xautodl ``TinyNetwork``) with the input normalisation as its first layer."""
from __future__ import annotations

import torch
from torch import nn

from .._datasets import DatasetInfo
from ._genotype import EDGES, NUM_NODES, Genotype


class Normalize(nn.Module):
    """(x - mean) / std per channel, so the network takes [0, 1] pixels (attacks work in that space)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        )


class Zero(nn.Module):
    """The ``none`` op: an all-zero output of the input's shape (kept in the graph like NAS-Bench-201)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown op {name!r}")


class Cell(nn.Module):
    """A 4-node DAG cell; node j = sum over i<j of op_(j,i)(node i); output = node 3."""

    def __init__(self, genotype: Genotype, channels: int):
        super().__init__()
        self.edges = [(t, s) for (t, s) in EDGES]
        self.ops = nn.ModuleList(make_op(op, channels) for op in genotype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in range(1, NUM_NODES):
            total = None
            for k, (t, s) in enumerate(self.edges):
                if t == target:
                    y = self.ops[k](nodes[s])
                    total = y if total is None else total + y
            nodes.append(total)
        return nodes[-1]


class ResNetBasicBlock(nn.Module):
    """Reduction block between stages: two ReLU-conv3x3-BN and an AvgPool + conv1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class TinyNetwork(nn.Module):
    """NAS-Bench-201 macro skeleton: stem, 3 stages of N cells (C, 2C, 4C) with reduction blocks, head."""

    def __init__(self, genotype: Genotype, arch: str, index: int | None, num_classes: int, C: int, N: int,
                 dataset: DatasetInfo):
        super().__init__()
        self.arch = arch
        self.index = index
        self.genotype = genotype
        self.dataset = dataset.name
        self.normalize = Normalize(dataset.mean, dataset.std)
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        cells: list[nn.Module] = []
        c_prev = C
        for stage, channels in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                cells.append(ResNetBasicBlock(c_prev, channels, 2))
            for _ in range(N):
                cells.append(Cell(genotype, channels))
            c_prev = channels
        self.cells = nn.Sequential(*cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.cells(self.stem(self.normalize(x)))
        h = self.global_pooling(self.lastact(h)).flatten(1)
        return self.classifier(h)

    def thin_copy(self, width: int) -> "TinyNetwork":
        """The same cell in a width-``width`` network with one cell per stage, freshly initialised from torch's
        global RNG (what TE-NAS counts linear regions on)."""
        from .._datasets import dataset_info

        return TinyNetwork(self.genotype, self.arch, self.index, self.classifier.out_features, int(width), 1,
                           dataset_info(self.dataset))

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, index={self.index}, dataset={self.dataset!r}"
