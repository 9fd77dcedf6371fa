"""Tests of predictor-guided search (zcproxy.search.predictor_search): it finds a known optimum, spends the
budget exactly (every label counted), picks each batch as the refitted predictor's top, is deterministic,
and names bad options and missing features."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zcproxy.search import STRATEGIES, Budget, Objective, TableSource, predictor_search, run
from zcproxy.space import NB201, OPS
from zcproxy.validate.predictor import fit

REPS = NB201.unique()
WEIGHTS = {"none": 0.0, "skip_connect": 1.0, "avg_pool_3x3": 1.5, "nor_conv_1x1": 2.0, "nor_conv_3x3": 4.0}


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    """Op count per op and op id per edge of every representative (a free, known feature table)."""
    rows = {}
    for rep in REPS:
        genotype = NB201.genotype(rep)
        rows[rep] = [genotype.count(op) for op in OPS] + [OPS.index(op) for op in genotype]
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=[f"n:{op}" for op in OPS] + [f"edge{e}" for e in range(6)])


@pytest.fixture(scope="module")
def truth(features) -> dict[int, float]:
    """A known function of the features with a unique optimum (every edge nor_conv_3x3)."""
    weights = np.array([WEIGHTS[op] for op in OPS])
    return dict(zip(features.index, features[[f"n:{op}" for op in OPS]].to_numpy() @ weights))


class _Counting:
    """A table source recording every lookup; ``cost`` seconds per lookup."""

    def __init__(self, values: dict[int, float], cost: float = 0.0):
        self.inner = TableSource("counting", values)
        self.name, self.domain, self.higher_is_better = "counting", self.inner.domain, True
        self.calls: list[int] = []
        self.cost = cost

    def lookup(self, rep: int) -> tuple[float, float, bool]:
        self.calls.append(rep)
        value, _, degenerate = self.inner.lookup(rep)
        return value, self.cost, degenerate


def test_finds_the_optimum_of_a_known_function_of_the_features(features, truth):
    optimum = max(truth, key=truth.get)
    assert sum(v == truth[optimum] for v in truth.values()) == 1
    for seed in range(3):
        result = run("predictor", Objective(TableSource("truth", truth), Budget(60)), seed=seed,
                     features=features, initial=20, batch=10)
        assert result.chosen == optimum and result.strategy == "predictor"
        assert optimum not in result.archs[:20]  # found by the predictor, not by the random start
    assert STRATEGIES["predictor"] is predictor_search


@pytest.mark.parametrize("budget,initial,batch", [(37, 20, 10), (7, 20, 10), (25, 5, 1)])
def test_every_label_counts_once_and_the_budget_is_spent_exactly(features, truth, budget, initial, batch):
    source = _Counting(truth)
    result = predictor_search(Objective(source, Budget(budget)), seed=1, features=features, initial=initial,
                              batch=batch)
    assert result.evaluations == budget == len(source.calls) == len(set(source.calls))
    assert source.calls == result.archs
    assert result.settings["budget_evaluations"] == budget and result.settings["initial"] == initial
    assert result.chosen == max(source.calls, key=truth.get)


def test_a_seconds_budget_counts_each_label_cost(features, truth):
    source = _Counting(truth, cost=0.5)
    result = predictor_search(Objective(source, Budget(None, seconds=12.0)), seed=0, features=features)
    assert result.evaluations == 24 and result.compute_seconds == pytest.approx(12.0)


def test_each_batch_is_the_top_prediction_of_a_fit_on_every_label_so_far(features, truth):
    initial, batch = 15, 6
    result = predictor_search(Objective(TableSource("truth", truth), Budget(initial + 2 * batch)), seed=4,
                              features=features, initial=initial, batch=batch, model="extra_trees")
    archs = result.archs
    for start in (initial, initial + batch):
        labelled = archs[:start]
        model = fit(features.loc[labelled], pd.Series({a: truth[a] for a in labelled}), model="extra_trees", seed=4)
        rest = features.drop(index=labelled)
        predicted = model.predict(rest)
        expected = rest.index[np.argsort(-predicted.to_numpy(), kind="stable")[:batch]].tolist()
        assert archs[start:start + batch] == expected


def test_deterministic_given_the_seed(features, truth):
    def history(seed: int) -> list[int]:
        return predictor_search(Objective(TableSource("truth", truth), Budget(40)), seed=seed,
                                features=features).archs

    assert history(3) == history(3)
    assert history(3) != history(4)


def test_degenerate_labels_are_left_out_of_the_fit(features, truth):
    degenerate = [r for r in REPS if NB201.genotype(r).count("nor_conv_3x3") >= 4]
    source = TableSource("truth", truth, degenerate=degenerate)
    result = predictor_search(Objective(source, Budget(50)), seed=0, features=features)
    assert result.evaluations == 50 and result.chosen not in degenerate


@pytest.mark.parametrize("options,name", [
    ({"initial": 0}, "initial"), ({"initial": 4}, "initial"), ({"initial": 2.5}, "initial"),
    ({"batch": 0}, "batch"), ({"batch": True}, "batch"), ({"model": "svm"}, "model"),
    ({"params": [("n_estimators", 5)]}, "params"), ({"seed": -1}, "seed"),
])
def test_bad_options_are_named(features, truth, options, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        predictor_search(Objective(TableSource("truth", truth), Budget(30)), features=features, **options)


def test_missing_or_nan_features_of_a_domain_arch_are_a_clear_error(features, truth):
    objective = Objective(TableSource("truth", truth), Budget(30))
    with pytest.raises(ValueError, match=r"missing for 1 and NaN for 0 of the 6466 domain architectures"):
        predictor_search(objective, features=features.drop(index=REPS[7]))
    holes = features.astype(float)
    holes.iloc[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"missing for 0 and NaN for 1 of the 6466"):
        predictor_search(objective, features=holes)
    with pytest.raises(ValueError, match=r"^features must be a non-empty pandas DataFrame"):
        predictor_search(objective, features=features.to_numpy())
    assert objective.evaluations == 0  # nothing was spent before the checks
    small = Objective(TableSource("truth", {r: truth[r] for r in REPS[:100]}), Budget(30))
    result = predictor_search(small, features=features, initial=10)  # extra feature rows are fine
    assert set(result.archs) <= set(REPS[:100])
