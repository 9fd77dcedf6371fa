"""Few-shot accuracy predictor: a tree ensemble on zero-cost scores (plus any extra feature columns).

``fit(scores, truth)`` learns accuracy from K labelled architectures; ``Predictor.predict(scores)`` scores any
others. ``scores`` is a wide table (index = architecture key, one column per proxy output, as
``zcproxy.store.pivot(zcproxy.store.load(path))`` returns); extra columns (graph features such as op counts)
simply join that table and become features. Models are scikit-learn regressors:

* ``random_forest`` (default): ``RandomForestRegressor(n_estimators=100, min_samples_leaf=1,
  max_features=1.0)`` -- the model of GreenFactory (Cortês et al., arXiv 2505.09344) and of the GRAF
  predictor (Kadlecová et al., ICML 2024) on zero-cost proxies.
* ``extra_trees``: ``ExtraTreesRegressor`` with the same settings.
* ``gradient_boosting``: ``GradientBoostingRegressor(n_estimators=300, learning_rate=0.05, max_depth=3,
  subsample=0.8)``.

``params=`` overrides any of these hyperparameters. Everything runs single-threaded (``n_jobs=1``), so a
fit is deterministic given ``seed``.

Features. Raw scores, not ranks: trees split on order only, so any strictly increasing transform of a column
gives the same model, and raw values keep a prediction independent of which other architectures are passed
(a rank transform would be relative to the batch). Each value is mapped by the strictly increasing
``sign(v) * log1p(|v|)`` because scikit-learn trees work in float32 and raw scores overflow it (synflow
reaches 1e49).

Non-finite values, explicitly:

* ``+inf`` / ``-inf`` in a feature (degenerate scores, e.g. an all-zero cell) become a value just above /
  below the finite range of that column *in the training rows* (so +inf ranks with the best training value,
  -inf with the worst); the bounds are stored with the predictor and used again by ``predict``.
* ``NaN`` (a proxy not scored) in a training row, or a non-finite target, drops that row from the fit
  (``Predictor.n_dropped`` counts them); ``predict`` returns NaN for a row with any NaN feature.
* A column that is not numeric raises ValueError.

Saving without pickle: :meth:`Predictor.save` writes JSON holding the training table (raw values, ±inf as
strings), the target, the model name, hyperparameters, seed and library versions; :func:`load` reads only
that JSON and refits, which reproduces the predictions exactly with the same scikit-learn version (a
different version is reported by a warning). No input file can execute code.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FORMAT = "zcproxy.predictor/1"
_MIN_FIT_ROWS = 5
_MODELS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 100, "min_samples_leaf": 1, "max_features": 1.0},
    "extra_trees": {"n_estimators": 100, "min_samples_leaf": 1, "max_features": 1.0},
    "gradient_boosting": {"n_estimators": 300, "learning_rate": 0.05, "max_depth": 3, "subsample": 0.8},
}
MODELS = tuple(_MODELS)


def _estimator(model: str, params: Mapping[str, Any], seed: int):
    from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor

    if model == "random_forest":
        return RandomForestRegressor(random_state=seed, n_jobs=1, **params)
    if model == "extra_trees":
        return ExtraTreesRegressor(random_state=seed, n_jobs=1, **params)
    return GradientBoostingRegressor(random_state=seed, **params)


def _signed_log(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sign(values) * np.log1p(np.abs(values))


def _numeric(scores: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    bad = [c for c in features if not pd.api.types.is_numeric_dtype(scores[c])]
    if bad:
        raise ValueError(f"feature column(s) {bad} are not numeric (dtypes {[str(scores[c].dtype) for c in bad]})")
    return scores[list(features)].to_numpy(dtype=np.float64)


@dataclass
class Predictor:
    """A fitted few-shot predictor. Build it with :func:`fit` or :func:`load`, never directly."""

    model: str
    features: tuple[str, ...]
    params: dict[str, Any]
    seed: int
    target: str
    train_scores: pd.DataFrame  # raw training rows actually used (index = arch key, columns = features)
    train_target: pd.Series
    n_dropped: int = 0
    _low: np.ndarray = field(default=None, repr=False)  # per feature: value standing in for -inf
    _high: np.ndarray = field(default=None, repr=False)  # per feature: value standing in for +inf
    _fitted: Any = field(default=None, repr=False)

    def _matrix(self, raw: np.ndarray) -> np.ndarray:
        x = _signed_log(raw)
        x = np.where(x == np.inf, self._high, x)
        return np.where(x == -np.inf, self._low, x)

    def _refit(self) -> "Predictor":
        x = _signed_log(self.train_scores.to_numpy(dtype=np.float64))
        finite = np.where(np.isfinite(x), x, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-infinite column: nan bounds, fixed below
            lo, hi = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
        lo, hi = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
        self._low, self._high = lo - 1.0, hi + 1.0
        self._fitted = _estimator(self.model, self.params, self.seed)
        self._fitted.fit(self._matrix(self.train_scores.to_numpy(dtype=np.float64)),
                         self.train_target.to_numpy(dtype=np.float64))
        return self

    def predict(self, scores: pd.DataFrame) -> pd.Series:
        """Predicted target for every row of ``scores`` (NaN where a feature is NaN). Extra columns are
        ignored; a table lacking any fitted feature raises ValueError naming the missing ones."""
        if not isinstance(scores, pd.DataFrame):
            raise ValueError(f"scores must be a pandas DataFrame (index = arch), got {type(scores).__name__}")
        absent = [c for c in self.features if c not in scores.columns]
        if absent:
            raise ValueError(f"scores lack the feature column(s) {absent} this predictor was fitted on "
                             f"(it needs {list(self.features)})")
        raw = _numeric(scores, self.features)
        out = np.full(raw.shape[0], np.nan)
        ok = ~np.isnan(raw).any(axis=1)
        if ok.any():
            out[ok] = self._fitted.predict(self._matrix(raw[ok]))
        return pd.Series(out, index=scores.index, name=f"predicted_{self.target}")

    def feature_importances(self) -> pd.Series:
        """Impurity-based importance of every feature (sums to 1), largest first."""
        return pd.Series(self._fitted.feature_importances_, index=list(self.features),
                         name="importance").sort_values(ascending=False)

    def to_json(self) -> str:
        """The JSON document :func:`loads` refits from (training table, target, model, hyperparameters)."""
        import sklearn

        def encode(v: float) -> float | str:
            return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")

        keys = [k.item() if isinstance(k, np.generic) else k for k in self.train_scores.index]
        bad = [k for k in keys if not isinstance(k, (int, str))]
        if bad:
            raise ValueError(f"architecture keys must be int or str to be saved, got {bad[:3]}")
        doc = {
            "format": FORMAT, "model": self.model, "params": self.params, "seed": self.seed,
            "target": self.target, "features": list(self.features), "n_dropped": self.n_dropped,
            "sklearn_version": sklearn.__version__, "index": keys,
            "scores": [[encode(float(v)) for v in row] for row in self.train_scores.to_numpy(dtype=np.float64)],
            "truth": [float(v) for v in self.train_target.to_numpy(dtype=np.float64)],
        }
        return json.dumps(doc, indent=1)

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_json` to ``path`` (parent folders created); returns the path."""
        out = Path(path).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.to_json())
        return out


