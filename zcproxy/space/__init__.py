"""The NAS-Bench-201 search space: arch strings, indices, isomorphism classes and the model builder.

>>> from zcproxy.space import NB201
>>> NB201.size, len(NB201.unique())
(15625, 6466)
"""
from __future__ import annotations

from functools import cache

import torch

from .._datasets import dataset_for_classes, dataset_info
from ._genotype import EDGES, OPS, SIZE, canonical_form, check_index, parse, to_string
from . import _genotype
from ._model import TinyNetwork

__all__ = ["NB201", "OPS", "EDGES", "TinyNetwork"]


class _NB201:
    """Read-only view of the NAS-Bench-201 cell space (all tables are derived, cached and immutable)."""

    ops = OPS
    edges = EDGES
    size = SIZE

    def arch(self, i: int) -> str:
        """Arch string of NAS-Bench-201 index ``i``."""
        return to_string(_genotype._order()[check_index(i)])

    def index(self, arch: str) -> int:
        """NAS-Bench-201 index of an arch string."""
        return _genotype._index_of()[parse(arch)]

    def genotype(self, arch: int | str) -> tuple[str, ...]:
        """The six edge ops of an index or arch string, in arch-string edge order."""
        return _genotype._order()[self.resolve(arch)]

    def resolve(self, arch: int | str) -> int:
        """Index of an index or arch string (validated)."""
        if isinstance(arch, str):
            return self.index(arch)
        return check_index(arch)

    def representative(self, i: int | str) -> int:
        """Smallest index in the isomorphism class of ``i``."""
        return _genotype._representatives()[self.resolve(i)]

    def unique(self) -> list[int]:
        """The 6,466 isomorphism representatives, ascending."""
        return list(_unique())

    def canonical(self, arch: int | str) -> str:
        """Canonical cell expression; two archs are isomorphic iff these are equal."""
        return canonical_form(self.genotype(arch))

    def is_zero_output(self, arch: int | str) -> bool:
        """True when every path into the cell output passes a ``none`` edge (the network output is constant)."""
        return _zero_output(self.resolve(arch))

    def build(self, arch: int | str, num_classes: int = 10, C: int = 16, N: int = 5,
              dataset: str | None = None) -> torch.nn.Module:
        """Build the NAS-Bench-201 ``TinyNetwork`` for an index or arch string.

        The first layer normalises [0, 1] pixels with the dataset's NAS-Bench-201 constants; ``dataset``
        defaults to the one with ``num_classes`` classes (CIFAR-10 otherwise).
        """
        index = self.resolve(arch)
        for name, value in (("num_classes", num_classes), ("C", C), ("N", N)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        info = dataset_info(dataset) if dataset is not None else dataset_for_classes(num_classes)
        genotype = _genotype._order()[index]
        return TinyNetwork(genotype, to_string(genotype), index, num_classes, C, N, info)

    def __repr__(self) -> str:
        return "NB201(size=15625, ops=" + ",".join(OPS) + ")"


@cache
def _unique() -> tuple[int, ...]:
    reps = _genotype._representatives()
    return tuple(i for i in range(SIZE) if reps[i] == i)


@cache
def _zero_output(index: int) -> bool:
    ops = _genotype._order()[index]
    alive = {0: True}
    k = 0
    for target in range(1, 4):
        live = False
        for source in range(target):
            if ops[k] != "none" and alive[source]:
                live = True
            k += 1
        alive[target] = live
    return not alive[3]


NB201 = _NB201()
