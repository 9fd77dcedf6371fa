"""Few-shot predictor (zcproxy.validate.predictor): fit/predict contract, non-finite values, JSON round trip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from zcproxy.validate import predictor as P

ROOT = Path(__file__).resolve().parents[1]


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    index = pd.Index(np.arange(1000, 1000 + n), name="arch")
    a, b = rng.normal(size=n), rng.normal(size=n)
    scores = pd.DataFrame({"meco": np.exp(3 * a), "synflow": 10.0 ** (40 + b), "noise": rng.normal(size=n)}, index=index)
    truth = pd.Series(a + 0.5 * b + 0.1 * rng.normal(size=n), index=index, name="pgd_8")
    return scores, truth


def _tau(p, t):
    return scipy.stats.kendalltau(p, t.reindex(p.index)).statistic


@pytest.mark.parametrize("model", P.MODELS)
def test_fit_predict_ranks_held_out_archs(model):
    scores, truth = _data()
    train, test = scores.index[:100], scores.index[100:]
    pred = P.fit(scores.loc[train], truth, model=model, seed=0).predict(scores.loc[test])
    assert pred.index.equals(test) and pred.name == "predicted_pgd_8"
    assert _tau(pred, truth) > 0.7  # synflow at 1e40+ would overflow float32 without the log map
    assert _tau(pred, truth) > _tau(scores.loc[test, "meco"], truth)  # combining two signals beats one


def test_features_recorded_extra_columns_ignored_missing_named():
    scores, truth = _data()
    model = P.fit(scores, truth, features=["meco", "synflow"])
    assert model.features == ("meco", "synflow")
    assert model.predict(scores.assign(other=1.0)).equals(model.predict(scores))
    with pytest.raises(ValueError, match=r"lack the feature column\(s\) \['synflow'\]"):
        model.predict(scores.drop(columns="synflow"))
    with pytest.raises(ValueError, match=r"not in scores"):
        P.fit(scores, truth, features=["meco", "params"])


def test_extra_feature_columns_just_join_the_table():
    scores, truth = _data()
    graph = pd.DataFrame({"n_conv3x3": (truth > truth.median()).astype(int)}, index=scores.index)
    wide = scores.join(graph)
    model = P.fit(wide.iloc[:100], truth)
    assert "n_conv3x3" in model.features
    assert model.feature_importances().index[0] in ("n_conv3x3", "meco")
    assert model.feature_importances().sum() == pytest.approx(1.0)


def test_missing_and_infinite_values():
    scores, truth = _data(200)
    scores = scores.copy()
    scores.iloc[0, 0] = np.nan          # dropped from the fit
    truth = truth.copy()
    truth.iloc[1] = np.nan              # dropped from the fit
    top = truth.iloc[2:150].idxmax()
    scores.loc[top, "meco"] = np.inf    # +inf stands just above the finite training range
    model = P.fit(scores.iloc[:150], truth)
    assert model.n_dropped == 2 and len(model.train_scores) == 148
    probe = scores.iloc[150:153].copy()
    probe.iloc[0, 1] = np.nan
    probe.iloc[1, 0] = np.inf
    probe.iloc[2, 0] = -np.inf
    pred = model.predict(probe)
    assert np.isnan(pred.iloc[0]) and np.isfinite(pred.iloc[1:]).all()
    above = probe.iloc[[1]].copy()
    above.iloc[0, 0] = 1e300  # beyond every training value: same leaf side as +inf
    assert model.predict(above).iloc[0] == pred.iloc[1]
    with pytest.raises(ValueError, match="only 2 architectures"):
        P.fit(scores.iloc[2:4], truth)
    with pytest.raises(ValueError, match="not numeric"):
        P.fit(scores.assign(meco="x"), truth)


def test_predictions_do_not_depend_on_the_batch_and_are_seeded():
    scores, truth = _data()
    model = P.fit(scores.iloc[:80], truth, seed=3)
    whole = model.predict(scores.iloc[80:])
    one_by_one = pd.concat([model.predict(scores.iloc[[i]]) for i in range(80, 100)])
    assert np.array_equal(whole.iloc[:20].to_numpy(), one_by_one.to_numpy())
    assert P.fit(scores.iloc[:80], truth, seed=3).predict(scores.iloc[80:]).equals(whole)
    assert not P.fit(scores.iloc[:80], truth, seed=4).predict(scores.iloc[80:]).equals(whole)


def test_json_round_trip_refits_identically(tmp_path):
    scores, truth = _data()
    scores = scores.copy()
    scores.iloc[5, 0] = np.inf
    scores.iloc[6, 1] = -np.inf
    model = P.fit(scores.iloc[:120], truth, model="random_forest", seed=7, params={"n_estimators": 50})
    path = model.save(tmp_path / "sub" / "predictor.json")
    doc = json.loads(path.read_text())  # plain JSON: strict parse, no NaN/Infinity tokens
    assert doc["format"] == P.FORMAT and doc["params"]["n_estimators"] == 50 and doc["seed"] == 7
    assert "Infinity" not in path.read_text() and doc["scores"][5][0] == "inf" and doc["scores"][6][1] == "-inf"
    loaded = P.load(path)
    assert loaded.features == model.features and loaded.target == "pgd_8" and loaded.n_dropped == model.n_dropped
    assert np.array_equal(loaded.predict(scores).to_numpy(), model.predict(scores).to_numpy(), equal_nan=True)


def test_load_accepts_only_predictor_json(tmp_path):
    scores, truth = _data(50)
    doc = json.loads(P.fit(scores, truth, params={"n_estimators": 5}).to_json())
    bad = tmp_path / "bad.json"
    for mutate, message in ((lambda d: d.update(format="pickle"), "not a zcproxy predictor"),
                            (lambda d: d.update(model="__import__('os')"), "unknown model"),
                            (lambda d: d["scores"][0].__setitem__(0, "__import__('os')"), "unexpected string")):
        changed = json.loads(json.dumps(doc))
        mutate(changed)
        bad.write_text(json.dumps(changed))
        with pytest.raises(ValueError, match=message):
            P.load(bad)
    bad.write_bytes(b"\x80\x04\x95")  # a pickle header is not JSON
    with pytest.raises(ValueError):
        P.load(bad)
    changed = json.loads(json.dumps(doc))
    changed["sklearn_version"] = "0.0"
    bad.write_text(json.dumps(changed))
    with pytest.warns(UserWarning, match="scikit-learn 0.0"):
        P.load(bad)


def test_argument_errors():
    scores, truth = _data(50)
    with pytest.raises(ValueError, match="model must be one of"):
        P.fit(scores, truth, model="xgboost")
    with pytest.raises(ValueError, match="truth must be a pandas Series"):
        P.fit(scores, truth.to_frame())
    with pytest.raises(ValueError, match="seed must be"):
        P.fit(scores, truth, seed=-1)
    with pytest.raises(ValueError, match="scores must be a pandas DataFrame"):
        P.fit(scores, truth).predict(scores.to_numpy())


def test_real_data_few_shot_beats_chance_and_tracks_meco(data_dir):
    """K = 100 of the committed 1,000-arch CIFAR-10 sample, tested on the other 900 against PGD-8/255."""
    from zcproxy.truth import load_nasrobbench201

    long = pd.read_csv(ROOT / "results/correlation/scores_cifar10.csv", usecols=["arch", "proxy", "value"])
    scores = long.pivot(index="arch", columns="proxy", values="value")
    truth = load_nasrobbench201(data_dir=data_dir)[("cifar10", "pgd_8")].rename("pgd_8")
    perm = np.random.default_rng(0).permutation(scores.index.to_numpy())
    model = P.fit(scores.loc[perm[:100]], truth, seed=0)
    test = perm[100:]
    tau = _tau(model.predict(scores.loc[test]), truth)
    assert 0.70 < tau < 0.95
    assert tau > _tau(scores.loc[test, "meco"], truth) - 0.05


def test_with_graph_features_joins_the_space_table_and_keeps_existing_columns():
    from zcproxy.space import graph_features

    scores = pd.DataFrame({"meco": [1.0, 2.0, 3.0], "paths": [-1.0, -1.0, -1.0]}, index=[0, 6418, 13714])
    joined = P.with_graph_features(scores, "nb201")
    table = graph_features(scores.index)
    assert joined.index.equals(scores.index) and joined["paths"].eq(-1.0).all()  # the caller's column wins
    assert joined.drop(columns=["meco", "paths"]).equals(table.drop(columns="paths").set_axis(scores.index))
    assert list(scores.columns) == ["meco", "paths"]  # input untouched
    with pytest.raises(ValueError, match="DataFrame"):
        P.with_graph_features(scores.to_numpy())
