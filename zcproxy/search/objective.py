"""The search objective: a memoised ``arch -> score`` callable that counts what the search spent.

A *source* (see :mod:`zcproxy.search.sources`) produces a raw value and the compute seconds it cost;
:class:`Objective` maps every architecture to its isomorphism representative, orients the value so
that higher is better, evaluates each representative at most once per search, and enforces a
:class:`Budget` in proxy evaluations and/or compute seconds.

Accounting: a *proxy evaluation* is the first request of a representative in a search, whatever the
source (a stored value still counts as one evaluation, at 0 compute seconds); repeated requests are
free. Degenerate values (zero-output cells, non-finite proxies) score ``-inf``: never preferred.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from ..errors import ZcproxyError
from .domain import Domain


class BudgetExhausted(ZcproxyError):
    """A new evaluation was requested after the search budget was spent."""


@dataclass(frozen=True)
class Budget:
    """Stop after ``evaluations`` proxy evaluations and/or ``seconds`` compute seconds (checked before each)."""

    evaluations: int | None = 100
    seconds: float | None = None

    def __post_init__(self) -> None:
        e, s = self.evaluations, self.seconds
        if e is not None and (isinstance(e, bool) or not isinstance(e, int) or e < 1):
            raise ValueError(f"budget evaluations must be a positive int or None, got {e!r}")
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0
                              or not math.isfinite(s)):
            raise ValueError(f"budget seconds must be a positive finite number or None, got {s!r}")
        if e is None and s is None:
            raise ValueError("a budget needs evaluations, seconds or both; got neither (the search would not stop)")


class Source(Protocol):
    """Where values come from: ``lookup(rep) -> (raw value, compute seconds, degenerate)``."""

    name: str
    domain: Domain
    higher_is_better: bool

    def lookup(self, rep) -> tuple[float, float, bool]: ...


@dataclass(frozen=True)
class Evaluation:
    """One proxy evaluation: representative, raw value, oriented score (higher is better), its cost."""

    arch: int | str
    value: float
    score: float
    seconds: float
    degenerate: bool


class Objective:
    """Memoised, budgeted, oriented view of a :class:`Source` for one search run."""

    def __init__(self, source: Source, budget: Budget | None = None):
        self.source = source
        self.budget = budget if budget is not None else Budget()
        self.history: list[Evaluation] = []
        self._known: dict[int, Evaluation] = {}
        self.compute_seconds = 0.0

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def domain(self) -> Domain:
        return self.source.domain

    @property
    def evaluations(self) -> int:
        return len(self.history)

    @property
    def exhausted(self) -> bool:
        """True when no further new evaluation is allowed (budget spent or every domain arch evaluated)."""
        b = self.budget
        return ((b.evaluations is not None and self.evaluations >= b.evaluations)
                or (b.seconds is not None and self.compute_seconds >= b.seconds)
                or self.evaluations >= len(self.domain))

    @property
    def evaluated(self) -> frozenset[int]:
        """Representatives evaluated so far."""
        return frozenset(self._known)

    def known(self, arch: int) -> Evaluation | None:
        """The evaluation of ``arch``'s representative if already made in this run (free)."""
        return self._known.get(self.domain.rep(arch))

    def __call__(self, arch: int) -> float:
        """Oriented score of ``arch`` (its representative); evaluates it when new, within the budget."""
        rep = self.domain.rep(arch)
        seen = self._known.get(rep)
        if seen is not None:
            return seen.score
        if rep not in self.domain:
            raise ValueError(f"architecture {arch} (representative {rep}) is outside the search domain of "
                             f"{self.name!r} ({len(self.domain)} architectures, e.g. those with a stored score)")
        if self.exhausted:
            raise BudgetExhausted(f"search budget spent ({self.evaluations} evaluations, "
                                  f"{self.compute_seconds:.2f} s); cannot evaluate architecture {arch}")
        value, seconds, degenerate = self.source.lookup(rep)
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"objective {self.name!r} returned NaN for architecture {rep}; "
                             "fix the source (a stored NaN or a failing proxy)")
        degenerate = bool(degenerate) or not math.isfinite(value)
        score = -math.inf if degenerate else (value if self.source.higher_is_better else -value)
        evaluation = Evaluation(rep, value, score, float(seconds), degenerate)
        self.history.append(evaluation)
        self._known[rep] = evaluation
        self.compute_seconds += float(seconds)
        return score

    def best(self) -> Evaluation:
        """The highest-scoring evaluation so far (earliest on ties)."""
        if not self.history:
            raise ValueError(f"objective {self.name!r} has no evaluations yet")
        history = self.history
        return history[max(range(len(history)), key=lambda i: (history[i].score, -i))]
