"""How well proxy scores rank architectures: rank correlations and top-k precision with bootstrap CIs.

Every statistic is signed: a lower-is-better proxy is negated before ranking (never ``abs``), so +1
always means "the proxy orders architectures exactly like the ground truth".
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..truth import REPRESENTATIVE
from . import _stats

_CORRELATIONS = ("kendall", "spearman", "pearson")
_MIN_POINTS = 3
TRAINED_PREFIX = "trained_"


def correlate(scores: pd.DataFrame, truth: pd.DataFrame, *, datasets: Sequence[str] | None = None,
              metrics: Sequence[str] | None = None, orientation: Mapping[str, bool] | None = None,
              representatives_only: bool = True, bootstrap: int = 1000, seed: int = 0,
              topk: Sequence[float] = (1, 5, 10), flags: pd.DataFrame | None = None,
              confidence: float = 0.95) -> pd.DataFrame:
    """Rank agreement of every score column with every (dataset, metric) truth column.

    ``scores``: index = architecture label (NB201 index, DARTS key, ...), one column per proxy output (NaN = not scored; +-inf or a
    ``flags`` entry containing "degenerate" = degenerate, counted and left out). ``truth``: index = arch
    index, columns (dataset, metric). ``orientation`` maps column -> higher_is_better for columns that are
    not registered proxy outputs (or to override the registry).

    With ``representatives_only`` each isomorphism class (one trained network) counts once: its
    representative's score if scored, else its smallest scored member. ``False`` uses every scored index
    (the all-15,625 convention of earlier papers, where isomorphs repeat the same accuracy).

    Statistics: Kendall tau-b (Kendall 1945), Spearman rho (Pearson r of average ranks, Spearman 1904),
    Pearson r of the raw oriented scores, and top-p% precision |top_p(proxy) ∩ top_p(truth)| / K with
    K = max(1, ceil(p/100 n)) (ties at the cut broken at random, expected value). Each has a percentile
    bootstrap CI from ``bootstrap`` resamples of the architectures (seeded by ``seed`` and n; 0 = no CI).
    Returns one row per (proxy, dataset, metric) with columns proxy, dataset, metric, n, missing,
    degenerate, <stat>, <stat>_lo, <stat>_hi, higher_is_better, note.
    """
    _check_frame(scores, "scores")
    _check_truth(truth)
    bootstrap = _check_count(bootstrap, "bootstrap")
    seed = _check_count(seed, "seed")
    _check_confidence(confidence)
    percents = _check_topk(topk)
    targets = truth_columns(truth, datasets, metrics)
    orient = orientations(scores.columns, orientation)
    degenerate_mask = _degenerate_mask(scores, flags)
    resamples = _Resamples(bootstrap, seed, percents)
    rows = []
    for dataset in dict.fromkeys(d for d, _ in targets):
        # prepared truth column per metric for the latest set of archs (every proxy of a complete store
        # shares it); one entry per metric bounds the memory at metrics x n x bootstrap floats
        truth_cache: dict[str, tuple[bytes, dict]] = {}
        for column in scores.columns:
            values = scores[column].astype(np.float64)
            score_cache: dict = {}
            for metric in (m for d, m in targets if d == dataset):
                target = truth[(dataset, metric)].astype(np.float64)
                chosen, missing = _evaluation_rows(values, target, representatives_only, truth[REPRESENTATIVE])
                bad = (degenerate_mask[column].reindex(chosen).to_numpy()
                       | ~np.isfinite(values.reindex(chosen).to_numpy()))
                keep = chosen[~bad]
                x = values.reindex(keep).to_numpy() * (1.0 if orient[column] else -1.0)
                y = target.reindex(keep).to_numpy()
                row = {"proxy": column, "dataset": dataset, "metric": metric, "n": int(keep.size),
                       "missing": int(missing), "degenerate": int(bad.sum())}
                key = keep.tobytes() if keep.dtype != object else tuple(keep.tolist())
                if truth_cache.get(metric, (None,))[0] != key:
                    truth_cache[metric] = (key, {})
                row.update(resamples.statistics(x, y, score_cache.setdefault(key, {}), truth_cache[metric][1],
                                                confidence))
                row["higher_is_better"] = bool(orient[column])
                row["note"] = _note(x, y)
                rows.append(row)
    return pd.DataFrame(rows, columns=_output_columns(percents))


def compare(scores: pd.DataFrame, truth: pd.DataFrame, first: str, second: str, *, dataset: str, metric: str,
            orientation: Mapping[str, bool] | None = None, representatives_only: bool = True,
            bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95,
            flags: pd.DataFrame | None = None) -> dict[str, float]:
    """Paired difference tau_b(second) - tau_b(first) against one truth column, on the same architectures.

    Both columns are evaluated on the archs where both are scored, finite and not flagged degenerate in
    ``flags`` (same convention as :func:`correlate`: a bool mask or flag entries, columns as ``scores``; one per
    isomorphism class with ``representatives_only``), each signed by its orientation. The CI resamples
    architectures once for both scores (paired percentile bootstrap, seeded by ``seed`` and n), so it
    answers "does ``second`` rank better than ``first``?" far more sharply than two separate CIs. Returns
    n, kendall_first, kendall_second, delta, delta_lo, delta_hi and p_not_better (share of resamples with
    delta <= 0).
    """
    for name in (first, second):
        if name not in scores.columns:
            raise ValueError(f"compare: score column {name!r} not in the scores; columns: {list(scores.columns)}")
    _check_truth(truth)
    if (dataset, metric) not in truth.columns:
        raise ValueError(f"compare: the truth has no column ({dataset!r}, {metric!r})")
    bootstrap = _check_count(bootstrap, "bootstrap")
    _check_confidence(confidence)
    orient = orientations([first, second], orientation)
    both = scores[[first, second]].astype(np.float64)
    flagged = _degenerate_mask(scores[[first, second]], flags).to_numpy().any(axis=1)
    both = both[np.isfinite(both.to_numpy()).all(axis=1) & ~flagged]
    target = truth[(dataset, metric)].astype(np.float64)
    chosen, _ = _evaluation_rows(both[first], target, representatives_only, truth[REPRESENTATIVE])
    y = target.reindex(chosen).to_numpy()
    out = {"n": int(chosen.size)}
    if chosen.size < _MIN_POINTS:
        return out | {k: np.nan for k in ("kendall_first", "kendall_second", "delta", "delta_lo", "delta_hi",
                                          "p_not_better")}
    counts = _Resamples(bootstrap, seed, ()).counts(chosen.size)
    truth_ranked = _stats.Ranked(y, counts)
    taus = [_stats.kendall_of(_stats.Ranked(both[c].reindex(chosen).to_numpy() * (1.0 if orient[c] else -1.0),
                                            counts), truth_ranked) for c in (first, second)]
    delta = taus[1] - taus[0]
    boot = delta[1:][np.isfinite(delta[1:])]
    lo, hi = _percentile_interval(boot, confidence)
    return out | {"kendall_first": float(taus[0][0]), "kendall_second": float(taus[1][0]), "delta": float(delta[0]),
                  "delta_lo": float(lo), "delta_hi": float(hi),
                  "p_not_better": float((boot <= 0).mean()) if boot.size else np.nan}


def statistic_names(topk: Sequence[float] = (1, 5, 10)) -> list[str]:
    """Names of the statistics :func:`correlate` reports, in column order."""
    return list(_CORRELATIONS) + [_top_name(p) for p in _check_topk(topk)]


def orientations(columns: Sequence[str], override: Mapping[str, bool] | None = None) -> dict[str, bool]:
    """higher_is_better of every column: ``override`` first, then the proxy registry's outputs; accuracies
    of trained networks (``trained_<metric>``, written by ``zcproxy verify``) are higher-is-better."""
    override = dict(override or {})
    for name, value in override.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"orientation[{name!r}] must be True (higher is better) or False, got {value!r}")
    unknown = [c for c in columns if c not in override]
    registry: dict[str, tuple[str, bool]] = {}
    if unknown:
        from ..proxies import outputs

        registry = outputs()
    registry.update({c: ("trained", True) for c in unknown if c.startswith(TRAINED_PREFIX)})
    missing = [c for c in unknown if c not in registry]
    if missing:
        raise ValueError(f"score column(s) {missing} are not registered proxy outputs, so their orientation "
                         f"is unknown; pass orientation={{name: True if higher is better else False}}")
    return {c: bool(override[c]) if c in override else bool(registry[c][1]) for c in columns}


def truth_columns(truth: pd.DataFrame, datasets: Sequence[str] | None = None,
                  metrics: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The (dataset, metric) accuracy columns selected from ``truth`` (all when ``None``)."""
    present = [(d, m) for d, m in truth.columns if (d, m) != REPRESENTATIVE]
    all_datasets = list(dict.fromkeys(d for d, _ in present))
    chosen_datasets = all_datasets if datasets is None else list(_as_list(datasets, "datasets"))
    bad = [d for d in chosen_datasets if d not in all_datasets]
    if bad:
        raise ValueError(f"dataset(s) {bad} are not in the ground truth; available: {all_datasets}")
    all_metrics = list(dict.fromkeys(m for d, m in present if d in chosen_datasets))
    chosen_metrics = all_metrics if metrics is None else list(_as_list(metrics, "metrics"))
    bad = [m for m in chosen_metrics if m not in all_metrics]
    if bad:
        raise ValueError(f"metric(s) {bad} are not in the ground truth for {chosen_datasets}; "
                         f"available: {all_metrics}")
    selected = [(d, m) for d in chosen_datasets for m in chosen_metrics if (d, m) in present]
    if not selected:
        raise ValueError(f"no ground-truth column matches datasets={chosen_datasets} metrics={chosen_metrics}")
    return selected


