"""Study writers: correlation tables, benchmark agreement and ensembles as CSV, markdown and figures.

Library functions taking plain values (score frames, truth tables, an output folder, settings); the
``zcproxy correlate`` command and the study scripts call them.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

__all__ = ["load_scores", "write_agreement", "write_correlations", "write_ensembles", "summary", "markdown"]


def load_scores(stores: Sequence[str | os.PathLike], *, settings: Mapping | None = None, space: str | None = None,
                proxies: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(wide scores, wide degenerate mask, long frame) of one or more stores combined.

    The first store wins for a key stored in several. ``settings`` keeps matching scores (see
    :func:`zcproxy.store.pivot`); ``space`` picks one search space; ``proxies`` keeps those columns.
    """
    from .. import store

    if not stores:
        raise ValueError("no score store given; pass at least one store path")
    long = pd.concat([store.load(p) for p in stores], ignore_index=True)
    long = long.drop_duplicates(["space", "arch", "proxy", "settings_hash"], keep="first")
    scores = store.pivot(long, settings=settings, space=space)
    degenerate = store.pivot(long.assign(value=[float("degenerate" in f) for f in long["flags"]]),
                             settings=settings, space=space) > 0
    if scores.empty:
        raise ValueError(f"no scores left in {[str(p) for p in stores]} after the settings filter {dict(settings or {})}")
    if proxies:
        unknown = [p for p in proxies if p not in scores.columns]
        if unknown:
            raise ValueError(f"proxies {unknown} are not in the store(s); stored outputs: {list(scores.columns)}")
        scores, degenerate = scores[list(proxies)], degenerate[list(proxies)]
    return scores, degenerate, long


def write_agreement(out: str | os.PathLike, truth_robust: pd.DataFrame, truth_standard: pd.DataFrame) -> list[Path]:
    """``benchmark_agreement.{csv,md}``: rank agreement of the benchmarks' own metrics."""
    from .sanity import benchmark_agreement

    folder = Path(out)
    table = benchmark_agreement(truth_robust, truth_standard)
    table.to_csv(folder / "benchmark_agreement.csv", index=False, float_format="%.6f")
    text = ("Rank agreement of ground-truth metrics over the 6,466 isomorphism representatives "
            "(NAS-RobBench-201: adversarial training; NAS-Bench-201: standard training, 200 epochs).\n\n"
            + markdown(table, floatfmt=".4f") + "\n")
    (folder / "benchmark_agreement.md").write_text(text)
    return [folder / "benchmark_agreement.csv", folder / "benchmark_agreement.md"]


def write_correlations(scores: pd.DataFrame, truth: pd.DataFrame, out: str | os.PathLike, *, stem: str,
                       truth_name: str, degenerate: pd.DataFrame | None = None,
                       datasets: Sequence[str] | None = None, metrics: Sequence[str] | None = None,
                       orientation: Mapping[str, bool] | None = None, representatives_only: bool = True,
                       bootstrap: int = 1000, seed: int = 0, sources: Sequence[str] = (),
                       settings: Mapping | None = None, scatter: int = 6,
                       ensemble: str | None = None) -> tuple[pd.DataFrame, str, list[Path]]:
    """Correlate ``scores`` with ``truth`` and write ``<stem>.csv``, ``<stem>.md``, a heatmap, scatter plots
    of the ``scatter`` best proxies per dataset and, with ``ensemble`` (a metric), held-out rank ensembles.

    Returns (the full table, its markdown summary, the files written).
    """
    from . import correlate
    from .plots import plot_heatmap, plot_scatter

    folder = Path(out)
    orientation = dict(orientation or {})
    if not len(scores.index.intersection(truth.index)):
        raise ValueError(f"none of the {len(scores)} scored architectures is in the ground truth {truth_name!r} "
                         f"({len(truth)} architectures); score the truth's own architectures, e.g. --archs truth")
    table = correlate(scores, truth, datasets=datasets, metrics=metrics, orientation=orientation,
                      representatives_only=representatives_only, bootstrap=bootstrap, seed=seed, flags=degenerate)
    table.to_csv(folder / f"{stem}.csv", index=False, float_format="%.6f")
    text = markdown(summary(table), floatfmt=".3f")
    header = (f"Proxy vs {truth_name} accuracy ({'one per isomorphism class' if representatives_only else 'all scored architectures'}"
              f"; 95% bootstrap CI, {bootstrap} resamples, seed {seed}"
              + (f"; stores: {', '.join(str(s) for s in sources)}" if sources else "")
              + (f"; settings {dict(settings)}" if settings else "") + ")\n\n")
    (folder / f"{stem}.md").write_text(header + text + "\n")
    written = [folder / f"{stem}.csv", folder / f"{stem}.md", plot_heatmap(table, folder / f"{stem}_heatmap.png")]
    if scatter:
        for dataset in dict.fromkeys(table["dataset"]):
            first = table[table["dataset"] == dataset]
            metric = first["metric"].iloc[0] if "pgd_8" not in set(first["metric"]) else "pgd_8"
            best = (first[first["metric"] == metric].dropna(subset=["kendall"])
                    .sort_values("kendall", ascending=False)["proxy"].head(scatter).tolist())
            if best:
                written.append(plot_scatter(scores, truth, best, folder / f"{stem}_scatter_{dataset}_{metric}.png",
                                            dataset=dataset, metric=metric, orientation=orientation,
                                            representatives_only=representatives_only))
    if ensemble:
        for dataset in dict.fromkeys(table["dataset"]):
            written += write_ensembles(scores, truth, folder, stem=stem, dataset=dataset, metric=ensemble, seed=seed,
                                       orientation=orientation, representatives_only=representatives_only)[1]
    return table, text, written


