"""Judge chosen architectures against the benchmark: true accuracies, percentile and regret."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..space import NB201

REPORTED_METRICS: tuple[str, ...] = ("clean", "pgd_8", "autoattack")


def assess(archs: Iterable[int], truth: pd.DataFrame, *, dataset: str = "cifar10", target: str = "pgd_8",
           metrics: Sequence[str] = REPORTED_METRICS) -> pd.DataFrame:
    """One row per architecture: representative, arch string, true ``metrics`` (fractions), and for the
    ``target`` metric the percentile and regret among all 6,466 representatives:

    percentile = 100 · #{representatives r : acc(r) ≤ acc(a)} / 6,466  (100 = the benchmark's best);
    regret = max_r acc(r) − acc(a)  (0 = optimal).
    """
    wanted = list(dict.fromkeys([*metrics, target]))
    missing = [(dataset, m) for m in wanted if (dataset, m) not in truth.columns]
    if missing:
        raise ValueError(f"the truth table lacks columns {missing}; datasets/metrics available: "
                         f"{sorted({c for c in truth.columns if c[0] != 'arch'})}")
    reps = np.asarray(NB201.unique())
    pool = truth[(dataset, target)].reindex(reps).to_numpy(dtype=np.float64)
    if np.isnan(pool).any():
        raise ValueError(f"the truth table lacks ({dataset!r}, {target!r}) for some representatives")
    ordered = np.sort(pool)
    best = float(ordered[-1])
    rows = []
    for arch in archs:
        rep = NB201.representative(int(arch))
        row: dict = {"arch": rep, "arch_str": NB201.arch(rep)}
        for m in metrics:
            row[m] = float(truth.at[rep, (dataset, m)])
        found = float(truth.at[rep, (dataset, target)])
        row["percentile"] = 100.0 * np.searchsorted(ordered, found, side="right") / len(ordered)
        row["regret"] = best - found
        rows.append(row)
    columns = ["arch", "arch_str", *metrics, "percentile", "regret"]
    return pd.DataFrame(rows, columns=columns)
