"""Predictor-guided search: a few-shot accuracy predictor chooses which architectures to label next."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from .objective import Objective
from .random_search import _rng
from .result import SearchResult

_MIN_LABELS = 5  # zcproxy.validate.predictor.fit needs 5 labelled rows


def predictor_search(objective: Objective, *, seed: int = 0, features: pd.DataFrame, initial: int = 20,
                     batch: int = 10, model: str = "random_forest",
                     params: Mapping[str, Any] | None = None) -> SearchResult:
    """Few-shot search: label ``initial`` random domain archs, then repeatedly fit a predictor on every
    label so far and label the ``batch`` unlabelled archs it predicts best, until the budget is spent.

    The objective is the truth source: each new evaluation is one label and costs one unit of the budget,
    the ``initial`` random labels included (``Budget(100)`` with ``initial=20`` = 20 random labels + 80
    chosen by the predictor). Features are free: ``features`` is a table indexed by representative labels
    (e.g. stored zero-cost scores joined with :func:`zcproxy.validate.predictor.with_graph_features`) that
    must hold a finite-or-±inf value in every column for every domain architecture. Each round fits
    :func:`zcproxy.validate.predictor.fit` (``model``, ``params``, ``seed``) on the oriented scores of all
    evaluated archs (degenerate ones, scored -inf, are left out of the fit); unlabelled archs are ranked by
    prediction, ties by domain order. While fewer than 5 finite labels exist the next batch is drawn at
    random. Deterministic given ``seed``; returns the best evaluated architecture.
    """
    from ..validate.predictor import MODELS, fit

    rng = _rng(seed)
    for name, value in (("initial", initial), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if initial < _MIN_LABELS:
        raise ValueError(f"initial must be at least {_MIN_LABELS} (the predictor fits on at least "
                         f"{_MIN_LABELS} labels), got {initial}")
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if params is not None and not isinstance(params, Mapping):
        raise ValueError(f"params must be a mapping of model hyperparameters, got {type(params).__name__}")
    table = _aligned(features, objective)
    reps = table.index
    while objective.evaluations < initial and not objective.exhausted:
        objective(objective.domain.sample(rng, exclude=objective.evaluated))
    while not objective.exhausted:
        evaluated = objective.evaluated
        left = np.fromiter((r not in evaluated for r in reps.tolist()), dtype=bool, count=len(reps))
        labels = pd.Series({e.arch: e.score for e in objective.history}, dtype=np.float64)
        finite = labels[np.isfinite(labels.to_numpy())]
        if len(finite) < _MIN_LABELS:
            picks = rng.permutation(reps[left])[:batch].tolist()
        else:
            predictor = fit(table.loc[finite.index], finite, model=model, seed=int(seed), params=params)
            predicted = predictor.predict(table[left]).to_numpy()
            picks = reps[left][np.argsort(-predicted, kind="stable")[:batch]].tolist()
        for arch in picks:
            if objective.exhausted:
                break
            objective(arch)
    return SearchResult.from_objective("predictor", objective, seed, objective.best().arch, initial=int(initial),
                                       batch=int(batch), model=model, features=int(table.shape[1]))


def _aligned(features: pd.DataFrame, objective: Objective) -> pd.DataFrame:
    """``features`` rows of every domain representative, in domain order; ValueError when any is missing."""
    if not isinstance(features, pd.DataFrame) or features.shape[1] == 0:
        raise ValueError("features must be a non-empty pandas DataFrame indexed by architecture "
                         f"(one column per feature), got {type(features).__name__}")
    domain = objective.domain
    if domain.open:
        raise ValueError("predictor search needs a finite domain (every candidate needs features); "
                         f"objective {objective.name!r} searches an open space")
    if not features.index.is_unique:
        raise ValueError("features has duplicate architectures in its index")
    reps = pd.Index(domain.representatives.tolist())
    absent = reps.difference(features.index)
    table = features.reindex(reps)
    incomplete = table.index[table.isna().any(axis=1).to_numpy()].difference(absent)
    if len(absent) or len(incomplete):
        raise ValueError(f"features are missing for {len(absent)} and NaN for {len(incomplete)} of the "
                         f"{len(reps)} domain architectures of {objective.name!r} (e.g. "
                         f"{list(absent[:3]) + list(incomplete[:3])}); every candidate needs every feature")
    return table
