"""Proxy-guided architecture search on NAS-Bench-201: random search, regularized evolution and
TE-NAS-style pruning, driven by a proxy output, an ensemble, or (oracle) the benchmark's true accuracy;
and few-shot predictor-guided search, where the objective supplies labels and a predictor on free
features (zero-cost scores, graph features) picks which architectures to label.

>>> from zcproxy.search import Budget, Objective, oracle_source, run      # doctest: +SKIP
>>> from zcproxy.truth import load_nasrobbench201                         # doctest: +SKIP
>>> objective = Objective(oracle_source(load_nasrobbench201()), Budget(100))  # doctest: +SKIP
>>> run("rea", objective, seed=0).chosen                                  # doctest: +SKIP

All searches work on isomorphism representatives. The budget counts proxy evaluations (first request
of a representative; stored values count too, at 0 compute seconds) and/or compute seconds.
"""
from __future__ import annotations

from typing import Any, Callable

from .assess import assess
from .domain import Domain
from .evolution import regularized_evolution
from .objective import Budget, BudgetExhausted, Evaluation, Objective
from .pareto import non_dominated_sort, pareto_front
from .predictor_search import predictor_search
from .pruning import prune_search
from .random_search import random_search
from .result import SearchResult
from .sources import (LiveSource, TableSource, ensemble_source, oracle_source, read_scores, store_source,
                      stored_table)

STRATEGIES: dict[str, Callable[..., SearchResult]] = {
    "random": random_search,
    "rea": regularized_evolution,
    "prune": prune_search,
    "predictor": predictor_search,
}

__all__ = ["run", "STRATEGIES", "Budget", "BudgetExhausted", "Objective", "Evaluation", "Domain", "SearchResult",
           "random_search", "regularized_evolution", "prune_search", "predictor_search", "non_dominated_sort",
           "pareto_front", "assess",
           "TableSource", "LiveSource", "store_source", "stored_table", "read_scores", "ensemble_source",
           "oracle_source"]


def run(strategy: str, objective: Objective, *, seed: int = 0, **options: Any) -> SearchResult:
    """Run ``strategy`` (``random``, ``rea``, ``prune`` or ``predictor``) on ``objective`` with strategy
    ``options`` (``predictor`` needs ``features=``)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown search strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    return STRATEGIES[strategy](objective, seed=seed, **options)
