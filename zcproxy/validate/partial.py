"""Size-blind rank agreement: Kendall's partial tau and tau within strata of equal size, with bootstrap CIs.

**Partial tau** (Kendall 1942, "Partial rank correlation", Biometrika 32):

    tau_xy.z = (tau_xy - tau_xz * tau_yz) / sqrt((1 - tau_xz**2) * (1 - tau_yz**2))

with every tau Kendall's tau-b (ties corrected; the parameter count has many ties), as R's
``ppcor::pcor.test(method="kendall")`` computes it. It is the agreement of x and y left once each one's
agreement with z is taken out. When |tau_xz| = 1 or |tau_yz| = 1 (x or y orders the pairs exactly as z, e.g.
a proxy that *is* the parameter count) the formula is 0/0: :func:`partial_kendall` raises
:class:`PartialTauUndefined` (``undefined="raise"``, default) or returns NaN (``undefined="nan"``); in the
bootstrap such resamples give NaN and are counted in ``undefined``. Partial tau is unchanged by any strictly
increasing transform of x, y or z, and by negating z.

**Stratified tau**: tau-b of x and y within each stratum (architectures of equal z -- by default the exact
value of z; ``decimals=d`` rounds z to d decimals first, ``bins=b`` uses b quantile bins of z instead),
combined as the mean weighted by the number of pairs n_s (n_s - 1) / 2 of each stratum. A stratum with fewer
than 2 architectures or with all x (or all y) tied has no defined tau and is left out with its pairs
(``strata_used`` / ``pairs`` report what was used); if none is left the result is NaN. For x = z every
stratum is all-tied, so the parameter count itself has no stratified tau (it cannot order archs of equal size).

CIs: percentile bootstrap over architectures (resampled jointly for x, y and z, so differences between two
proxies or two targets are paired), computed with the vectorised tau-b kernel of :mod:`._stats`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import _stats


class PartialTauUndefined(ValueError):
    """|tau_xz| = 1 or |tau_yz| = 1: the partial tau is 0/0 (x or y carries z's order exactly)."""


_EDGE = 1e-12


def _arrays(*columns: Sequence[float]) -> list[np.ndarray]:
    arrays = [np.asarray(c, dtype=np.float64).ravel() for c in columns]
    if len({a.size for a in arrays}) != 1:
        raise ValueError(f"x, y and z (and strata) must have one value per architecture; sizes {[a.size for a in arrays]}")
    bad = [i for i, a in enumerate(arrays) if not np.isfinite(a).all()]
    if bad:
        raise ValueError("non-finite values in " + ", ".join("xyz"[i] if i < 3 else "strata" for i in bad)
                         + "; drop or replace them first (the caller decides what a degenerate score means)")
    return arrays


def partial_from_taus(tau_xy, tau_xz, tau_yz) -> np.ndarray:
    """Kendall's formula applied elementwise; NaN where |tau_xz| or |tau_yz| is 1 (or any input is NaN)."""
    tau_xy, tau_xz, tau_yz = (np.asarray(t, dtype=np.float64) for t in (tau_xy, tau_xz, tau_yz))
    denominator = (1.0 - tau_xz ** 2) * (1.0 - tau_yz ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (tau_xy - tau_xz * tau_yz) / np.sqrt(denominator)
    value = np.where(denominator > _EDGE, value, np.nan)
    return np.clip(value, -1.0, 1.0)


def partial_kendall_resamples(x, y, z, counts: np.ndarray) -> np.ndarray:
    """Partial tau of every resample column of ``counts`` (n x B multiplicities, see ``_stats``)."""
    x, y, z = _arrays(x, y, z)
    rx, ry, rz = (_stats.Ranked(v, counts) for v in (x, y, z))
    return partial_from_taus(_stats.kendall_of(rx, ry), _stats.kendall_of(rx, rz), _stats.kendall_of(ry, rz))


def partial_kendall_many(columns, y, z, counts: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`partial_kendall_resamples` for every ``{name: x}`` in ``columns`` against one y and z, with
    y's and z's ranks and tau_yz computed once."""
    y, z = _arrays(y, z)
    ry, rz = _stats.Ranked(y, counts), _stats.Ranked(z, counts)
    tau_yz = _stats.kendall_of(ry, rz)
    out = {}
    for name, x in columns.items():
        (x,) = _arrays(x)
        if x.size != y.size:
            raise ValueError(f"column {name!r} has {x.size} values, y has {y.size}")
        rx = _stats.Ranked(x, counts)
        out[name] = partial_from_taus(_stats.kendall_of(rx, ry), _stats.kendall_of(rx, rz), tau_yz)
    return out


def partial_kendall(x, y, z, *, undefined: str = "raise") -> float:
    """Kendall's partial tau-b of x and y given z (see the module docstring)."""
    if undefined not in ("raise", "nan"):
        raise ValueError(f"undefined must be 'raise' or 'nan', got {undefined!r}")
    x, y, z = _arrays(x, y, z)
    if x.size < 3:
        raise ValueError(f"need at least 3 architectures, got {x.size}")
    ones = np.ones((x.size, 1), dtype=np.int32)
    rx, ry, rz = (_stats.Ranked(v, ones) for v in (x, y, z))
    taus = [float(_stats.kendall_of(a, b)[0]) for a, b in ((rx, ry), (rx, rz), (ry, rz))]
    value = float(partial_from_taus(*taus))
    if np.isnan(value) and undefined == "raise":
        raise PartialTauUndefined(f"partial tau undefined: tau_xz = {taus[1]:.6g}, tau_yz = {taus[2]:.6g} "
                                  "(one of them is +-1 or undefined, so the formula is 0/0); "
                                  "pass undefined='nan' to get NaN instead")
    return value


def strata_of(z, *, decimals: int | None = None, bins: int | None = None) -> np.ndarray:
    """Stratum label of every architecture: equal z (optionally rounded to ``decimals``), or ``bins``
    quantile bins of z (ties never split: ``pandas.qcut`` on average ranks, duplicate edges merged)."""
    (z,) = _arrays(z)
    if bins is not None and decimals is not None:
        raise ValueError("pass decimals= or bins=, not both")
    if bins is not None:
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        return pd.qcut(z, bins, labels=False, duplicates="drop").astype(np.int64)
    key = np.round(z, decimals) if decimals is not None else z
    return np.unique(key, return_inverse=True)[1].astype(np.int64).ravel()


def stratified_kendall_resamples(x, y, strata, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair-weighted mean within-stratum tau-b per resample, the pairs used and the strata used (each B)."""
    x, y, strata = _arrays(x, y, strata)
    counts = np.asarray(counts)
    total = np.zeros(counts.shape[1])
    pairs = np.zeros(counts.shape[1])
    used = np.zeros(counts.shape[1], dtype=np.int64)
    for label in np.unique(strata):
        rows = np.flatnonzero(strata == label)
        if rows.size < 2:
            continue
        c = counts[rows]
        n = c.sum(axis=0).astype(np.float64)
        with np.errstate(all="ignore"):  # resamples drawing 0 or 1 arch of the stratum: undefined, dropped
            tau = _stats.kendall_of(_stats.Ranked(x[rows], c), _stats.Ranked(y[rows], c))
        ok = np.isfinite(tau) & (n >= 2)
        weight = np.where(ok, n * (n - 1) / 2.0, 0.0)
        total += np.where(ok, tau, 0.0) * weight
        pairs += weight
        used += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(pairs > 0, total / pairs, np.nan)
    return value, pairs, used


def stratified_kendall(x, y, strata) -> dict[str, float]:
    """Within-stratum tau-b of x and y, pair-weighted mean; returns kendall, pairs, strata_used, strata."""
    x, y, strata = _arrays(x, y, strata)
    value, pairs, used = stratified_kendall_resamples(x, y, strata, np.ones((x.size, 1), dtype=np.int32))
    return {"kendall": float(value[0]), "pairs": float(pairs[0]), "strata_used": int(used[0]),
            "strata": int(np.unique(strata).size)}


def bootstrap_counts(n: int, bootstrap: int = 1000, seed: int = 0) -> np.ndarray:
    """n x (1 + bootstrap) multiplicities: column 0 the original sample, then seeded resamples
    (``numpy.random.default_rng([seed, n])``); share one across statistics to pair them."""
    rng = np.random.default_rng([seed, n])
    drawn = _stats.resample_counts(n, bootstrap, rng) if bootstrap else np.zeros((n, 0), np.int32)
    return np.concatenate([np.ones((n, 1), np.int32), drawn], axis=1)


def interval(values: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """Point value (column 0) and central percentile interval of the finite bootstrap values (columns 1..),
    with the number of undefined (NaN) resamples."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    values = np.asarray(values, dtype=np.float64)
    boot = values[1:][np.isfinite(values[1:])]
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(boot, [tail, 100.0 - tail]) if boot.size else (np.nan, np.nan)
    return {"value": float(values[0]), "lo": float(lo), "hi": float(hi),
            "undefined": int(np.isnan(values[1:]).sum())}


def partial_kendall_ci(x, y, z, *, bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, float]:
    """Partial tau with a percentile bootstrap CI: value, lo, hi, undefined (resamples), n. ``value`` is NaN
    (never an error) when the formula is 0/0 on the data itself."""
    x, y, z = _arrays(x, y, z)
    out = interval(partial_kendall_resamples(x, y, z, bootstrap_counts(x.size, bootstrap, seed)), confidence)
    return out | {"n": int(x.size)}


def stratified_kendall_ci(x, y, strata, *, bootstrap: int = 1000, seed: int = 0,
                          confidence: float = 0.95) -> dict[str, float]:
    """Stratified tau with a percentile bootstrap CI: value, lo, hi, undefined, pairs, strata_used, n."""
    x, y, strata = _arrays(x, y, strata)
    value, pairs, used = stratified_kendall_resamples(x, y, strata, bootstrap_counts(x.size, bootstrap, seed))
    return interval(value, confidence) | {"pairs": float(pairs[0]), "strata_used": int(used[0]), "n": int(x.size)}
