"""Search spaces: the :class:`SearchSpace` protocol, the built-in spaces and :func:`get_space`.

Every fact of one space (ops, edges, index order, isomorphism, the network builder) lives in that
space's module; the rest of zcproxy only calls the protocol. Built in: ``nb201`` (this module's
:data:`NB201`) and ``darts`` (:mod:`zcproxy.space.darts`). A user space is any object implementing the
protocol, passed as the object itself or as ``"package.module:OBJECT"``.

>>> from zcproxy.space import NB201, get_space
>>> NB201.size(), len(NB201.unique()), get_space("nb201") is NB201
(15625, 6466, True)
"""
from __future__ import annotations

from functools import cache

import torch

from .._datasets import dataset_for_classes, dataset_info
from .graph import CellGraph, graph_features
from ._genotype import EDGES, OPS, SIZE, canonical_form, check_index, parse, to_string
from . import _genotype
from ._model import TinyNetwork
from ._protocol import DEFAULT_SPACE, SearchSpace, check_space, label, label_order, labels, uniform_sample  # noqa: F401
from ..errors import SpaceError

__all__ = ["NB201", "OPS", "EDGES", "TinyNetwork", "SearchSpace", "get_space", "BUILTIN_SPACES", "DEFAULT_SPACE",
           "label", "labels", "CellGraph", "graph_features"]

BUILTIN_SPACES = ("nb201", "darts")


