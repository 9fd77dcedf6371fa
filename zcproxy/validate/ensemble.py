"""Rank-aggregation ensembles of proxies, with members and weights chosen on held-out-free halves.

Two aggregators over oriented ranks (rank 1 = worst, M = best, ties averaged; a non-finite score ranks
worst):

* ``logrank`` (AZ-NAS, Lee & Ham, CVPR 2024): score = sum_i log(rank_i / M), equal weights.
* ``nnls``: a non-negative linear model on normalised ranks rank_i / M fit by scipy.optimize.nnls to the
  normalised rank of the target accuracy (both centred), so the weights never flip a proxy's orientation.

Members are chosen by greedy forward selection on the fit architectures only (optionally after trying every
subset of up to ``exhaustive`` members, which finds members that only help together); :func:`cross_validated`
fits on one seeded half of the architectures and reports Kendall tau on the other half (and the reverse),
so no selection bias enters the reported numbers.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats

from ..truth import REPRESENTATIVE
from .correlation import dedupe_isomorphs, orientations

METHODS = ("logrank", "nnls")
_MIN_FIT_ROWS = 10


@dataclass(frozen=True)
class Ensemble:
    """A fitted ensemble: ``predict`` ranks the given architectures (higher = better)."""

    method: str
    members: tuple[str, ...]
    weights: tuple[float, ...]
    orientation: Mapping[str, bool] = field(default_factory=dict)

    def predict(self, scores: pd.DataFrame) -> pd.Series:
        """Ensemble score of every row of ``scores`` (NaN where a member is missing).

        Ranks are taken within ``scores``, so the value is relative to the architectures passed.
        """
        absent = [m for m in self.members if m not in scores.columns]
        if absent:
            raise ValueError(f"scores lack ensemble member column(s) {absent}; "
                             f"the ensemble needs {list(self.members)}")
        ranks = oriented_ranks(scores[list(self.members)], self.orientation)
        return _combine(self.method, ranks, np.asarray(self.weights))


def oriented_ranks(scores: pd.DataFrame, orientation: Mapping[str, bool] | None = None) -> pd.DataFrame:
    """Per column: rank / M with rank 1 = worst and M = best (ties averaged, NaN kept, non-finite worst)."""
    orient = orientations(scores.columns, orientation)
    out = {}
    for column in scores.columns:
        if not pd.api.types.is_numeric_dtype(scores[column]):
            raise ValueError(f"score column {column!r} is not numeric (dtype {scores[column].dtype})")
        values = scores[column].astype(np.float64)
        oriented = values if orient[column] else -values
        oriented = oriented.where(~np.isinf(values), -np.inf)
        ranks = oriented.rank(method="average", na_option="keep")
        out[column] = ranks / ranks.notna().sum()
    return pd.DataFrame(out, index=scores.index)


def _combine(method: str, ranks: pd.DataFrame, weights: np.ndarray) -> pd.Series:
    values = ranks.to_numpy(dtype=np.float64)
    if method == "logrank":
        combined = np.log(values) @ weights
    else:
        combined = values @ weights
    return pd.Series(combined, index=ranks.index, name=f"{method}_ensemble")


def fit_ensemble(scores: pd.DataFrame, target: pd.Series, method: str = "logrank", *, max_members: int = 5,
                 candidates: Sequence[str] | None = None, orientation: Mapping[str, bool] | None = None,
                 min_gain: float = 1e-3, exhaustive: int = 1) -> Ensemble:
    """Greedy forward selection of up to ``max_members`` proxies maximising Kendall tau with ``target``.

    ``scores``: index = arch, one column per proxy output; ``target``: accuracy per arch (same index).
    Each step adds the candidate that raises tau most (``nnls`` refits all weights), and stops when no
    candidate adds at least ``min_gain``. With ``exhaustive`` = k > 1 the start is the best of every
    subset of 1..k candidates instead (a larger subset replaces a smaller one only when it gains at least
    ``min_gain``; C(n, k) fits), then greedy steps follow: members that help only together (e.g. three
    proxies whose equal-weight log-rank mean beats each pair) are found. Members whose ``nnls`` weight a
    later refit sets to 0 are dropped (the prediction is unchanged). Only rows with a finite target and
    every candidate scored are used.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(max_members, bool) or not isinstance(max_members, int) or max_members < 1:
        raise ValueError(f"max_members must be a positive int, got {max_members!r}")
    if isinstance(exhaustive, bool) or not isinstance(exhaustive, int) or not 1 <= exhaustive <= max_members:
        raise ValueError(f"exhaustive must be an int from 1 to max_members ({max_members}), got {exhaustive!r}")
    pool = list(scores.columns if candidates is None else candidates)
    absent = [c for c in pool if c not in scores.columns]
    if absent or not pool:
        raise ValueError(f"candidate column(s) {absent or pool} are not in scores (columns: {list(scores.columns)})")
    orient = orientations(pool, orientation)
    rows, y = _fit_rows(scores[pool], target)
    ranks = oriented_ranks(scores.loc[rows, pool], orient)
    target_rank = y.rank(method="average") / y.size

    def best_of(groups) -> tuple[float, list[str], np.ndarray] | None:
        """(tau, members, weights) of the member list with the highest finite tau, the first on ties."""
        best = None
        for members in groups:
            w = _weights(method, ranks[members], target_rank)
            tau = _tau(_combine(method, ranks[members], w), y)
            if np.isfinite(tau) and (best is None or tau > best[0]):
                best = (tau, members, w)
        return best

    chosen: list[str] = []
    weights = np.zeros(0)
    best_tau = -np.inf
    for size in range(1, exhaustive + 1):  # size 1 is greedy's first step, so exhaustive=1 is plain greedy
        trial = best_of(map(list, itertools.combinations(pool, size)))
        if trial is not None and trial[0] >= best_tau + min_gain:
            best_tau, chosen, weights = trial
    while len(chosen) < max_members:
        trial = best_of(chosen + [column] for column in pool if column not in chosen)
        if trial is None or trial[0] < best_tau + min_gain:
            break
        best_tau, chosen, weights = trial
    if not chosen:
        raise ValueError("no candidate proxy ranks the fit architectures in the target's direction "
                         "(every candidate gives an undefined or constant ensemble)")
    # a refit can zero an earlier member's weight; such members contribute nothing. Some weight stays
    # positive: an all-zero ensemble is constant, its tau undefined, so it is never accepted.
    kept = [(c, float(w)) for c, w in zip(chosen, weights) if w > 0]
    return Ensemble(method, tuple(c for c, _ in kept), tuple(w for _, w in kept), {c: orient[c] for c, _ in kept})


