"""Judge chosen architectures against the benchmark: true accuracies, percentile and regret."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..space import DEFAULT_SPACE, SearchSpace, get_space, label
from ..truth import REPRESENTATIVE

REPORTED_METRICS: tuple[str, ...] = ("clean", "pgd_8", "autoattack")


def assess(archs: Iterable, truth: pd.DataFrame, *, dataset: str = "cifar10", target: str = "pgd_8",
           metrics: Sequence[str] = REPORTED_METRICS, space: str | SearchSpace = DEFAULT_SPACE) -> pd.DataFrame:
    """One row per architecture: representative, arch string, true ``metrics`` (fractions), and for the
    ``target`` metric the percentile and regret among the truth table's representatives R (NB201: the
    6,466 classes; a table keyed in another space: its rows that are their own representative):

    percentile = 100 · #{r in R : acc(r) ≤ acc(a)} / |R|  (100 = the benchmark's best);
    regret = max_r acc(r) − acc(a)  (0 = optimal).

    ``metrics`` the truth does not have are left out (the target must be there).
    """
    sp = get_space(space)
    metrics = [m for m in metrics if (dataset, m) in truth.columns or m == target]
    wanted = list(dict.fromkeys([*metrics, target]))
    missing = [(dataset, m) for m in wanted if (dataset, m) not in truth.columns]
    if missing:
        raise ValueError(f"the truth table lacks columns {missing}; datasets/metrics available: "
                         f"{sorted({c for c in truth.columns if c[0] != 'arch'})}")
    own = truth[REPRESENTATIVE]
    reps = own.index[(own.to_numpy() == own.index.to_numpy())]
    pool = truth[(dataset, target)].reindex(reps).to_numpy(dtype=np.float64)
    if np.isnan(pool).any():
        raise ValueError(f"the truth table lacks ({dataset!r}, {target!r}) for some representatives")
    ordered = np.sort(pool)
    best = float(ordered[-1])
    rows = []
    for arch in archs:
        key = sp.representative(sp.key(arch))
        rep = label(key)
        row: dict = {"arch": rep, "arch_str": sp.describe(key) if hasattr(sp, "describe") else key}
        for m in metrics:
            row[m] = float(truth.at[rep, (dataset, m)])
        found = float(truth.at[rep, (dataset, target)])
        row["percentile"] = 100.0 * np.searchsorted(ordered, found, side="right") / len(ordered)
        row["regret"] = best - found
        rows.append(row)
    columns = ["arch", "arch_str", *metrics, "percentile", "regret"]
    return pd.DataFrame(rows, columns=columns)