def with_graph_features(scores: pd.DataFrame, space: Any = "nb201") -> pd.DataFrame:
    """``scores`` with the graph features of its architectures (:func:`zcproxy.space.graph_features`) joined
    as extra columns (a column already in ``scores`` is kept as it is). ``space``: a name or a space object."""
    from ..space import graph_features

    if not isinstance(scores, pd.DataFrame):
        raise ValueError(f"scores must be a pandas DataFrame (index = arch), got {type(scores).__name__}")
    features = graph_features(scores.index, space)
    features.index = scores.index
    return scores.join(features[[c for c in features.columns if c not in scores.columns]])


def fit(scores: pd.DataFrame, truth: pd.Series, *, model: str = "random_forest", seed: int = 0,
        features: Sequence[str] | None = None, params: Mapping[str, Any] | None = None) -> Predictor:
    """Fit a predictor of ``truth`` from the columns of ``scores`` on the architectures both share.

    ``scores``: index = arch key, one column per feature (proxy output or graph feature); ``features``
    selects columns (default: all). ``truth``: Series indexed like ``scores`` (its name is recorded as the
    target). Rows with a NaN feature or a non-finite target are dropped (counted in ``n_dropped``); at least
    5 rows must remain. ``model``: one of :data:`MODELS`; ``params`` overrides its hyperparameters.
    """
    if not isinstance(scores, pd.DataFrame):
        raise ValueError(f"scores must be a pandas DataFrame (index = arch), got {type(scores).__name__}")
    if not isinstance(truth, pd.Series):
        raise ValueError(f"truth must be a pandas Series indexed by arch, got {type(truth).__name__}")
    if model not in _MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    chosen = list(scores.columns if features is None else features)
    absent = [c for c in chosen if c not in scores.columns]
    if absent or not chosen:
        raise ValueError(f"feature column(s) {absent or chosen} are not in scores (columns: {list(scores.columns)})")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"duplicate feature columns in {chosen}")
    raw = pd.DataFrame(_numeric(scores, chosen), index=scores.index, columns=chosen)
    if not raw.index.is_unique:
        raise ValueError("scores has duplicate architecture keys in its index")
    y = pd.to_numeric(truth, errors="coerce").astype(np.float64).reindex(raw.index)
    keep = ~raw.isna().any(axis=1).to_numpy() & np.isfinite(y.to_numpy())
    if keep.sum() < _MIN_FIT_ROWS:
        raise ValueError(f"only {int(keep.sum())} architectures have every feature and a finite target "
                         f"(need {_MIN_FIT_ROWS}); NaN per feature: {raw.isna().sum().to_dict()}")
    hyper = dict(_MODELS[model]) | dict(params or {})
    predictor = Predictor(model=model, features=tuple(chosen), params=hyper, seed=int(seed),
                          target=str(truth.name) if truth.name is not None else "target",
                          train_scores=raw[keep], train_target=y[keep], n_dropped=int((~keep).sum()))
    return predictor._refit()