def _fit_rows(scores: pd.DataFrame, target: pd.Series) -> tuple[pd.Index, pd.Series]:
    if not isinstance(target, pd.Series):
        raise ValueError(f"target must be a pandas Series indexed by arch, got {type(target).__name__}")
    y = target.reindex(scores.index).astype(np.float64)
    complete = scores.notna().all(axis=1) & np.isfinite(y)
    if complete.sum() < _MIN_FIT_ROWS:
        worst = scores.isna().sum().sort_values(ascending=False).head(3).to_dict()
        raise ValueError(f"only {int(complete.sum())} architectures have a finite target and every candidate "
                         f"scored (need {_MIN_FIT_ROWS}); most missing per column: {worst}; "
                         "pass candidates= to leave sparse columns out")
    rows = scores.index[complete.to_numpy()]
    return rows, y.loc[rows]


def _weights(method: str, ranks: pd.DataFrame, target_rank: pd.Series) -> np.ndarray:
    if method == "logrank":
        return np.ones(ranks.shape[1])
    features = ranks.to_numpy(dtype=np.float64)
    features = features - features.mean(axis=0)
    goal = target_rank.to_numpy(dtype=np.float64)
    weights, _ = scipy.optimize.nnls(features, goal - goal.mean())
    return weights


def _tau(prediction: pd.Series, truth: pd.Series) -> float:
    p = prediction.to_numpy(dtype=np.float64)
    t = truth.reindex(prediction.index).to_numpy(dtype=np.float64)
    ok = np.isfinite(p) & np.isfinite(t)
    if ok.sum() < 3 or np.ptp(p[ok]) == 0:
        return np.nan
    return float(scipy.stats.kendalltau(p[ok], t[ok]).statistic)


