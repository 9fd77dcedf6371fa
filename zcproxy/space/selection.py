"""The one architecture-selection grammar (``--archs``) of every command, the runner and every study.

A selection is a comma-separated list of items, evaluated in order and deduplicated (first occurrence
wins); commas inside brackets, parentheses or quotes do not split, so a DARTS genotype is one item:

- ``all``: every architecture of a finite space, in the space's order.
- ``unique``: every isomorphism representative of a finite space.
- ``sample:N``: ``space.sample(N, seed)`` (N distinct representatives, seeded).
- ``quantiles:K``: among the representatives with a ground-truth value, the one closest to each of the
  K evenly spaced quantiles (k + 0.5) / K of that value (needs ``truth``; distinct, ascending value).
- ``truth``: every architecture with a ground-truth value, in the table's order (needs ``truth``).
- a path to an existing file: one architecture per line (``#`` starts a comment); a line that is not one
  architecture as a whole is split on whitespace and commas (several NB201 indices on a line).
- anything else: one architecture in any form the space resolves (NB201 index or arch string, DARTS
  genotype, ...).

>>> from zcproxy.space import get_space
>>> select_archs("13714, sample:2", get_space("nb201"), seed=0)
['13714', '6797', '8959']
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SpaceError
from ._protocol import SearchSpace, label

if TYPE_CHECKING:
    import pandas as pd

FORMS = ("all, unique, sample:N, quantiles:K, truth, a file (one architecture per line), or a comma list of "
         "architectures")
_OPEN, _CLOSE = "([{", ")]}"


def select_archs(spec: str, space: SearchSpace, *, seed: int = 0, truth: "pd.Series | None" = None) -> list[str]:
    """Canonical keys named by ``spec`` (see the module docstring). ``truth`` (values by architecture
    label) is needed only for ``quantiles:K``. Errors are :class:`~zcproxy.errors.SpaceError` naming
    the item and the accepted forms."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpaceError(f"--archs is empty; pass {FORMS}")
    keys: list[str] = []
    for item in split_items(spec):
        keys.extend(_item(item, space, seed, truth))
    if not keys:
        raise SpaceError(f"--archs {spec!r} selects no architecture; pass {FORMS}")
    return list(dict.fromkeys(keys))


def split_items(spec: str) -> list[str]:
    """Split on commas outside brackets, parentheses and quotes; strip blanks; drop empty items."""
    items, depth, quote, current = [], 0, "", []
    for ch in spec:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            items.append("".join(current))
            current = []
            continue
        current.append(ch)
    items.append("".join(current))
    return [i.strip() for i in items if i.strip()]


def _item(item: str, space: SearchSpace, seed: int, truth: "pd.Series | None") -> list[str]:
    keyword, _, arg = item.partition(":")
    if item == "truth":
        if truth is None:
            raise SpaceError("--archs truth selects the architectures of a ground-truth table; pass one (--truth)")
        return [space.key(a) for a in truth.dropna().index]
    if item in ("all", "unique"):
        listed = list(space.archs()) if item == "all" else space.representatives()
        if listed is None:
            raise SpaceError(f"--archs {item}: search space {space.name!r} cannot be enumerated; use sample:N or a file")
        return list(listed)
    if keyword in ("sample", "quantiles") and arg.strip().isdigit():
        count = int(arg)
        if keyword == "sample":
            try:
                return list(space.sample(count, seed))
            except ValueError as exc:
                raise SpaceError(f"--archs {item}: {exc}") from None
        if count < 1:
            raise SpaceError(f"--archs {item}: K must be at least 1")
        return quantile_archs(truth, count, space, item)
    if keyword in ("sample", "quantiles"):
        raise SpaceError(f"--archs {item!r}: expected {keyword}:N with N a positive integer")
    if _is_file(item):
        return _file(Path(item).expanduser(), space)
    try:
        return [space.key(item)]
    except (ValueError, TypeError, KeyError) as exc:
        hint = (f"file {item} does not exist" if os.sep in item or item.endswith((".txt", ".csv"))
                else f"{item!r} is not an architecture of search space {space.name!r} ({exc})")
        raise SpaceError(f"--archs: {hint}; pass {FORMS}") from None


def _file(path: Path, space: SearchSpace) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"--archs file {path} cannot be read: {exc}") from None
    keys: list[str] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            keys.append(space.key(line))
            continue
        except (ValueError, TypeError, KeyError) as whole:
            tokens = [t for t in re.split(r"[\s,]+", line) if t]
            if len(tokens) < 2:
                raise SpaceError(f"--archs file {path} line {number}: {line!r} is not an architecture of search "
                                 f"space {space.name!r} ({whole})") from None
        for token in tokens:
            try:
                keys.append(space.key(token))
            except (ValueError, TypeError, KeyError) as exc:
                raise SpaceError(f"--archs file {path} line {number}: {token!r} is not an architecture of search "
                                 f"space {space.name!r} ({exc})") from None
    if not keys:
        raise SpaceError(f"--archs file {path} lists no architectures; write one architecture per line")
    return keys


def quantile_archs(truth: "pd.Series | None", count: int, space: SearchSpace, item: str = "quantiles") -> list[str]:
    """Keys of the representatives closest to the K evenly spaced quantiles of ``truth``."""
    if truth is None:
        raise SpaceError(f"--archs {item}: quantiles need a ground-truth metric (pass a truth table)")
    reps = space.representatives()
    if reps is None:
        candidates = [k for k in (space.key(a) for a in truth.index) if space.representative(k) == k]
    else:
        candidates = list(reps)
    values = truth.reindex([label(k) for k in candidates]).dropna()
    if count > len(values):
        raise SpaceError(f"--archs {item} asks for more archs than the {len(values)} representatives with a value")
    order = values.sort_values(kind="mergesort")
    # Positions (k + 0.5) L / K - 0.5 are at least 1 apart when L >= K, so the picks are distinct.
    positions = [int(round((k + 0.5) / count * len(order) - 0.5)) for k in range(count)]
    return [space.key(order.index[p]) for p in positions]


def _is_file(item: str) -> bool:
    try:
        return Path(item).expanduser().is_file()
    except (OSError, ValueError, RuntimeError):  # too long, a NUL byte, or an unknown ~user: not a file
        return False
