"""Ground-truth sanity: how much the benchmark's own metrics agree with each other.

If clean, FGSM, PGD and AutoAttack accuracies ranked architectures alike, a proxy could not be "good for
robustness" without being good for clean accuracy; these numbers bound what a proxy table can show.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import scipy.stats

from ..truth import REPRESENTATIVE
from .correlation import dedupe_isomorphs, truth_columns

ROBUST_SOURCE = "NAS-RobBench-201"
STANDARD_SOURCE = "NAS-Bench-201"


def benchmark_agreement(truth_rob: pd.DataFrame, truth_nb201: pd.DataFrame | None = None, *,
                        representatives_only: bool = True) -> pd.DataFrame:
    """Kendall tau-b, Spearman rho and Pearson r between ground-truth metrics, per dataset.

    Pairs: every two metrics of ``truth_rob`` (adversarial training: clean, FGSM, PGD, AutoAttack) within
    a dataset, and, with ``truth_nb201``, every ``truth_rob`` metric against NAS-Bench-201 standard-training
    clean accuracy of the same dataset. Computed over the isomorphism representatives (each trained
    network once) unless ``representatives_only=False``.
    Returns columns dataset, source_a, metric_a, source_b, metric_b, n, kendall, spearman, pearson.
    """
    rob_targets = truth_columns(truth_rob)
    rows_index = _rows(truth_rob.index, representatives_only, truth_rob[REPRESENTATIVE])
    rows = []
    for dataset in dict.fromkeys(d for d, _ in rob_targets):
        metrics = [m for d, m in rob_targets if d == dataset]
        for a, b in combinations(metrics, 2):
            rows.append(_pair(dataset, (ROBUST_SOURCE, a, truth_rob[(dataset, a)]),
                              (ROBUST_SOURCE, b, truth_rob[(dataset, b)]), rows_index))
        if truth_nb201 is None:
            continue
        standard = [(d, m) for d, m in truth_columns(truth_nb201) if d == dataset]
        for _, m_std in standard:
            for a in metrics:
                rows.append(_pair(dataset, (ROBUST_SOURCE, a, truth_rob[(dataset, a)]),
                                  (STANDARD_SOURCE, m_std, truth_nb201[(dataset, m_std)]), rows_index))
    return pd.DataFrame(rows, columns=["dataset", "source_a", "metric_a", "source_b", "metric_b", "n",
                                       "kendall", "spearman", "pearson"])


def _rows(index: pd.Index, representatives_only: bool, representative: pd.Series) -> np.ndarray:
    arch = np.asarray(index)
    return dedupe_isomorphs(arch, representative) if representatives_only else arch


def _pair(dataset: str, first: tuple[str, str, pd.Series], second: tuple[str, str, pd.Series],
          rows: np.ndarray) -> dict[str, object]:
    (source_a, metric_a, a), (source_b, metric_b, b) = first, second
    x = a.reindex(rows).to_numpy(dtype=np.float64)
    y = b.reindex(rows).to_numpy(dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    row: dict[str, object] = {"dataset": dataset, "source_a": source_a, "metric_a": metric_a,
                              "source_b": source_b, "metric_b": metric_b, "n": int(ok.sum())}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError(f"{dataset}: {source_a} {metric_a} vs {source_b} {metric_b} has {x.size} architectures "
                         "with finite values (or a constant column); the ground truth is incomplete")
    row["kendall"] = float(scipy.stats.kendalltau(x, y).statistic)
    row["spearman"] = float(scipy.stats.spearmanr(x, y).statistic)
    row["pearson"] = float(scipy.stats.pearsonr(x, y).statistic)
    return row