def cross_validated(scores: pd.DataFrame, truth: pd.DataFrame, dataset: str = "cifar10", metric: str = "pgd_8",
                    seed: int = 0, *, methods: Sequence[str] = METHODS, max_members: int = 5,
                    candidates: Sequence[str] | None = None, orientation: Mapping[str, bool] | None = None,
                    representatives_only: bool = True, exhaustive: int | Sequence[int] = 1) -> pd.DataFrame:
    """Two-fold held-out evaluation of ensembles against truth[(dataset, metric)].

    The architectures with every candidate scored and a finite target (isomorphism representatives by
    default) are split in two halves with ``seed``; each ensemble, and the best single proxy, is chosen on
    one half and its Kendall tau is reported on the other, so all of them are judged on the same archs.
    ``exhaustive``: :func:`fit_ensemble`'s option, one value or several (one row each). Returns one row per
    (fold, method, exhaustive) with columns fold, method, exhaustive, members, weights, n_fit, n_test,
    fit_kendall, test_kendall, best_single, best_single_test_kendall.
    """
    searches = [exhaustive] if isinstance(exhaustive, int) else list(exhaustive)
    if (dataset, metric) not in truth.columns:
        raise ValueError(f"truth has no column ({dataset!r}, {metric!r}); available: {list(truth.columns)}")
    target = truth[(dataset, metric)].astype(np.float64)
    pool = list(scores.columns if candidates is None else candidates)
    orient = orientations(pool, orientation)
    complete = scores.index[scores[pool].notna().all(axis=1).to_numpy()]
    archs = np.asarray(complete.intersection(target.index[np.isfinite(target.to_numpy())]))
    if representatives_only:
        archs = dedupe_isomorphs(archs, truth[REPRESENTATIVE])
    if archs.size < 2 * _MIN_FIT_ROWS:
        raise ValueError(f"only {archs.size} architectures have ground truth and every candidate scored; need "
                         f"{2 * _MIN_FIT_ROWS} (pass candidates= to leave sparse columns out)")
    shuffled = np.random.default_rng(seed).permutation(archs)
    halves = (np.sort(shuffled[: archs.size // 2]), np.sort(shuffled[archs.size // 2:]))
    rows = []
    for fold, (fit, test) in enumerate((halves, halves[::-1])):
        single = _best_single(scores.loc[fit, pool], target, orient)
        single_tau = _tau(oriented_ranks(scores.loc[test, [single]], orient)[single], target)
        for method, search in itertools.product(methods, searches):
            model = fit_ensemble(scores.loc[fit], target, method, max_members=max_members, candidates=pool,
                                 orientation=orient, exhaustive=search)
            rows.append({
                "fold": fold, "method": method, "exhaustive": search, "members": ",".join(model.members),
                "weights": ",".join(f"{w:.4g}" for w in model.weights), "n_fit": int(fit.size),
                "n_test": int(test.size), "fit_kendall": _tau(model.predict(scores.loc[fit]), target),
                "test_kendall": _tau(model.predict(scores.loc[test]), target),
                "best_single": single, "best_single_test_kendall": single_tau,
            })
    return pd.DataFrame(rows)


def _best_single(scores: pd.DataFrame, target: pd.Series, orient: Mapping[str, bool]) -> str:
    taus = {c: _tau(oriented_ranks(scores[[c]], orient)[c], target) for c in scores.columns}
    finite = {c: t for c, t in taus.items() if np.isfinite(t)}
    if not finite:
        raise ValueError("no proxy has a defined Kendall tau on the fit half")
    return max(finite, key=finite.get)