ENSEMBLE_COVERAGE = 0.9
"""An output joins the ensemble candidates when scored on at least this share of the best-covered output's archs."""
ENSEMBLE_SEARCHES = (1, 3)
"""``exhaustive`` values of the ensemble pages: plain greedy selection, and the best subset of up to three first."""


def write_ensembles(scores: pd.DataFrame, truth: pd.DataFrame, out: str | os.PathLike, *, stem: str, dataset: str,
                    metric: str, seed: int = 0, orientation: Mapping[str, bool] | None = None,
                    representatives_only: bool = True) -> tuple[str, list[Path]]:
    """``<stem>_ensemble_<dataset>_<metric>.{csv,md}``: rank ensembles fitted on one half, judged on the other.

    Candidates are the outputs scored on at least :data:`ENSEMBLE_COVERAGE` of the most-scored output's
    architectures, so a proxy still being scored does not shrink the ensembles to its few architectures; the
    page names the outputs left out."""
    from .ensemble import cross_validated

    if (dataset, metric) not in truth.columns:
        raise ValueError(f"ensemble metric {metric!r}: the truth has no such metric for {dataset}")
    counts = scores.notna().sum()
    candidates = [c for c in scores.columns if counts[c] >= ENSEMBLE_COVERAGE * counts.max()]
    sparse = [f"{c} ({counts[c]:,} of {counts.max():,})" for c in scores.columns if c not in candidates]
    folds = cross_validated(scores, truth, dataset, metric, seed, orientation=orientation, candidates=candidates,
                            representatives_only=representatives_only, exhaustive=ENSEMBLE_SEARCHES)
    path = Path(out) / f"{stem}_ensemble_{dataset}_{metric}"
    folds.to_csv(path.with_suffix(".csv"), index=False, float_format="%.6f")
    text = markdown(folds, floatfmt=".3f")
    left_out = (f" Left out as scored on too few architectures so far: {', '.join(sparse)}." if sparse else "")
    path.with_suffix(".md").write_text(
        f"Ensembles for {dataset} {metric}: members and weights chosen on one half of the "
        f"architectures (seed {seed}), Kendall tau reported on the other half. `exhaustive` 1 = greedy forward "
        f"selection; {ENSEMBLE_SEARCHES[-1]} = the best of every subset of up to {ENSEMBLE_SEARCHES[-1]} "
        f"members first, then greedy steps. `logrank` rows are label-free predictors once their members are "
        f"chosen (equal weights).{left_out}\n\n{text}\n")
    return text, [path.with_suffix(".csv"), path.with_suffix(".md")]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Compact view: each statistic as 'value [lo, hi]'."""
    view = table[["proxy", "dataset", "metric", "n", "missing", "degenerate"]].copy()
    for stat in ("kendall", "spearman", "pearson") + tuple(c for c in table.columns if c.startswith("top")
                                                           and not c.endswith(("_lo", "_hi"))):
        view[stat] = [_with_ci(v, lo, hi) for v, lo, hi in zip(table[stat], table[f"{stat}_lo"], table[f"{stat}_hi"])]
    return pd.DataFrame(view)


def _with_ci(value: float, lo: float, hi: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{value:.3f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown(frame: pd.DataFrame, floatfmt: str) -> str:
    """A GitHub markdown table."""
    from tabulate import tabulate

    return tabulate(frame, headers="keys", tablefmt="github", showindex=False, floatfmt=floatfmt)
