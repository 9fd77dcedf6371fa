"""The set of architectures a search may visit, as NAS-Bench-201 isomorphism representatives.

Every search works on representatives (``NB201.representative``): isomorphic cells are one trained
network in the benchmark, so they are evaluated once. A :class:`Domain` is either the whole space
(6,466 representatives) or a subset, e.g. the architectures that have a stored proxy score.
"""
from __future__ import annotations

from functools import cache
from typing import Iterable

import numpy as np

from ..space import NB201, OPS

NUM_EDGES = 6


@cache
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(genotype op ids 15625x6, representative of each index, index of each base-5 genotype code)."""
    op_id = {op: k for k, op in enumerate(OPS)}
    genotypes = np.array([[op_id[o] for o in NB201.genotype(i)] for i in range(NB201.size())], dtype=np.int64)
    reps = np.array([NB201.representative(i) for i in range(NB201.size())], dtype=np.int64)
    codes = genotypes @ (len(OPS) ** np.arange(NUM_EDGES))
    index_of_code = np.empty(NB201.size(), dtype=np.int64)
    index_of_code[codes] = np.arange(NB201.size())
    for table in (genotypes, reps, index_of_code):
        table.setflags(write=False)
    return genotypes, reps, index_of_code


def genotype_ids(index: int) -> np.ndarray:
    """Op ids (positions in ``NB201.ops``) on the six edges of ``index``."""
    return _tables()[0][index]


def index_of_ids(ids: Iterable[int]) -> int:
    """NAS-Bench-201 index of six op ids."""
    code = sum(int(op) * len(OPS) ** e for e, op in enumerate(ids))
    return int(_tables()[2][code])


def representatives_of(indices: np.ndarray) -> np.ndarray:
    """Vectorised ``NB201.representative``."""
    return _tables()[1][indices]


class Domain:
    """Allowed representatives; archs outside it cannot be evaluated (e.g. no stored score)."""

    def __init__(self, archs: Iterable[int] | None = None):
        _, reps, _ = _tables()
        if archs is None:
            allowed = np.unique(reps)
        else:
            given = np.fromiter((NB201.resolve(int(a)) for a in archs), dtype=np.int64)
            allowed = np.unique(reps[given])
        if allowed.size == 0:
            raise ValueError("the search domain is empty: no architecture can be evaluated "
                             "(is the store empty for this proxy and these settings?)")
        self.representatives: np.ndarray = allowed
        self.representatives.setflags(write=False)
        mask = np.zeros(NB201.size(), dtype=bool)
        mask[allowed] = True
        self._rep_allowed = mask
        self.index_allowed: np.ndarray = mask[reps]  # index i is usable when its representative is allowed

    def __len__(self) -> int:
        return int(self.representatives.size)

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, (int, np.integer)) and 0 <= int(arch) < NB201.size() \
            and bool(self.index_allowed[int(arch)])

    @property
    def complete(self) -> bool:
        """True when every representative of the space is allowed."""
        return len(self) == len(NB201.unique())

    def sample(self, rng: np.random.Generator, exclude: set[int] | frozenset[int] = frozenset()) -> int | None:
        """A uniformly drawn allowed representative not in ``exclude`` (None when none is left)."""
        if len(exclude) < len(self) // 2:
            for _ in range(64):
                rep = int(self.representatives[rng.integers(len(self))])
                if rep not in exclude:
                    return rep
        left = np.setdiff1d(self.representatives, np.fromiter(exclude, dtype=np.int64, count=len(exclude)))
        return int(left[rng.integers(left.size)]) if left.size else None

    def mutate(self, arch: int, rng: np.random.Generator,
               exclude: set[int] | frozenset[int] = frozenset()) -> int | None:
        """Representative of a random one-edge mutation of ``arch`` that lies in the domain.

        Picks uniformly among the 6 x 4 neighbours (one edge, a different op) whose representative is
        allowed and not in ``exclude``; returns None when there is none.
        """
        ids = genotype_ids(arch)
        neighbours = []
        for edge in range(NUM_EDGES):
            for op in range(len(OPS)):
                if op != ids[edge]:
                    child = ids.copy()
                    child[edge] = op
                    neighbours.append(index_of_ids(child))
        reps = _tables()[1]
        allowed = [n for n in neighbours if self.index_allowed[n] and int(reps[n]) not in exclude]
        if not allowed:
            return None
        return int(reps[allowed[rng.integers(len(allowed))]])

    def subspace_mask(self, ops_per_edge: list[set[int]]) -> np.ndarray:
        """Bool mask over the 15,625 indices: genotype uses only allowed ops on each edge and is in the domain."""
        genotypes = _tables()[0]
        mask = self.index_allowed.copy()
        for edge, ops in enumerate(ops_per_edge):
            mask &= np.isin(genotypes[:, edge], sorted(ops))
        return mask
