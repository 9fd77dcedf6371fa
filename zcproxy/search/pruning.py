"""TE-NAS-style pruning (Chen, Gong & Wang, ICLR 2021) adapted to proxies of single architectures.

TE-NAS starts from the supernet with all five ops on every edge and, each round, removes on every edge
the op whose removal changes the supernet's score the least, until one op per edge is left. Our proxies
score single NB201 networks, not supernets, so a sub-supernet (a set of allowed ops per edge) is judged
by the architectures sampled from it:

* each round samples new representatives uniformly from the current sub-supernet (``samples_per_round``;
  by default the evaluation budget minus one, split evenly over the 4 rounds);
* every architecture evaluated so far that lies in the sub-supernet is ranked by the objective;
* on every edge, the op whose sampled architectures have the lowest mean rank is removed (removing it
  costs the supernet least: the archs left without it score highest). Ops with no sampled arch count
  as average; ties are broken at random (seeded); a removal that would leave no evaluable architecture
  in the domain is skipped in favour of the next op.

After 4 rounds one op per edge remains; that architecture is evaluated (if budget remains) and returned.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from .objective import Objective
from .random_search import _rng
from .result import SearchResult


def prune_search(objective: Objective, *, seed: int = 0, samples_per_round: int | None = None) -> SearchResult:
    """Prune the all-ops supernet down to one architecture (see module docstring); returns the final arch.

    Needs a finite space with one op choice per edge (``op_table``, e.g. NB201); positions below index
    the space's ``archs()`` order.
    """
    domain = objective.domain
    num_edges, num_ops = domain.op_choices
    rounds = num_ops - 1
    limit = objective.budget.evaluations
    if samples_per_round is None and limit is not None:
        spare = max(0, limit - 1)  # one evaluation is kept for the final architecture
        quotas = [spare // rounds + (1 if r < spare % rounds else 0) for r in range(rounds)]
    elif samples_per_round is None:
        quotas = [25] * rounds
    elif isinstance(samples_per_round, bool) or not isinstance(samples_per_round, int) or samples_per_round < 1:
        raise ValueError(f"samples_per_round must be a positive int, got {samples_per_round!r}")
    else:
        quotas = [samples_per_round] * rounds
    rng = _rng(seed)
    ops: list[set[int]] = [set(range(num_ops)) for _ in range(num_edges)]
    sampled: dict[int, object] = {}  # position drawn from a sub-supernet -> its representative (evaluated)
    for quota in quotas:
        candidates = np.flatnonzero(domain.subspace_mask(ops))
        new = 0
        for index in rng.permutation(candidates):
            if new >= quota or objective.exhausted:
                break
            rep = domain.rep_at(int(index))
            if objective.known(rep) is None:
                objective(rep)
                new += 1
                sampled[int(index)] = rep
        inside = [i for i in sampled if all(domain.op_ids(i)[e] in ops[e] for e in range(num_edges))]
        ranks = rankdata([objective(sampled[i]) for i in inside], method="average") if inside else np.array([])
        neutral = (len(inside) + 1) / 2
        for edge in range(num_edges):
            means = {}
            for op in ops[edge]:
                mine = [r for i, r in zip(inside, ranks) if domain.op_ids(i)[edge] == op]
                means[op] = float(np.mean(mine)) if mine else neutral
            tie_break = rng.random(num_ops)
            for op in sorted(means, key=lambda o: (means[o], tie_break[o])):
                trial = [set(s) for s in ops]
                trial[edge].discard(op)
                if domain.subspace_mask(trial).any():
                    ops = trial
                    break
    chosen = domain.rep_at(domain.position_of_ops([next(iter(s)) for s in ops]))
    if objective.known(chosen) is None and not objective.exhausted:
        objective(chosen)
    return SearchResult.from_objective("prune", objective, seed, chosen, samples_per_round=quotas)
