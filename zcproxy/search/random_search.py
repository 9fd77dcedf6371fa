"""Random search: evaluate uniformly drawn representatives until the budget is spent; keep the best."""
from __future__ import annotations

import numpy as np

from .objective import Objective
from .result import SearchResult


def _rng(seed: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return np.random.default_rng(int(seed))


def random_search(objective: Objective, *, seed: int = 0) -> SearchResult:
    """Sample distinct representatives of the objective's domain uniformly without replacement
    (Li & Talwalkar, UAI 2019 baseline); return the best evaluated one."""
    rng = _rng(seed)
    domain = objective.domain
    if domain.open:  # a space too large to list: draw until the budget is spent
        while not objective.exhausted:
            arch = domain.sample(rng, exclude=objective.evaluated)
            if arch is None:
                break
            objective(arch)
        return SearchResult.from_objective("random", objective, seed, objective.best().arch)
    for arch in rng.permutation(domain.representatives):
        if objective.exhausted:
            break
        objective(arch.item() if isinstance(arch, np.generic) else arch)
    return SearchResult.from_objective("random", objective, seed, objective.best().arch)
