"""Score tables for the studies: the committed store, or its committed CSV export when the store cannot be read.

The study stores are SQLite files whose schema may move ahead of (or behind) ``zcproxy.store`` in a working
checkout; the committed long-format CSV next to each store (``scores_<dataset>.csv``, written by
``zcproxy.store.export``) holds the same values, so a study falls back to it and says which one it read.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd

import zcproxy.store

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    # name: (store, committed CSV export of it)
    "all_representatives": (ROOT / "results/correlation/all_representatives/stores/leaders_cifar10.sqlite",
                            ROOT / "results/correlation/all_representatives/scores_cifar10.csv"),
    "sample_1000": (ROOT / "results/correlation/stores/study_cifar10.sqlite",
                    ROOT / "results/correlation/scores_cifar10.csv"),
}


def wide_scores(name: str) -> tuple[pd.DataFrame, str]:
    """Wide score table (index arch, one column per proxy output) of a study set, and the file it came from."""
    store, csv = SETS[name]
    try:
        return zcproxy.store.pivot(zcproxy.store.load(store)), str(store.relative_to(ROOT))
    except Exception as exc:  # schema migration in progress: read the committed export instead
        reason = f"{type(exc).__name__}: {exc}"
    long = pd.read_csv(csv)
    hashes = long.groupby("proxy")["settings_hash"].nunique()
    if (hashes > 1).any():
        raise ValueError(f"{csv}: outputs with several settings {list(hashes[hashes > 1].index)}")
    long["value"] = long["value"].astype(np.float64)
    wide = long.pivot(index="arch", columns="proxy", values="value").sort_index()
    wide.columns.name = None
    wide.index = wide.index.astype(np.int64)
    # settings are stored as a Python dict literal; literal_eval never executes code
    assert all(isinstance(ast.literal_eval(s), dict) for s in long["settings"].head(3))
    return wide[sorted(wide.columns)], f"{csv.relative_to(ROOT)} (store unreadable: {reason[:120]})"
