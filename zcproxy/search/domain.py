"""The set of architectures a search may visit: isomorphism representatives of one search space.

Every search works on representatives (``space.representative``): isomorphic cells are one trained
network in a benchmark, so they are evaluated once. Architectures appear as labels
(:func:`zcproxy.space.label`: NB201 indices as ints, DARTS genotypes as strings). A :class:`Domain` is the
whole space (every representative of a finite space; an *open* domain for a space too large to list,
sampled with ``space.sample``) or a subset, e.g. the architectures that have a stored proxy score.
"""
from __future__ import annotations

import sys
from functools import cached_property
from typing import Any, Iterable

import numpy as np

from ..errors import SpaceError
from ..space import DEFAULT_SPACE, SearchSpace, get_space, label, label_order

_OPEN_DRAWS = 256


class Domain:
    """Allowed representatives of ``space``; archs outside it cannot be evaluated (e.g. no stored score)."""

    def __init__(self, archs: Iterable[Any] | None = None, space: str | SearchSpace = DEFAULT_SPACE):
        self.space = get_space(space)
        self.open = False
        if archs is None:
            reps = self.space.representatives()
            if reps is None:
                self.open = True
                allowed: list = []
            else:
                allowed = [label(k) for k in reps]
        else:
            allowed = sorted({self.rep(a) for a in archs}, key=label_order)
        if not allowed and not self.open:
            raise ValueError("the search domain is empty: no architecture can be evaluated "
                             "(is the store empty for this proxy and these settings?)")
        self.representatives: np.ndarray = np.asarray(allowed, dtype=np.int64 if _all_int(allowed) else object)
        self.representatives.setflags(write=False)
        self._allowed = frozenset(allowed)

    def rep(self, arch: Any) -> int | str:
        """Label of the representative of ``arch`` (any form the space resolves)."""
        key = self.space.key(arch.item() if isinstance(arch, np.generic) else arch)
        return label(self.space.representative(key))

    def __len__(self) -> int:
        return sys.maxsize if self.open else int(self.representatives.size)

    def __contains__(self, arch: object) -> bool:
        try:
            rep = self.rep(arch)
        except (ValueError, TypeError, KeyError):
            return False
        return self.open or rep in self._allowed

    @property
    def complete(self) -> bool:
        """True when every representative of the space is allowed."""
        if self.open:
            return True
        reps = self.space.representatives()
        return reps is not None and len(self) == len(reps)

    def sample(self, rng: np.random.Generator, exclude: set | frozenset = frozenset()) -> Any | None:
        """A uniformly drawn allowed representative not in ``exclude`` (None when none is left)."""
        if self.open:
            for _ in range(_OPEN_DRAWS):
                (key,) = self.space.sample(1, int(rng.integers(2**63 - 1)))
                rep = label(key)
                if rep not in exclude:
                    return rep
            return None
        if len(exclude) < len(self) // 2:
            for _ in range(64):
                rep = _item(self.representatives[rng.integers(len(self))])
                if rep not in exclude:
                    return rep
        left = [r for r in self.representatives.tolist() if r not in exclude]
        return left[rng.integers(len(left))] if left else None

    def mutate(self, arch: Any, rng: np.random.Generator, exclude: set | frozenset = frozenset()) -> Any | None:
        """Representative of a random one-step mutation of ``arch`` that lies in the domain.

        Picks uniformly among the space's mutations (``space.neighbours``) whose representative is allowed
        and not in ``exclude``; returns None when there is none.
        """
        key = self.space.key(self.rep(arch))
        allowed = [n for n in (label(k) for k in self.space.neighbours(key))
                   if (self.open or n in self._allowed) and n not in exclude]
        if not allowed:
            return None
        return allowed[rng.integers(len(allowed))]

    # -- per-edge op choices (pruning) -----------------------------------------------------------------

    @cached_property
    def _op_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(op ids per arch in ``space.archs()`` order, allowed mask over that order)."""
        table = getattr(self.space, "op_table", None)
        if table is None or self.open:
            raise SpaceError(f"pruning needs a finite search space with one op choice per edge (op_table()); "
                             f"space {self.space.name!r} has none - use --strategy rea or random")
        ops = table()
        reps = np.asarray([label(k) for k in self.space.representatives_of_all()]) \
            if hasattr(self.space, "representatives_of_all") else \
            np.asarray([label(self.space.representative(k)) for k in self.space.archs()])
        mask = np.fromiter((r in self._allowed for r in reps.tolist()), dtype=bool, count=reps.size)
        return ops, mask

    @property
    def op_choices(self) -> tuple[int, int]:
        """(edges, ops per edge) of the space's per-edge op table."""
        ops = self._op_table[0]
        return int(ops.shape[1]), int(ops.max()) + 1

    def op_ids(self, position: int) -> np.ndarray:
        """Op ids on every edge of the architecture at ``position`` of ``space.archs()``."""
        return self._op_table[0][position]

    def position_of_ops(self, ids: Iterable[int]) -> int:
        """Position in ``space.archs()`` of the architecture with these op ids."""
        return int(self.space.position_of_ops(tuple(int(i) for i in ids)))

    def rep_at(self, position: int) -> Any:
        """Label of the representative of the architecture at ``position`` of ``space.archs()``."""
        return self.rep(list_key(self.space, position))

    def subspace_mask(self, ops_per_edge: list[set[int]]) -> np.ndarray:
        """Bool mask over ``space.archs()``: uses only allowed ops on each edge and is in the domain."""
        ops, mask = self._op_table
        mask = mask.copy()
        for edge, allowed in enumerate(ops_per_edge):
            mask &= np.isin(ops[:, edge], sorted(allowed))
        return mask


def list_key(space: SearchSpace, position: int) -> str:
    """Key at ``position`` of a finite space's ``archs()`` order."""
    at = getattr(space, "key_at", None)
    return at(position) if at is not None else list(space.archs())[position]


def _all_int(values: list) -> bool:
    return bool(values) and all(isinstance(v, int) for v in values)


def _item(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
