"""The search-space protocol: everything the rest of zcproxy may know about a space.

A search space names architectures by a *canonical key* (a string) and turns a key into a network.
Stores, truth tables, selections, searches and studies only ever hold keys; every fact of one space
(op lists, edge counts, isomorphism, index orders) stays in that space's module under ``zcproxy/space/``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from torch import nn

DEFAULT_SPACE = "nb201"
"""The space of calls that name none, and of every store written before spaces existed."""


@runtime_checkable
class SearchSpace(Protocol):
    """What a search space provides. Implement it on any object (a module-level instance is typical).

    - ``name``: short identifier recorded in stores (``"nb201"``, ``"darts"``); letters, digits, ``_-.:``.
    - ``key(arch)``: canonical key of any user form (index, string, genotype); equal keys are the same
      architecture. Raises :class:`~zcproxy.errors.SpaceError` naming the input when it is not one.
    - ``build(key, num_classes, dataset=None)``: a freshly initialised ``nn.Module`` taking [0, 1]
      images N x 3 x H x W (it normalises them itself) and returning N x num_classes logits. Weight
      initialisation draws from torch's global RNG; the caller seeds it.
    - ``settings()``: macro settings that change every network of the space (channels, cells, ...),
      recorded in every result scored in it; ``{}`` when the space has none to record.
    - ``size()``: number of architectures, or None when the space is too large to enumerate.
    - ``archs()``: every key, in the space's own order (finite spaces only).
    - ``representative(key)``: key of the isomorphism class of ``key`` (``key`` itself where the space
      has no isomorphism); searches and studies evaluate representatives only.
    - ``representatives()``: every representative key in order, or None for an unenumerable space.
    - ``sample(n, seed)``: ``n`` distinct representatives drawn uniformly with ``np.random.default_rng(seed)``.
    - ``neighbours(key)``: representatives one mutation away (what evolutionary search steps along).
    - ``is_degenerate(key)``: True when the network's output cannot depend on its input.
    """

    name: str

    def key(self, arch: Any) -> str: ...

    def build(self, key: str, num_classes: int = 10, dataset: str | None = None) -> "nn.Module": ...

    def settings(self) -> dict[str, Any]: ...

    def size(self) -> int | None: ...

    def archs(self) -> Iterator[str]: ...

    def representative(self, key: str) -> str: ...

    def representatives(self) -> Sequence[str] | None: ...

    def sample(self, n: int, seed: int) -> list[str]: ...

    def neighbours(self, key: str) -> list[str]: ...

    def is_degenerate(self, key: str) -> bool: ...


def check_space(space: object, where: str = "space") -> SearchSpace:
    """``space`` itself when it implements :class:`SearchSpace`, else a SpaceError naming what it lacks."""
    from ..errors import SpaceError

    missing = [m for m in ("name", "key", "build", "settings", "size", "archs", "representative",
                           "representatives", "sample", "neighbours", "is_degenerate") if not hasattr(space, m)]
    if missing:
        raise SpaceError(f"{where} {space!r} is not a search space: it lacks {missing}; implement "
                         "zcproxy.space.SearchSpace (see the README section 'Adding a search space')")
    name = getattr(space, "name")
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-.:" for c in name):
        raise SpaceError(f"{where} has name {name!r}; a space name must be a non-empty string of letters, "
                         "digits and _-.:")
    return space  # type: ignore[return-value]


def uniform_sample(keys: Sequence[str], n: int, seed: int, space_name: str) -> list[str]:
    """``n`` distinct keys of ``keys`` drawn with ``np.random.default_rng(seed)``, in ascending order of
    position in ``keys`` (the rule every finite space's ``sample`` follows)."""
    from ..errors import SpaceError

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= int(n) <= len(keys):
        raise SpaceError(f"sample size must be an int in 1..{len(keys)} for space {space_name!r}, got {n!r}")
    picked = np.random.default_rng(seed).choice(len(keys), size=int(n), replace=False)
    return [keys[int(i)] for i in sorted(picked)]


def label(key: str) -> int | str:
    """How a key appears in tables: an int when it is a decimal number (NB201 indices, integer ids of a
    user space), else the key itself. Stores hold keys; frames and CSVs show labels."""
    return int(key) if isinstance(key, str) and key.isascii() and key.isdigit() else key


def label_order(key: object) -> tuple:
    """Sort key of architectures in any form (key or label): numeric labels by value first, then the rest
    as text. Every ordered list of archs (shards, search domains) uses it, so all agree."""
    value = label(key) if isinstance(key, str) else key
    return (0, value, "") if isinstance(value, int) else (1, 0, str(value))


def labels(keys: Sequence[str]) -> list[int | str]:
    """:func:`label` of every key; all ints or all strings (a mix keeps every key a string)."""
    out = [label(k) for k in keys]
    if out and not all(isinstance(v, int) for v in out):
        return [str(k) for k in keys]
    return out
