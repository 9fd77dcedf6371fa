"""Validation of proxies against ground truth: correlations, benchmark sanity, ensembles and plots.

>>> from zcproxy.validate import correlate            # doctest: +SKIP
>>> table = correlate(scores, truth, datasets=["cifar10"], metrics=["pgd_8"])   # doctest: +SKIP
"""
from __future__ import annotations

from .correlation import compare, correlate, dedupe_isomorphs, orientations, statistic_names, truth_columns

__all__ = ["compare", "correlate", "dedupe_isomorphs", "orientations", "statistic_names", "truth_columns",
           "benchmark_agreement", "fit_ensemble", "cross_validated", "Ensemble"]


def __getattr__(name: str):
    # sanity/ensemble load on first use; plots (matplotlib) and train are imported explicitly.
    if name == "benchmark_agreement":
        from .sanity import benchmark_agreement

        return benchmark_agreement
    if name in ("fit_ensemble", "cross_validated", "Ensemble"):
        from . import ensemble

        return getattr(ensemble, name)
    raise AttributeError(f"module 'zcproxy.validate' has no attribute {name!r}")
