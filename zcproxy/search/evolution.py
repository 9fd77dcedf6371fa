"""Regularized evolution (REA; Real et al., AAAI 2019) over NAS-Bench-201 cells."""
from __future__ import annotations

from collections import deque

from .objective import Objective
from .random_search import _rng
from .result import SearchResult


def regularized_evolution(objective: Objective, *, seed: int = 0, population: int = 20,
                          sample_size: int = 5) -> SearchResult:
    """REA: start from ``population`` random representatives; each cycle draws ``sample_size`` members
    uniformly (with replacement), mutates the best one (one edge gets a different op; the child is
    replaced by its representative), evaluates the child, appends it and removes the oldest member.

    Children are always new architectures: the mutation is drawn among the parent's neighbours that are
    in the search domain and not evaluated yet, and when there is none (an exhausted neighbourhood, or a
    sparse domain such as a partly scored store) the child is a random unevaluated domain architecture.
    So every cycle costs exactly one proxy evaluation, as in REA on a benchmark table. Returns the best
    evaluated architecture.
    """
    for name, value in (("population", population), ("sample_size", sample_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if sample_size > population:
        raise ValueError(f"sample_size ({sample_size}) must not exceed population ({population})")
    rng = _rng(seed)
    domain = objective.domain
    members: deque[int] = deque()
    while len(members) < population and not objective.exhausted:
        arch = domain.sample(rng, exclude=objective.evaluated)
        objective(arch)
        members.append(arch)
    while members and not objective.exhausted:
        picks = [members[int(i)] for i in rng.integers(len(members), size=sample_size)]
        parent = max(picks, key=objective)  # all members are evaluated: no cost
        evaluated = objective.evaluated
        child = domain.mutate(parent, rng, exclude=evaluated)
        if child is None:
            child = domain.sample(rng, exclude=evaluated)
        objective(child)
        members.append(child)
        if len(members) > population:
            members.popleft()
    return SearchResult.from_objective("rea", objective, seed, objective.best().arch,
                                       population=population, sample_size=sample_size)
