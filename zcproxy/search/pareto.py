"""Multi-objective selection: non-dominated sorting (Deb et al., NSGA-II, IEEE TEC 2002)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _oriented(points: np.ndarray | Sequence[Sequence[float]], maximize: Sequence[bool]) -> np.ndarray:
    values = np.asarray(points, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"points must be a 2-D array (architectures x criteria), got shape {values.shape}")
    if values.shape[1] != len(maximize):
        raise ValueError(f"points have {values.shape[1]} criteria but maximize lists {len(maximize)}")
    if np.isnan(values).any():
        raise ValueError("points contain NaN; drop or fix those architectures before Pareto sorting")
    return np.where(np.asarray(maximize, dtype=bool), values, -values)


def non_dominated_sort(points: np.ndarray | Sequence[Sequence[float]], maximize: Sequence[bool]) -> list[list[int]]:
    """Row indices grouped into Pareto fronts, best front first.

    Row a dominates row b when a is at least as good on every criterion and strictly better on one
    (``maximize[j]`` tells the direction of criterion j). Equal rows share a front.
    """
    values = _oriented(points, maximize)
    n = len(values)
    if n == 0:
        return []
    geq = (values[:, None, :] >= values[None, :, :]).all(axis=2)
    gt = (values[:, None, :] > values[None, :, :]).any(axis=2)
    dominates = geq & gt  # dominates[a, b]: a dominates b
    dominated_by = dominates.sum(axis=0)
    fronts: list[list[int]] = []
    current = [i for i in range(n) if dominated_by[i] == 0]
    while current:
        fronts.append(current)
        following = []
        for a in current:
            for b in np.flatnonzero(dominates[a]):
                dominated_by[b] -= 1
                if dominated_by[b] == 0:
                    following.append(int(b))
        current = sorted(following)
    return fronts


def pareto_front(points: np.ndarray | Sequence[Sequence[float]], maximize: Sequence[bool]) -> list[int]:
    """Row indices of the non-dominated points (the first front), ascending."""
    fronts = non_dominated_sort(points, maximize)
    return fronts[0] if fronts else []