class _NB201:
    """Read-only view of the NAS-Bench-201 cell space (all tables are derived, cached and immutable).

    As a :class:`SearchSpace` its canonical key is the decimal NAS-Bench-201 index (``"13714"``), so
    stores and tables keep the benchmark's integer ids. Its macro skeleton (C=16, N=5) is fixed and
    ``settings()`` records nothing, which keeps the settings of results stored before spaces existed.
    """

    name = "nb201"
    ops = OPS
    edges = EDGES

    # -- SearchSpace ---------------------------------------------------------------------------------

    def size(self) -> int:
        """15,625 cells (5 ops on 6 edges)."""
        return SIZE

    def key(self, arch: object) -> str:
        """Canonical key (decimal index) of an index, a decimal string, an arch string or a 6-op genotype."""
        try:
            if isinstance(arch, (tuple, list)):
                ops = tuple(arch)
                if len(ops) != len(EDGES) or not all(isinstance(o, str) for o in ops):
                    raise ValueError(f"a genotype is {len(EDGES)} op names, got {arch!r}")
                return str(_genotype._index_of()[parse(to_string(ops))])
            return str(self.resolve(arch))
        except SpaceError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise SpaceError(f"{arch!r} is not a NAS-Bench-201 architecture: {exc}") from None

    def settings(self) -> dict:
        """Nothing: the skeleton is fixed (see the class docstring)."""
        return {}

    def archs(self):
        """Every key in index order."""
        return (str(i) for i in range(SIZE))

    def representatives(self) -> list[str]:
        """Keys of the 6,466 isomorphism representatives, ascending index."""
        return [str(i) for i in _unique()]

    def sample(self, n: int, seed: int) -> list[str]:
        """``n`` distinct representatives, uniformly with ``np.random.default_rng(seed)``, ascending."""
        return uniform_sample(self.representatives(), n, seed, self.name)

    def neighbours(self, key: str) -> list[str]:
        """Representatives of the 24 one-edge mutations (6 edges x 4 other ops), one per mutation, in
        edge-then-op order (a representative reached by several mutations repeats)."""
        genotype = _genotype._order()[self.resolve(key)]
        reps = _genotype._representatives()
        index_of = _genotype._index_of()
        out = []
        for edge in range(len(EDGES)):
            for op in OPS:
                if op != genotype[edge]:
                    child = genotype[:edge] + (op,) + genotype[edge + 1:]
                    out.append(str(reps[index_of[child]]))
        return out

    def is_degenerate(self, key: str) -> bool:
        """True when the network output is constant (see :meth:`is_zero_output`)."""
        return self.is_zero_output(key)

    def op_table(self):
        """Op ids (positions in ``OPS``) on the six edges of every index, a read-only 15,625 x 6 array."""
        return _op_table()

    def position_of_ops(self, ids: tuple[int, ...]) -> int:
        """Index of the cell with these op ids (positions in ``OPS``) on the six edges."""
        return _genotype._index_of()[tuple(OPS[i] for i in ids)]

    def key_at(self, position: int) -> str:
        """Key of the architecture at ``position`` of :meth:`archs` (the index itself)."""
        return str(check_index(position))

    def representatives_of_all(self) -> list[str]:
        """The representative key of every index, in index order."""
        return [str(r) for r in _genotype._representatives()]

    def describe(self, key: str) -> str:
        """The arch string of a key (what tables show beside the index)."""
        return self.arch(self.resolve(key))

    def graph(self, key: str) -> dict[str, CellGraph]:
        """The cell as a DAG (for :func:`~zcproxy.space.graph.graph_features`): nodes 0..3, input 0, output 3,
        the six edges with their ops; the convolutions are the parametric ops."""
        ops = self.genotype(key)
        return {"cell": CellGraph(nodes=4, edges=tuple((source, target, op) for (target, source), op in zip(EDGES, ops)),
                                  inputs=(0,), outputs=(3,), ops=OPS, none="none",
                                  parametric=frozenset({"nor_conv_1x1", "nor_conv_3x3"}))}

    # -- NAS-Bench-201 specifics -----------------------------------------------------------------------

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
        """Index of an index, a decimal index string or an arch string (validated)."""
        if isinstance(arch, str):
            if arch.strip().isdigit():
                return check_index(int(arch))
            return self.index(arch)
        return check_index(arch)

    def representative(self, i: int | str):
        """Smallest index in the isomorphism class of ``i``: the key (decimal string) for a key, else an int."""
        rep = _genotype._representatives()[self.resolve(i)]
        return str(rep) if isinstance(i, str) and i.strip().isdigit() else rep

    def unique(self) -> list[int]:
        """The 6,466 isomorphism representatives, ascending."""
        return list(_unique())

    def canonical(self, arch: int | str) -> str:
        """Canonical cell expression; two archs are isomorphic iff these are equal."""
        return canonical_form(self.genotype(arch))

    def is_zero_output(self, arch: int | str) -> bool:
        """True when every path into the cell output passes a ``none`` edge (the network output is constant)."""
        return _zero_output(self.resolve(arch))

    def build(self, arch: int | str, num_classes: int = 10, dataset: str | None = None, *, C: int = 16,
              N: int = 5) -> torch.nn.Module:
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
def _op_table():
    import numpy as np

    op_id = {op: k for k, op in enumerate(OPS)}
    table = np.array([[op_id[o] for o in g] for g in _genotype._order()], dtype=np.int64)
    table.setflags(write=False)
    return table


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
"""NAS-Bench-201 cell genotypes: arch strings, the benchmark's index order and isomorphism classes."""


def get_space(space: "str | SearchSpace" = "nb201") -> SearchSpace:
    """A search space from its name (``nb201``, ``darts``), ``"package.module:OBJECT"``, or the object.

    Raises :class:`~zcproxy.errors.SpaceError` naming what was given and what is accepted.
    """
    if not isinstance(space, str):
        return check_space(space)
    text = space.strip()
    if text.lower() == "nb201":
        return NB201
    if text.lower() == "darts":
        from .darts import DARTS

        return DARTS
    module_name, sep, attr = text.partition(":")
    if not sep or not module_name or not attr:
        raise SpaceError(f"unknown search space {space!r}; use one of {', '.join(BUILTIN_SPACES)} or "
                         "'package.module:OBJECT' naming an object that implements zcproxy.space.SearchSpace")
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpaceError(f"search space {space!r}: cannot import module {module_name!r} ({exc}); check the "
                         "name and that its package is on PYTHONPATH") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise SpaceError(f"search space {space!r}: module {module_name!r} has no attribute {attr!r}") from None
    return check_space(obj, where=f"search space {space!r}")
