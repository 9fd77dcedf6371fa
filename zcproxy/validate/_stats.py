"""Rank statistics of many bootstrap resamples at once, each resample given as per-point multiplicities.

A bootstrap resample of ``n`` points is a column of ``counts`` (n x B): how often each original point was
drawn. Every statistic here is evaluated for all B resamples in vectorised passes, without materialising
the resampled arrays, and equals the statistic of ``np.repeat(x, counts[:, b])``. Points are rows so that
reordering points copies contiguous memory. :class:`Ranked` holds everything about one variable that
does not depend on the other, so a truth column is prepared once for all proxies.
"""
from __future__ import annotations

import numpy as np

_CHUNK_ELEMENTS = 8_000_000  # padded points x resamples handled per block in the Kendall kernel


def resample_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` x ``resamples`` multiplicities of ``n`` draws with replacement (each column sums to ``n``)."""
    draws = rng.integers(0, n, size=(resamples, n))
    flat = (draws * resamples + np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=n * resamples).reshape(n, resamples).astype(np.int32)


def _prefix_sums(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """Inclusive cumulative sum along ``axis`` (0 or 1), one vectorised add per position.

    numpy's cumsum along a leading axis of a wide array is an order of magnitude slower than this loop.
    """
    out = np.empty_like(a)
    if axis == 0:
        out[0] = a[0]
        for i in range(1, a.shape[0]):
            np.add(out[i - 1], a[i], out=out[i])
    else:
        out[:, 0] = a[:, 0]
        for i in range(1, a.shape[1]):
            np.add(out[:, i - 1], a[:, i], out=out[:, i])
    return out


def _runs(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start of every run of equal values in a sorted array, and the run number of every position."""
    change = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    starts = np.concatenate(([0], change))
    run_of = np.repeat(np.arange(starts.size), np.diff(np.append(starts, sorted_values.size)))
    return starts, run_of


def _run_sums(w: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of the rows of ``w`` over each run [starts[r], starts[r+1]), as float64."""
    if starts.size == w.shape[0]:
        return w.astype(np.float64)
    ends = np.append(starts[1:], w.shape[0]) - 1
    cum = _prefix_sums(w)[ends].astype(np.float64)
    cum[1:] -= cum[:-1].copy()
    return cum


def _as_columns(counts: np.ndarray, n: int) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim == 1:
        counts = counts[:, None]
    if counts.shape[0] != n:
        raise ValueError(f"counts must have one row per point ({n}), got shape {counts.shape}")
    return counts


class Ranked:
    """One variable under every resample: average ranks, tie structure, moments and top-k membership.

    ``percents`` are the top-p% cuts (K = max(1, ceil(p/100 N)) per resample of size N) to prepare.
    """

    def __init__(self, values: np.ndarray, counts: np.ndarray, percents: tuple[float, ...] = ()):
        self.values = np.asarray(values, dtype=np.float64)
        self.counts = _as_columns(counts, self.values.size)
        self.weights = self.counts.astype(np.float64)
        self.total = self.weights.sum(axis=0)
        order = np.argsort(self.values, kind="stable")
        starts, run_of = _runs(self.values[order])
        sums = _run_sums(self.counts[order], starts)
        upto = _prefix_sums(sums)
        run_rank = upto - (sums - 1.0) / 2.0
        self.point_run = np.empty_like(run_of)
        self.point_run[order] = run_of
        self.ties = np.einsum("rb,rb->b", sums, sums)  # sum over tied groups of (group size)^2
        centre_sq = self.total * ((self.total + 1.0) / 2.0) ** 2
        self.rank_var = np.einsum("rb,rb,rb->b", sums, run_rank, run_rank) - centre_sq
        self._run_rank = run_rank
        self.standard = _standardised(self.values)
        self.mean = (self.standard @ self.weights) / self.total
        self.var = (self.standard ** 2) @ self.weights - self.total * self.mean ** 2
        self.percents = tuple(percents)
        self.ks = np.array([np.minimum(self.total, np.maximum(1.0, np.ceil(p / 100.0 * self.total - 1e-9)))
                            for p in self.percents]).reshape(len(self.percents), self.total.size)
        if self.percents:
            self.top_points, self.top_share = self._top(order, run_of, sums, upto)

    def ranks(self) -> np.ndarray:
        """Average ranks (1-based) of every point in every resample (n x B)."""
        return self._run_rank[self.point_run]

    def _top(self, order, run_of, sums, upto) -> tuple[np.ndarray, np.ndarray]:
        """Points that reach a top-k cut in some resample, and their membership probability
        (cuts x points x B) with ties at the cut broken uniformly at random."""
        greater = self.total - upto  # drawn points with a strictly larger value than the run
        reach = np.flatnonzero((greater < self.ks.max()).any(axis=1))
        runs = np.arange(reach.min(), sums.shape[0])
        keep = np.flatnonzero(run_of >= runs[0])
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.clip((self.ks[:, None, :] - greater[None, runs]) / sums[None, runs], 0.0, 1.0)
        share[:, sums[runs] == 0] = 0.0
        return order[keep], share[:, run_of[keep] - runs[0]]


def _standardised(values: np.ndarray) -> np.ndarray:
    """Values shifted and scaled by their unweighted mean and spread (Pearson r is invariant to this);
    keeps the one-pass sums of the weighted Pearson r free of cancellation."""
    centre = values.mean()
    spread = np.abs(values - centre).max()
    return (values - centre) / (spread if spread > 0 else 1.0)


def _undefined(value: np.ndarray, *variances: np.ndarray) -> np.ndarray:
    bad = np.zeros(value.shape, dtype=bool)
    for v, scale in variances:
        bad |= v <= 1e-12 * scale
    value[bad] = np.nan
    return np.clip(value, -1.0, 1.0)


def pearson_of(a: Ranked, b: Ranked) -> np.ndarray:
    """Pearson r of the raw values per resample."""
    cross = np.einsum("n,n,nb->b", a.standard, b.standard, a.weights) - a.total * a.mean * b.mean
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cross / np.sqrt(a.var * b.var)
    return _undefined(r, (a.var, a.total), (b.var, b.total))


def spearman_of(a: Ranked, b: Ranked) -> np.ndarray:
    """Spearman's rho (Pearson r of average ranks) per resample. Spearman (1904).

    The weighted mean of average ranks is (N + 1) / 2 for every tie pattern and each variance depends
    only on the runs, so only the cross term passes over the points.
    """
    centre_sq = a.total * ((a.total + 1.0) / 2.0) ** 2
    cross = np.einsum("nb,nb,nb->b", a.weights, a.ranks(), b.ranks()) - centre_sq
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = cross / np.sqrt(a.rank_var * b.rank_var)
    cube = a.total ** 3
    return _undefined(rho, (a.rank_var, cube), (b.rank_var, cube))


def top_precision_of(a: Ranked, b: Ranked) -> np.ndarray:
    """Share of the top p% by ``a`` that is also in the top p% by ``b``, per cut (rows) and resample.

    Ties at a cut are broken uniformly at random and the expected overlap is returned, so the value does
    not depend on the order of the input.
    """
    common, at_a, at_b = np.intersect1d(a.top_points, b.top_points, assume_unique=True, return_indices=True)
    overlap = np.einsum("nb,mnb,mnb->mb", a.weights[common], a.top_share[:, at_a], b.top_share[:, at_b])
    return overlap / a.ks


def kendall_of(a: Ranked, b: Ranked) -> np.ndarray:
    """Kendall's tau-b per resample. Kendall (1945).

    tau_b = (n_c - n_d) / sqrt((n_0 - n_1)(n_0 - n_2)) over all pairs of drawn points, where pairs tied
    in a (b) count in n_1 (n_2); copies of one point are tied in both. The concordance sum is a
    divide-and-conquer over the order of ``a``: at every level each right-half point is compared with its
    left half through prefix sums of the weights in ``b`` order, so a resample costs O(n log n) and all
    resamples pass each level together. Resamples whose drawn a or b are all tied give NaN.
    """
    x, y, counts = a.values, b.values, a.counts
    n = x.size
    order = np.lexsort((y, x))
    xs, ys = x[order], y[order]
    y_rank = np.unique(ys, return_inverse=True)[1].astype(np.int64).ravel()
    padded = 1 << max(1, int(np.ceil(np.log2(max(n, 2)))))
    y_rank = np.concatenate([y_rank, np.zeros(padded - n, dtype=np.int64)])
    levels = _merge_levels(y_rank, padded)
    xy_starts = np.concatenate(([0], np.flatnonzero((xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])) + 1))
    x_starts = _runs(xs)[0]

    step = max(1, _CHUNK_ELEMENTS // padded)
    pair_sum = np.empty(counts.shape[1], dtype=np.float64)
    xy_ties = np.empty(counts.shape[1], dtype=np.float64)
    for first in range(0, counts.shape[1], step):
        cols = slice(first, first + step)
        # prefix sums never exceed the resample size, so int16 is exact below 2**15 points
        w = np.zeros((padded, counts[:, cols].shape[1]), dtype=np.int16 if n < 2**15 else np.int64)
        w[:n] = counts[order, cols]
        xy = _run_sums(w[:n], xy_starts)
        xy_ties[cols] = np.einsum("rb,rb->b", xy, xy)
        pair_sum[cols] = _ordered_pair_sum(w, levels)
    # positions are sorted by y inside each run of tied x, so those pairs were counted +1 when y rose
    s = pair_sum - (a.ties - xy_ties) / 2.0
    if x_starts.size == n:  # no ties in x: the correction above is exactly zero
        s = pair_sum
    untied_x = (a.total ** 2 - a.ties) / 2.0
    untied_y = (b.total ** 2 - b.ties) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = s / np.sqrt(untied_x * untied_y)
    tau[(untied_x == 0) | (untied_y == 0)] = np.nan
    return np.clip(tau, -1.0, 1.0)


def _merge_levels(y_rank: np.ndarray, padded: int) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per merge level: left-half positions in y order, right-half positions, and prefix-sum lookups."""
    levels = []
    span = int(y_rank.max()) + 2
    half = 1
    while half < padded:
        blocks = padded // (2 * half)
        left = (np.arange(blocks) * 2 * half)[:, None] + np.arange(half)
        right = left + half
        left_sorted = np.take_along_axis(left, np.argsort(y_rank[left], axis=1, kind="stable"), axis=1)
        offset = (np.arange(blocks) * span)[:, None]
        keys = (y_rank[left_sorted] + offset).ravel()
        probe = (y_rank[right] + offset).ravel()
        # index into the per-block prefix sums (half + 1 entries per block, entry 0 is the empty sum)
        shift = (np.arange(blocks) * half)[:, None] - (np.arange(blocks) * (half + 1))[:, None]
        below = np.searchsorted(keys, probe, side="left").reshape(blocks, half) - shift
        not_above = np.searchsorted(keys, probe, side="right").reshape(blocks, half) - shift
        levels.append((half, left_sorted.ravel(), right.ravel(), below.ravel(), not_above.ravel()))
        half *= 2
    return levels


def _ordered_pair_sum(w: np.ndarray, levels) -> np.ndarray:
    """sum over positions i < j of w_i w_j sign(y_j - y_i), for every column of ``w``."""
    padded, cols = w.shape
    total = np.zeros(cols, dtype=np.int64)
    for half, left_sorted, right, below, not_above in levels:
        blocks = padded // (2 * half)
        prefix = np.zeros((blocks, half + 1, cols), dtype=w.dtype)
        prefix[:, 1:] = _prefix_sums(w[left_sorted].reshape(blocks, half, cols), axis=1)
        block_total = np.repeat(prefix[:, half], half, axis=0)
        flat = prefix.reshape(-1, cols)
        # sum_{i in left half} w_i sign(y_j - y_i) = W(y_i < y_j) - W(y_i > y_j)
        signed = flat[below] + flat[not_above] - block_total
        total += np.einsum("ij,ij->j", w[right], signed, dtype=np.int64)
    return total


def kendall_tau_b(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of x and y for every resample column of ``counts`` (see :func:`kendall_of`)."""
    return kendall_of(Ranked(x, counts), Ranked(y, counts))


def spearman_rho(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Spearman's rho of x and y for every resample column of ``counts``."""
    return spearman_of(Ranked(x, counts), Ranked(y, counts))


def weighted_pearson(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pearson r of x and y for every resample column of ``counts``."""
    return pearson_of(Ranked(x, counts), Ranked(y, counts))


def top_k_precision(x: np.ndarray, y: np.ndarray, counts: np.ndarray,
                    percents: tuple[float, ...] = (1, 5, 10)) -> np.ndarray:
    """Top-p% precision of x against y, one row per percent, one column per resample."""
    return top_precision_of(Ranked(x, counts, percents), Ranked(y, counts, percents))