def dedupe_isomorphs(index: pd.Index | Sequence, representative: pd.Series) -> np.ndarray:
    """One arch per isomorphism class, in class order: the representative if present, else the
    smallest present member. ``representative`` maps each arch label to its class representative (the
    ``("arch", "representative")`` column of a truth table); an arch it lacks is its own class."""
    arch = np.unique(np.asarray(index))
    if arch.size == 0:
        return arch
    reps = _classes(arch, representative)
    is_rep = reps == arch
    order = np.lexsort((arch, ~is_rep, reps))
    first = np.ones(order.size, dtype=bool)
    first[1:] = reps[order][1:] != reps[order][:-1]
    return arch[order][first]


def _classes(arch: np.ndarray, representative: pd.Series) -> np.ndarray:
    """The representative of each arch (the arch itself where ``representative`` has none)."""
    if not isinstance(representative, pd.Series):
        raise ValueError("representative must be a pandas Series mapping arch -> its class representative "
                         f"(truth[('arch', 'representative')]), got {type(representative).__name__}")
    reps = representative.reindex(arch)
    known = reps.notna().to_numpy()
    out = arch.copy()
    out[known] = reps.to_numpy()[known].astype(arch.dtype)
    return out


def _evaluation_rows(values: pd.Series, target: pd.Series, representatives_only: bool,
                     representative: pd.Series) -> tuple[np.ndarray, int]:
    """Archs evaluated for one column (scored, with a known truth) and how many lack a score."""
    known = values.index[values.index.isin(target.index[np.isfinite(target.to_numpy())])]
    scored = known[values.reindex(known).notna().to_numpy()]
    if representatives_only:
        classes = np.unique(_classes(np.asarray(known), representative)) if len(known) else []
        chosen = dedupe_isomorphs(scored, representative)
        return chosen, len(classes) - chosen.size
    return np.asarray(scored), len(known) - len(scored)


