"""Rank-aggregation ensembles: ranks, log-rank and NNLS aggregation, greedy selection, held-out evaluation."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from zcproxy.space import NB201
from zcproxy.validate.ensemble import Ensemble, cross_validated, fit_ensemble, oriented_ranks


def _truth(acc: np.ndarray) -> pd.DataFrame:
    reps = np.array([NB201.representative(i) for i in range(NB201.size())])
    frame = pd.DataFrame({("cifar10", "pgd_8"): acc[reps], ("arch", "representative"): reps},
                         index=pd.RangeIndex(NB201.size()))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def _problem(n: int = 800, seed: int = 0):
    """Scores for n representatives: three noisy views of the truth (one lower-is-better) and pure noise."""
    rng = np.random.default_rng(seed)
    truth = _truth(rng.random(NB201.size()))
    archs = np.array(NB201.unique()[:n])
    acc = truth.loc[archs, ("cifar10", "pgd_8")].to_numpy()
    scores = pd.DataFrame({"a": acc + rng.normal(scale=0.3, size=n), "b": acc + rng.normal(scale=0.3, size=n),
                           "c_loss": -acc + rng.normal(scale=0.3, size=n), "noise": rng.normal(size=n)},
                          index=pd.Index(archs, name="arch"))
    orient = {"a": True, "b": True, "c_loss": False, "noise": True}
    return scores, truth, orient


def test_oriented_ranks_by_hand():
    scores = pd.DataFrame({"up": [3.0, 1.0, 2.0, 2.0], "down": [0.5, -np.inf, 0.1, np.nan]})
    ranks = oriented_ranks(scores, {"up": True, "down": False})
    # up: 1 worst -> 1, the two 2s share ranks 2 and 3, 3 best -> 4; divided by M = 4
    assert ranks["up"].tolist() == [1.0, 0.25, 0.625, 0.625]
    # down (lower is better): -inf is degenerate -> worst; 0.1 beats 0.5; NaN stays missing; M = 3
    assert ranks["down"].iloc[:3].tolist() == pytest.approx([2 / 3, 1 / 3, 1.0])
    assert math.isnan(ranks["down"].iloc[3])


def test_logrank_prediction_is_sum_of_log_normalised_ranks():
    scores = pd.DataFrame({"p": [1.0, 2.0, 3.0], "q": [30.0, 10.0, 20.0]})
    model = Ensemble("logrank", ("p", "q"), (1.0, 1.0), {"p": True, "q": False})
    # p ranks 1,2,3; q lower-is-better ranks 1,3,2
    expected = [math.log(1 / 3) + math.log(1 / 3), math.log(2 / 3) + math.log(1.0), math.log(1.0) + math.log(2 / 3)]
    assert model.predict(scores).tolist() == pytest.approx(expected)
    with pytest.raises(ValueError, match="lack ensemble member"):
        model.predict(scores[["p"]])


def test_greedy_selection_picks_informative_members_and_skips_noise():
    scores, truth, orient = _problem()
    target = truth[("cifar10", "pgd_8")]
    for method in ("logrank", "nnls"):
        model = fit_ensemble(scores, target, method, orientation=orient)
        assert set(model.members) == {"a", "b", "c_loss"}
        assert all(w >= 0 for w in model.weights)
        pred = model.predict(scores)
        tau = scipy.stats.kendalltau(pred, target.loc[scores.index]).statistic
        best_single = max(scipy.stats.kendalltau(scores[c] * (1 if orient[c] else -1), target.loc[scores.index])
                          .statistic for c in ("a", "b", "c_loss"))
        assert tau > best_single + 0.05  # averaging independent noisy views helps
    one = fit_ensemble(scores, target, "nnls", max_members=1, orientation=orient)
    assert len(one.members) == 1 and one.members[0] != "noise"


def test_nnls_never_flips_a_proxy():
    scores, truth, _ = _problem()
    # declare c_loss higher-is-better: oriented this way it is anti-correlated and must get weight 0 or be skipped
    wrong = {"a": True, "b": True, "c_loss": True, "noise": True}
    model = fit_ensemble(scores, truth[("cifar10", "pgd_8")], "nnls", candidates=["a", "c_loss"], orientation=wrong)
    weights = dict(zip(model.members, model.weights))
    assert weights.get("c_loss", 0.0) == 0.0 and weights["a"] > 0


def test_nnls_drops_members_a_refit_zeroes_without_changing_the_prediction():
    rng = np.random.default_rng(0)
    n = 50
    y = rng.random(n)
    n1, n2 = rng.normal(0, 0.3, n), rng.normal(0, 0.3, n)
    # "a" mixes both noises: best alone, redundant once "b" and "c" (one noise each) are in
    scores = pd.DataFrame({"a": y + 0.5 * (n1 + n2), "b": y + n1 - 0.2 * n2, "c": y + n2 - 0.2 * n1,
                           "d": y + rng.normal(0, 0.6, n)})
    orientation = {c: True for c in scores.columns}
    model = fit_ensemble(scores, pd.Series(y), "nnls", orientation=orientation)
    assert "a" not in model.members and len(model.members) >= 2
    assert all(w > 0 for w in model.weights)
    with_zero = Ensemble("nnls", ("a",) + model.members, (0.0,) + model.weights,
                         {c: True for c in ("a",) + model.members})
    pd.testing.assert_series_equal(model.predict(scores), with_zero.predict(scores))


def test_fit_ensemble_rejects_bad_input():
    scores, truth, orient = _problem(n=40)
    target = truth[("cifar10", "pgd_8")]
    with pytest.raises(ValueError, match="method"):
        fit_ensemble(scores, target, "mean", orientation=orient)
    with pytest.raises(ValueError, match="max_members"):
        fit_ensemble(scores, target, max_members=0, orientation=orient)
    with pytest.raises(ValueError, match="not in scores"):
        fit_ensemble(scores, target, candidates=["zzz"], orientation=orient)
    sparse = scores.copy()
    sparse.iloc[5:, 0] = np.nan
    with pytest.raises(ValueError, match="candidates="):
        fit_ensemble(sparse, target, orientation=orient)


def test_cross_validated_is_held_out_and_seeded():
    scores, truth, orient = _problem()
    # a leaky column: perfect on one half, noise on the other; chosen on the fit half only if it helps there
    rng = np.random.default_rng(1)
    archs = np.asarray(scores.index)
    shuffled = np.random.default_rng(0).permutation(archs)
    second_half = np.sort(shuffled[archs.size // 2:])
    leak = pd.Series(rng.normal(size=archs.size), index=scores.index)
    leak.loc[second_half] = truth.loc[second_half, ("cifar10", "pgd_8")] * 100
    scores["leak"] = leak
    orient["leak"] = True
    table = cross_validated(scores, truth, "cifar10", "pgd_8", seed=0, orientation=orient)
    assert list(table.columns) == ["fold", "method", "exhaustive", "members", "weights", "n_fit", "n_test",
                                   "fit_kendall", "test_kendall", "best_single", "best_single_test_kendall"]
    assert (table["n_fit"] + table["n_test"] == archs.size).all()
    fold0 = table[table.fold == 0]  # fits on the first half, where the leak is noise
    assert not any("leak" in m.split(",") for m in fold0["members"])
    fold1 = table[table.fold == 1]  # fits where the leak is perfect: it is picked, and fails on held-out archs
    assert all(m.split(",")[0] == "leak" for m in fold1["members"])
    assert (fold1["fit_kendall"] > 0.99).all() and (fold1["test_kendall"] < fold1["fit_kendall"] - 0.3).all()
    again = cross_validated(scores, truth, "cifar10", "pgd_8", seed=0, orientation=orient)
    pd.testing.assert_frame_equal(table, again)


def test_cross_validated_judges_ensembles_and_the_best_single_on_the_same_complete_archs():
    scores, truth, orient = _problem()
    scores.loc[scores.index[300:], "b"] = np.nan  # a proxy scored on fewer archs than the others
    table = cross_validated(scores, truth, "cifar10", "pgd_8", seed=0, orientation=orient)
    assert (table["n_fit"] + table["n_test"] == 300).all()
    complete = scores.iloc[:300]
    shuffled = np.random.default_rng(0).permutation(np.asarray(complete.index))
    test = np.sort(shuffled[150:])  # fold 0 reports on the second half of the complete archs
    single = table[table.fold == 0]["best_single"].iloc[0]
    sign = 1 if orient[single] else -1
    expected = scipy.stats.kendalltau(sign * complete.loc[test, single],
                                      truth.loc[test, ("cifar10", "pgd_8")]).statistic
    assert table[table.fold == 0]["best_single_test_kendall"].iloc[0] == pytest.approx(expected)
    only_a = cross_validated(scores, truth, "cifar10", "pgd_8", seed=0, orientation=orient, candidates=["a"])
    assert (only_a["n_fit"] + only_a["n_test"] == 800).all()


def test_cross_validated_rejects_unknown_target():
    scores, truth, orient = _problem(n=40)
    with pytest.raises(ValueError, match="no column"):
        cross_validated(scores, truth, "cifar10", "pgd_16", orientation=orient)


def test_write_ensembles_leaves_out_outputs_still_being_scored(tmp_path):
    from zcproxy.validate.report import ENSEMBLE_COVERAGE, write_ensembles

    scores, truth, orient = _problem()
    scores.loc[scores.index[60:], "b"] = np.nan  # 60 of 800 scored so far
    text, paths = write_ensembles(scores, truth, tmp_path, stem="s", dataset="cifar10", metric="pgd_8",
                                  orientation=orient)
    folds = pd.read_csv(paths[0])
    assert (folds["n_fit"] + folds["n_test"] == 800).all()  # not shrunk to the 60 archs of 'b'
    assert not any("b" in m.split(",") for m in folds["members"])
    assert "Left out as scored on too few architectures so far: b (60 of 800)" in paths[1].read_text()
    scores.loc[scores.index[: int(800 * ENSEMBLE_COVERAGE)], "b"] = 1.0  # 90 % coverage: a candidate again
    _, paths = write_ensembles(scores, truth, tmp_path, stem="t", dataset="cifar10", metric="pgd_8",
                               orientation=orient)
    assert "Left out" not in paths[1].read_text()
    assert (pd.read_csv(paths[0])["n_fit"] + pd.read_csv(paths[0])["n_test"] == 720).all()


def _synergy(n: int = 900, seed: int = 2):
    """Accuracy = u1 + u2 + u3: each u_i alone ranks it weakly; a noisy copy of the sum ranks it better alone
    but adds nothing to the three together."""
    rng = np.random.default_rng(seed)
    truth = _truth(np.zeros(NB201.size()))
    archs = np.array(NB201.unique()[:n])
    u = rng.random((n, 3))
    acc = u.sum(axis=1)
    truth.loc[archs, ("cifar10", "pgd_8")] = acc
    scores = pd.DataFrame({"u1": u[:, 0], "u2": u[:, 1], "u3": u[:, 2],
                           "sum_noisy": acc + rng.normal(scale=0.45, size=n)}, index=pd.Index(archs, name="arch"))
    return scores, truth.loc[archs, ("cifar10", "pgd_8")], {c: True for c in scores.columns}


def test_exhaustive_start_finds_members_that_only_help_together():
    scores, target, orient = _synergy()
    taus = {c: scipy.stats.kendalltau(scores[c], target).statistic for c in scores}
    assert max(taus, key=taus.get) == "sum_noisy"  # greedy's first pick, not a member of the best triple
    greedy = fit_ensemble(scores, target, "logrank", orientation=orient)
    best = fit_ensemble(scores, target, "logrank", orientation=orient, exhaustive=3)
    assert set(best.members) == {"u1", "u2", "u3"}
    assert "sum_noisy" in greedy.members
    tau_greedy, tau_best = (scipy.stats.kendalltau(m.predict(scores), target).statistic for m in (greedy, best))
    assert tau_best > tau_greedy + 0.01
    # brute force: no subset of up to three scores better than the one chosen
    ranks = oriented_ranks(scores, orient)
    for k in (1, 2, 3):
        for members in itertools.combinations(scores.columns, k):
            mean = np.log(ranks[list(members)]).sum(axis=1)
            assert scipy.stats.kendalltau(mean, target).statistic <= tau_best + 1e-12
    assert fit_ensemble(scores, target, "logrank", orientation=orient, exhaustive=1) == greedy
    with pytest.raises(ValueError, match="exhaustive must be"):
        fit_ensemble(scores, target, "logrank", orientation=orient, exhaustive=6)


def test_cross_validated_reports_one_row_per_search():
    scores, truth, orient = _problem(n=200)
    table = cross_validated(scores, truth, "cifar10", "pgd_8", orientation=orient, exhaustive=(1, 3))
    assert len(table) == 2 * 2 * 2 and set(table["exhaustive"]) == {1, 3}