def loads(text: str) -> Predictor:
    """Rebuild a predictor from :meth:`Predictor.to_json` output by refitting (JSON only, no pickle)."""
    import sklearn

    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a zcproxy predictor document (expected format {FORMAT!r})")
    if doc["model"] not in _MODELS:
        raise ValueError(f"unknown model {doc['model']!r} in predictor document; known: {MODELS}")

    def decode(v: float | str) -> float:
        if isinstance(v, str):
            if v not in ("inf", "-inf"):
                raise ValueError(f"unexpected string {v!r} among predictor training scores")
            return float(v)
        return float(v)

    features = [str(f) for f in doc["features"]]
    table = pd.DataFrame([[decode(v) for v in row] for row in doc["scores"]], index=doc["index"],
                         columns=features, dtype=np.float64)
    target = pd.Series(doc["truth"], index=table.index, dtype=np.float64, name=doc["target"])
    if doc.get("sklearn_version") != sklearn.__version__:
        warnings.warn(f"predictor was fitted with scikit-learn {doc.get('sklearn_version')}, refitting with "
                      f"{sklearn.__version__}: predictions may differ slightly", stacklevel=2)
    predictor = Predictor(model=doc["model"], features=tuple(features), params=dict(doc["params"]),
                          seed=int(doc["seed"]), target=str(doc["target"]), train_scores=table,
                          train_target=target, n_dropped=int(doc.get("n_dropped", 0)))
    return predictor._refit()


def load(path: str | os.PathLike) -> Predictor:
    """Read a predictor saved by :meth:`Predictor.save` (JSON; refit on load, see :func:`loads`)."""
    return loads(Path(path).expanduser().read_text())
