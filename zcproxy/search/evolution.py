"""Regularized evolution (REA; Real et al., AAAI 2019) over NAS-Bench-201 cells."""
from __future__ import annotations

from collections import deque

from .objective import Objective
from .random_search import _rng
from .result import SearchResult


def regularized_evolution(objective: Objective, *, seed: int = 0, population: int = 10,
                          sample_size: int = 3) -> SearchResult:
    """REA: start from ``population`` random representatives; each cycle draws ``sample_size`` members
    uniformly (with replacement), mutates the best one (one edge gets a different op; the child is
    replaced by its representative), evaluates the child, appends it and removes the oldest member.

    A child already evaluated joins the population at no cost; when the search domain is a subset,
    mutations are drawn among neighbours inside it (a random domain arch when none is). Returns the best
    evaluated architecture. Stops when the budget is spent or after ``50 * population`` consecutive
    cycles that produce no new architecture (neighbourhood exhausted).
    """
    for name, value in (("population", population), ("sample_size", sample_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if sample_size > population:
        raise ValueError(f"sample_size ({sample_size}) must not exceed population ({population})")
    rng = _rng(seed)
    domain = objective.domain
    members: deque[int] = deque()
    seen: set[int] = set()
    while len(members) < population and not objective.exhausted:
        arch = domain.sample(rng, exclude=seen)
        if arch is None:
            break
        seen.add(arch)
        objective(arch)
        members.append(arch)
    stale = 0
    while members and not objective.exhausted and stale < 50 * population:
        picks = [members[int(i)] for i in rng.integers(len(members), size=sample_size)]
        parent = max(picks, key=objective)  # all members are evaluated: no cost
        child = domain.mutate(parent, rng)
        if child is None:
            child = domain.sample(rng)
        stale = stale + 1 if objective.known(child) is not None else 0
        objective(child)
        members.append(child)
        if len(members) > population:
            members.popleft()
    return SearchResult.from_objective("rea", objective, seed, objective.best().arch,
                                       population=population, sample_size=sample_size)