class _Resamples:
    """Bootstrap resamples shared by every statistic of one ``correlate`` call (one set per n)."""

    def __init__(self, bootstrap: int, seed: int, percents: tuple[float, ...]):
        self.bootstrap = bootstrap
        self.seed = seed
        self.percents = percents
        self.names = list(_CORRELATIONS) + [_top_name(p) for p in percents]
        self._counts: dict[int, np.ndarray] = {}

    def counts(self, n: int) -> np.ndarray:
        """n x (1 + bootstrap) multiplicities; column 0 is the original sample."""
        if n not in self._counts:
            rng = np.random.default_rng([self.seed, n])
            drawn = _stats.resample_counts(n, self.bootstrap, rng) if self.bootstrap else np.zeros((n, 0), np.int32)
            self._counts[n] = np.concatenate([np.ones((n, 1), np.int32), drawn], axis=1)
        return self._counts[n]

    def statistics(self, x: np.ndarray, y: np.ndarray, x_cache: dict, y_cache: dict,
                   confidence: float) -> dict[str, float]:
        out: dict[str, float] = {}
        if x.size < _MIN_POINTS:
            for name in self.names:
                out[name] = out[f"{name}_lo"] = out[f"{name}_hi"] = np.nan
            return out
        counts = self.counts(x.size)
        if "ranked" not in x_cache:
            x_cache["ranked"] = _stats.Ranked(x, counts, self.percents)
        if "ranked" not in y_cache:
            y_cache["ranked"] = _stats.Ranked(y, counts, self.percents)
        a, b = x_cache["ranked"], y_cache["ranked"]
        values = {"kendall": _stats.kendall_of(a, b), "spearman": _stats.spearman_of(a, b),
                  "pearson": _stats.pearson_of(a, b)}
        if self.percents:
            tops = _stats.top_precision_of(a, b)
            values.update({_top_name(p): tops[i] for i, p in enumerate(self.percents)})
        for name in self.names:
            series = values[name]
            lo, hi = _percentile_interval(series[1:][np.isfinite(series[1:])], confidence)
            out[name], out[f"{name}_lo"], out[f"{name}_hi"] = float(series[0]), float(lo), float(hi)
        return out


