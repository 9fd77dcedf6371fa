"""Sources of objective values: a fixed table (stored scores, an ensemble, the benchmark truth for the
oracle) or live scoring with ``zcproxy.score`` (optionally cached in a store).

Table lookups cost 0 compute seconds; live scoring costs its measured wall time. Every source works on
isomorphism representatives and exposes the :class:`~zcproxy.search.domain.Domain` it can evaluate.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..space import DEFAULT_SPACE, SearchSpace, get_space, label
from ..truth import REPRESENTATIVE
from .domain import Domain


def orientation_of(output: str, override: Mapping[str, bool] | None = None) -> bool:
    """higher_is_better of a proxy output: ``override`` first, else the proxy registry."""
    if override and output in override:
        return bool(override[output])
    from .. import proxies

    known = proxies.outputs()
    if output not in known:
        raise ValueError(f"unknown proxy output {output!r}: not in the proxy registry "
                         f"({', '.join(sorted(known))}); pass orientation={{{output!r}: True|False}} for other columns")
    return known[output][1]


class TableSource:
    """Values from a fixed table keyed by architecture (stored scores, ensemble, oracle); 0 s per lookup."""

    def __init__(self, name: str, values: Mapping | pd.Series, *, higher_is_better: bool = True,
                 degenerate: Iterable = (), domain: Iterable | None = None,
                 space: str | SearchSpace = DEFAULT_SPACE):
        sp = get_space(space)
        items = values.items() if isinstance(values, (pd.Series, dict)) else dict(values).items()
        by_rep: dict = {}
        for arch, value in items:
            key = sp.key(arch.item() if isinstance(arch, np.generic) else arch)
            value = float(value)
            if math.isnan(value):
                raise ValueError(f"{name}: value of architecture {label(key)} is NaN; drop it or fix the table")
            rep = sp.representative(key)
            if key == rep or label(rep) not in by_rep:
                by_rep[label(rep)] = value
        if domain is not None:
            allowed = set(Domain(domain, sp).representatives.tolist())
            by_rep = {a: v for a, v in by_rep.items() if a in allowed}
        self.name = name
        self.higher_is_better = bool(higher_is_better)
        self.values = by_rep
        self.domain = Domain(by_rep, sp)
        self.degenerate = frozenset(self.domain.rep(a) for a in degenerate)

    def lookup(self, rep: int) -> tuple[float, float, bool]:
        return self.values[rep], 0.0, rep in self.degenerate


class LiveSource:
    """Scores one proxy output with ``zcproxy.score``; with a store, stored values are reused (0 s) and new
    ones written back. Settings (and the store key) come from ``zcproxy.scoring.planned_settings``."""

    def __init__(self, output: str, *, dataset: str = "cifar10", seed: int = 0, batch_size: int = 64,
                 stand_in: bool = False, options: Mapping[str, Any] | None = None, data_dir: str | None = None,
                 device: str = "cpu", store: Any = None, domain: Iterable | None = None,
                 orientation: Mapping[str, bool] | None = None, space: str | SearchSpace = DEFAULT_SPACE):
        from .. import proxies
        from ..scoring import planned_settings

        known = proxies.outputs()
        if output not in known:
            raise ValueError(f"unknown proxy output {output!r}; available: {', '.join(sorted(known))}")
        self.output = output
        self.proxy = known[output][0]
        self.name = output
        self.higher_is_better = orientation_of(output, orientation)
        self.space = get_space(space)
        self.domain = Domain(domain, self.space)
        self._kwargs = dict(dataset=dataset, seed=seed, batch_size=batch_size, stand_in=stand_in,
                            data_dir=data_dir, device=device, space=self.space, **dict(options or {}))
        self.store = store
        self.settings = planned_settings(self.proxy, dataset=dataset, seed=seed, batch_size=batch_size,
                                         stand_in=stand_in, space_settings=self.space.settings(),
                                         **dict(options or {}))
        if store is not None:
            from ..store import settings_hash

            self.settings_hash = settings_hash(self.settings)

    def lookup(self, rep: int) -> tuple[float, float, bool]:
        if self.store is not None:
            stored = self.store.get(self.space.key(rep), self.output, self.settings_hash, space=self.space.name)
            if stored is not None:
                return stored, 0.0, self.space.is_degenerate(self.space.key(rep))
        from ..scoring import score

        start = time.perf_counter()
        results = score(rep, [self.proxy], strict=True, **self._kwargs)
        seconds = time.perf_counter() - start
        if self.store is not None:
            self.store.put(self.space.key(rep), results, device=str(self._kwargs["device"]), space=self.space.name)
        result = results[self.output]
        return result.value, seconds, result.degenerate


# ------------------------------------------------------------------------------------------ stored scores


def read_scores(path: str | os.PathLike) -> pd.DataFrame:
    """Long score table of a store (``.sqlite``) or of its long CSV export (columns arch, proxy, value, ...)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"score store {path} does not exist; score architectures first "
                                "(`zcproxy score --store PATH`) or pass the right --store")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path)
        missing = [c for c in ("arch", "proxy", "value") if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: a long score CSV needs columns arch, proxy, value; it lacks {missing}")
        if "flags" in frame.columns:
            frame["flags"] = [tuple(json.loads(f)) if isinstance(f, str) else () for f in frame["flags"]]
        if "settings" in frame.columns:
            frame["settings"] = [json.loads(s) if isinstance(s, str) else {} for s in frame["settings"]]
        return frame
    from ..store import load

    return load(path)


def stored_table(scores: pd.DataFrame, outputs: Sequence[str], *, settings: Mapping[str, Any] | None = None,
                 space: str | SearchSpace = DEFAULT_SPACE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(values, degenerate flags): wide frames, index arch, one column per output, from a long score table.

    ``settings`` keeps rows whose settings agree on every listed key they have; an output stored under
    several settings hashes after filtering raises ValueError asking for a filter.
    """
    frame = scores[scores["proxy"].isin(list(outputs))]
    if "space" in frame.columns:
        frame = frame[frame["space"] == get_space(space).name]
    if settings and "settings" in frame.columns:
        frame = frame[[all(s.get(k, v) == v for k, v in settings.items()) for s in frame["settings"]]]
    absent = [o for o in outputs if o not in set(frame["proxy"])]
    if absent:
        have = sorted(set(scores["proxy"]))
        raise ValueError(f"no stored scores for {absent}" + (f" with settings {dict(settings)}" if settings else "")
                         + f"; the store has: {', '.join(have) or 'nothing'}")
    if "settings_hash" in frame.columns:
        for output, group in frame.groupby("proxy"):
            if group["settings_hash"].nunique() > 1:
                raise ValueError(f"proxy output {output!r} is stored under {group['settings_hash'].nunique()} "
                                 "different settings; choose one with a settings filter (CLI: --setting key=value)")
    flags = frame["flags"] if "flags" in frame.columns else pd.Series([()] * len(frame), index=frame.index)
    frame = frame.assign(degenerate=[("degenerate" in f) or not math.isfinite(v)
                                     for f, v in zip(flags, frame["value"])])
    values = frame.pivot(index="arch", columns="proxy", values="value")[list(outputs)]
    degenerate = frame.pivot(index="arch", columns="proxy", values="degenerate")[list(outputs)]
    return values, degenerate.fillna(False).astype(bool)


def store_source(scores: pd.DataFrame, output: str, *, settings: Mapping[str, Any] | None = None,
                 orientation: Mapping[str, bool] | None = None,
                 space: str | SearchSpace = DEFAULT_SPACE) -> TableSource:
    """Stored values of one proxy output; the domain is the set of scored architectures."""
    values, degenerate = stored_table(scores, [output], settings=settings, space=space)
    column = values[output].dropna()
    flagged = degenerate[output].reindex(column.index).fillna(False)
    return TableSource(output, column, higher_is_better=orientation_of(output, orientation),
                       degenerate=column.index[flagged.to_numpy(bool)], space=space)


def ensemble_source(values: pd.DataFrame, ensemble: Any, *, orientation: Mapping[str, bool] | None = None,
                    degenerate: pd.DataFrame | None = None, space: str | SearchSpace = DEFAULT_SPACE) -> TableSource:
    """An ensemble over stored scores: a fitted :class:`zcproxy.validate.ensemble.Ensemble` or weights
    ``{output: weight}`` for the AZ-NAS mean-of-log-ranks aggregate Σ_i w_i log(rank_i / M).

    Ranks are taken over the architectures with every member scored (so ensembles need a store: a rank
    is relative to the scored pool); degenerate or non-finite member values rank worst.
    """
    from ..validate.ensemble import Ensemble

    if not isinstance(ensemble, Ensemble):
        weights = dict(ensemble)
        if not weights:
            raise ValueError("an ensemble needs at least one member")
        bad = {m: w for m, w in weights.items() if not (math.isfinite(float(w)) and float(w) >= 0)}
        if bad or sum(float(w) for w in weights.values()) <= 0:
            raise ValueError(f"ensemble weights must be non-negative with a positive sum, got {weights}")
        ensemble = Ensemble("logrank", tuple(weights), tuple(float(w) for w in weights.values()),
                            {m: orientation_of(m, orientation) for m in weights})
    members = list(ensemble.members)
    absent = [m for m in members if m not in values.columns]
    if absent:
        raise ValueError(f"no stored scores for ensemble member(s) {absent}")
    table = values[members].dropna().astype(np.float64)
    if table.empty:
        raise ValueError(f"no architecture has a stored value for every ensemble member {members}")
    if degenerate is not None:
        flagged = degenerate.reindex(index=table.index, columns=members).fillna(False).astype(bool)
        table = table.mask(flagged, np.inf)  # an infinite value ranks worst in the ensemble
    predicted = ensemble.predict(table)
    name = f"{ensemble.method}(" + "+".join(members) + ")"
    return TableSource(name, predicted, higher_is_better=True, space=space)


def oracle_source(truth: pd.DataFrame, *, dataset: str = "cifar10", metric: str = "pgd_8",
                  domain: Iterable | None = None, space: str | SearchSpace = DEFAULT_SPACE) -> TableSource:
    """The benchmark's true accuracy as the objective (oracle mode), over the truth's representatives."""
    column = (dataset, metric)
    if column not in truth.columns:
        raise ValueError(f"the truth table has no column {column}; it has "
                         f"{sorted({c for c in truth.columns if c[0] != 'arch'})}")
    own = truth[REPRESENTATIVE]
    reps = own.index[(own.to_numpy() == own.index.to_numpy())]
    values = truth[column].reindex(reps)
    if values.isna().any():
        raise ValueError(f"the truth table lacks {column} for {int(values.isna().sum())} representatives")
    return TableSource(f"oracle:{dataset}/{metric}", values, higher_is_better=True, domain=domain, space=space)