def _check_confidence(confidence: object) -> None:
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _percentile_interval(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    """Central ``confidence`` percentile interval of finite bootstrap values (NaNs when there are none)."""
    if not boot.size:
        return np.nan, np.nan
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(boot, [tail, 100.0 - tail])
    return float(lo), float(hi)


def _note(x: np.ndarray, y: np.ndarray) -> str:
    if x.size < _MIN_POINTS:
        return f"only {x.size} scored architectures; statistics need at least {_MIN_POINTS}"
    if np.unique(x).size == 1:
        return "the proxy gives every architecture the same score; correlations are undefined"
    if np.unique(y).size == 1:
        return "the ground truth is constant on these architectures; correlations are undefined"
    return ""


def _degenerate_mask(scores: pd.DataFrame, flags: pd.DataFrame | None) -> pd.DataFrame:
    """True where ``flags`` marks a score degenerate (bool, or strings/collections containing it)."""
    mask = pd.DataFrame(False, index=scores.index, columns=scores.columns)
    if flags is None:
        return mask
    if not isinstance(flags, pd.DataFrame):
        raise ValueError(f"flags must be a DataFrame shaped like scores, got {type(flags).__name__}")
    for column in flags.columns.intersection(scores.columns):
        marked = flags[column].map(_is_degenerate_flag).reindex(scores.index, fill_value=False)
        mask[column] = marked.astype(bool)
    return mask


def _is_degenerate_flag(entry: object) -> bool:
    if isinstance(entry, (bool, np.bool_)):
        return bool(entry)
    if isinstance(entry, str):  # "degenerate", "a,degenerate" or a JSON list as written by `zcproxy export`
        return re.search(r"\bdegenerate\b", entry) is not None
    if isinstance(entry, (set, frozenset, tuple, list)):
        return "degenerate" in entry
    return False


def _check_frame(scores: object, name: str) -> None:
    if not isinstance(scores, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame (index: arch, one column per proxy output), "
                         f"got {type(scores).__name__}")
    if scores.shape[1] == 0 or scores.shape[0] == 0:
        raise ValueError(f"{name} is empty ({scores.shape[0]} rows x {scores.shape[1]} columns); "
                         "score some architectures first (zcproxy rank)")
    if not (pd.api.types.is_integer_dtype(scores.index.dtype)
            or (len(scores.index) and all(isinstance(k, str) for k in scores.index))):
        raise ValueError(f"{name} must be indexed by architecture labels (the integer or string keys of its search "
                         f"space), got index dtype {scores.index.dtype}")
    if name == "scores":
        text = [c for c in scores.columns if not pd.api.types.is_numeric_dtype(scores[c])]
        if text:
            raise ValueError(f"score column(s) {text} are not numeric; pass proxy values (NaN = not scored)")
    if scores.index.has_duplicates:
        raise ValueError(f"{name} has duplicate arch indices {sorted(set(scores.index[scores.index.duplicated()]))[:5]}")


def _check_truth(truth: object) -> None:
    _check_frame(truth, "truth")
    if not isinstance(truth.columns, pd.MultiIndex) or truth.columns.nlevels != 2 or REPRESENTATIVE not in truth:
        raise ValueError("truth must have (dataset, metric) columns and the ('arch', 'representative') column as "
                         "returned by zcproxy.truth loaders (load_nasrobbench201, load_nb201, load_truth_csv)")


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def _check_topk(topk: Sequence[float]) -> tuple[float, ...]:
    percents = tuple(_as_list(topk, "topk"))
    for p in percents:
        if isinstance(p, bool) or not isinstance(p, (int, float, np.number)) or not 0 < p <= 100:
            raise ValueError(f"topk entries are percentages in (0, 100], got {p!r}")
    return percents


def _as_list(value: object, name: str) -> list:
    if isinstance(value, str):
        return [value]
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"{name} must be a name or a list of names, got {value!r}") from None


def _top_name(percent: float) -> str:
    return f"top{percent:g}"


def _output_columns(percents: tuple[float, ...]) -> list[str]:
    columns = ["proxy", "dataset", "metric", "n", "missing", "degenerate"]
    for name in list(_CORRELATIONS) + [_top_name(p) for p in percents]:
        columns += [name, f"{name}_lo", f"{name}_hi"]
    return columns + ["higher_is_better", "note"]
