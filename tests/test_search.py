"""Tests of zcproxy.search and `zcproxy search`: strategies on synthetic objectives with known optima,
budget accounting, isomorph dedupe, Pareto sorting, percentile/regret by hand, ensembles, CLI errors."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from zcproxy.cli import main
from zcproxy.search import (Budget, BudgetExhausted, LiveSource, Objective, TableSource, assess, ensemble_source,
                            non_dominated_sort, pareto_front, prune_search, random_search, read_scores,
                            regularized_evolution, run, store_source)
from zcproxy.space import NB201, OPS

REPS = NB201.unique()
CONV3 = OPS.index("nor_conv_3x3")
ALL_CONV3 = NB201.index("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")


def _additive(rep: int) -> float:
    """Smooth synthetic objective with a unique optimum at the all-conv3x3 cell: each edge scores its op."""
    weights = {"none": 0.0, "skip_connect": 1.0, "avg_pool_3x3": 1.5, "nor_conv_1x1": 2.0, "nor_conv_3x3": 4.0}
    return sum(weights[op] for op in NB201.genotype(rep))


def _random_values(seed: int = 7) -> dict[int, float]:
    rng = np.random.default_rng(seed)
    return dict(zip(REPS, rng.permutation(len(REPS)).astype(float)))


class _Counting:
    """A table source that records every lookup and charges ``cost`` seconds per lookup."""

    def __init__(self, values: dict[int, float], cost: float = 0.0, higher_is_better: bool = True):
        self.inner = TableSource("counting", values, higher_is_better=higher_is_better)
        self.name, self.domain, self.higher_is_better = "counting", self.inner.domain, higher_is_better
        self.calls: list[int] = []
        self.cost = cost

    def lookup(self, rep: int) -> tuple[float, float, bool]:
        self.calls.append(rep)
        value, _, degenerate = self.inner.lookup(rep)
        return value, self.cost, degenerate


@pytest.fixture(scope="module")
def additive_values() -> dict[int, float]:
    return {r: _additive(r) for r in REPS}


# ------------------------------------------------------------------------------------- objective


def test_isomorphs_are_evaluated_once_as_their_representative():
    iso = next(i for i in range(NB201.size()) if NB201.representative(i) != i)
    rep = NB201.representative(iso)
    source = _Counting(_random_values())
    objective = Objective(source, Budget(10))
    assert objective(iso) == objective(rep) == objective(iso)
    assert source.calls == [rep] and objective.evaluations == 1
    assert objective.history[0].arch == rep


def test_orientation_degenerate_nan_and_domain_errors():
    lower = Objective(TableSource("low", {REPS[0]: 2.0, REPS[1]: 5.0}, higher_is_better=False), Budget(5))
    assert lower(REPS[0]) == -2.0 and lower.best().arch == REPS[0]
    flagged = Objective(TableSource("deg", {REPS[0]: 9.0, REPS[1]: 1.0}, degenerate=[REPS[0]]), Budget(5))
    assert flagged(REPS[0]) == -math.inf and flagged(REPS[1]) == 1.0 and flagged.best().arch == REPS[1]
    with pytest.raises(ValueError, match="outside the search domain"):
        lower(REPS[2])
    with pytest.raises(ValueError, match="NaN"):
        TableSource("bad", {REPS[0]: float("nan")})
    infinite = Objective(TableSource("inf", {REPS[0]: math.inf}), Budget(5))
    assert infinite(REPS[0]) == -math.inf and infinite.history[0].degenerate


def test_budget_validation_and_exhaustion():
    for bad in (dict(evaluations=0), dict(evaluations=None, seconds=None), dict(seconds=-1.0),
                dict(evaluations=2.5)):
        with pytest.raises(ValueError):
            Budget(**bad)
    objective = Objective(_Counting(_random_values()), Budget(2))
    objective(REPS[0]), objective(REPS[1])
    objective(REPS[0])  # known: free
    with pytest.raises(BudgetExhausted):
        objective(REPS[2])


@pytest.mark.parametrize("strategy", ["random", "rea", "prune"])
def test_budget_in_evaluations_is_respected_exactly(strategy):
    source = _Counting(_random_values())
    result = run(strategy, Objective(source, Budget(41)), seed=3)
    assert source.calls == result.archs  # one lookup per counted evaluation, nothing hidden
    assert len(set(result.archs)) == len(result.archs) and all(a in REPS for a in result.archs)
    if strategy == "prune":
        assert result.evaluations <= 41 and result.chosen in source.domain
    else:
        assert result.evaluations == 41


@pytest.mark.parametrize("strategy", ["random", "rea", "prune"])
def test_budget_in_seconds_stops_once_spent(strategy):
    source = _Counting(_random_values(), cost=0.5)
    result = run(strategy, Objective(source, Budget(evaluations=None, seconds=3.0)), seed=0)
    assert result.evaluations == 6 and result.compute_seconds == pytest.approx(3.0)


# ------------------------------------------------------------------------------------- strategies


def test_random_search_with_the_whole_domain_as_budget_finds_the_optimum():
    values = {r: v for r, v in _random_values().items() if r % 7 == 0}
    best = max(values, key=values.get)
    result = random_search(Objective(TableSource("t", values), Budget(len(values) + 50)), seed=1)
    assert result.chosen == best and result.evaluations == len(values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rea_climbs_to_the_optimum_of_a_smooth_objective(seed, additive_values):
    assert max(additive_values, key=additive_values.get) == ALL_CONV3
    result = regularized_evolution(Objective(TableSource("add", additive_values), Budget(600)), seed=seed,
                                   population=20, sample_size=5)
    assert result.chosen == ALL_CONV3


def test_rea_beats_random_on_average_on_a_smooth_objective(additive_values):
    source = TableSource("add", additive_values)
    rea = [additive_values[regularized_evolution(Objective(source, Budget(60)), seed=s).chosen] for s in range(8)]
    rnd = [additive_values[random_search(Objective(source, Budget(60)), seed=s).chosen] for s in range(8)]
    assert np.mean(rea) > np.mean(rnd)


@pytest.mark.parametrize("seed", [0, 1])
def test_pruning_finds_the_optimum_of_an_additive_objective(seed, additive_values):
    result = prune_search(Objective(TableSource("add", additive_values), Budget(161)), seed=seed)
    assert result.chosen == ALL_CONV3 and result.evaluations <= 161


def test_rea_spends_its_whole_budget_in_a_sparse_domain():
    values = {r: v for r, v in _random_values().items() if r % 9 == 4}
    result = regularized_evolution(Objective(TableSource("sparse", values), Budget(300)), seed=0)
    assert result.evaluations == 300 and set(result.archs) <= set(values)


def test_searches_stay_inside_a_restricted_domain():
    values = {r: v for r, v in _random_values().items() if r % 5 == 1}
    for strategy in ("random", "rea", "prune"):
        result = run(strategy, Objective(TableSource("sub", values), Budget(60)), seed=2)
        assert set(result.archs) <= set(values) and result.chosen in values


@pytest.mark.parametrize("strategy", ["random", "rea", "prune"])
def test_seed_determinism(strategy):
    source = TableSource("t", _random_values())
    first = run(strategy, Objective(source, Budget(50)), seed=11)
    again = run(strategy, Objective(source, Budget(50)), seed=11)
    other = run(strategy, Objective(source, Budget(50)), seed=12)
    assert first.archs == again.archs and first.chosen == again.chosen
    assert first.archs != other.archs


@pytest.mark.parametrize("strategy", ["random", "rea"])
def test_best_after_equals_a_run_with_the_smaller_budget(strategy):
    source = TableSource("t", _random_values())
    long = run(strategy, Objective(source, Budget(80)), seed=5)
    short = run(strategy, Objective(source, Budget(30)), seed=5)
    assert long.archs[:30] == short.archs and long.best_after(30) == short.chosen


def test_strategy_argument_errors():
    objective = Objective(TableSource("t", _random_values()), Budget(5))
    with pytest.raises(ValueError, match="unknown search strategy"):
        run("bayes", objective)
    with pytest.raises(ValueError, match="sample_size"):
        regularized_evolution(objective, population=3, sample_size=4)
    with pytest.raises(ValueError, match="seed"):
        random_search(objective, seed=-1)


# ------------------------------------------------------------------------------------- Pareto


def test_pareto_fronts_on_hand_made_points():
    points = [[1, 1], [2, 0], [0, 2], [0.5, 0.5], [2, 0], [0, 0]]
    assert non_dominated_sort(points, [True, True]) == [[0, 1, 2, 4], [3], [5]]
    # minimising the second criterion: (2, 0) dominates everything with first <= 2
    assert pareto_front(points, [True, False]) == [1, 4]
    with pytest.raises(ValueError, match="NaN"):
        pareto_front([[1.0, float("nan")]], [True, True])
    with pytest.raises(ValueError, match="criteria"):
        pareto_front([[1.0, 2.0]], [True])


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    points = rng.integers(0, 6, size=(60, 3)).astype(float)
    maximize = [True, True, False]
    signed = np.where(maximize, points, -points)

    def dominated(b):
        return any((signed[a] >= signed[b]).all() and (signed[a] > signed[b]).any() for a in range(len(points)))

    assert pareto_front(points, maximize) == [b for b in range(len(points)) if not dominated(b)]
    fronts = non_dominated_sort(points, maximize)
    assert sorted(itertools.chain(*fronts)) == list(range(len(points)))
    for later, earlier in zip(fronts[1:], fronts):  # each member of a later front is dominated by an earlier one
        for b in later:
            assert any((signed[a] >= signed[b]).all() and (signed[a] > signed[b]).any() for a in earlier)


# ------------------------------------------------------------------------------------- verdict


def _hand_truth() -> pd.DataFrame:
    """pgd_8 of the k-th representative (1-based) is k / 6466; the last two tie; isomorphs copy their class."""
    position = {r: k for k, r in enumerate(REPS, start=1)}
    position[REPS[-1]] = len(REPS) - 1
    pgd = np.array([position[NB201.representative(i)] / len(REPS) for i in range(NB201.size())])
    columns = pd.MultiIndex.from_tuples([("cifar10", "clean"), ("cifar10", "pgd_8"), ("cifar10", "autoattack")])
    frame = pd.DataFrame(np.stack([pgd + 0.3, pgd, pgd - 0.05], axis=1), columns=columns)
    frame[("arch", "representative")] = [NB201.representative(i) for i in range(NB201.size())]
    return frame


def test_percentile_and_regret_by_hand():
    truth = _hand_truth()
    n = len(REPS)
    iso = next(i for i in range(NB201.size()) if NB201.representative(i) != i)
    k = REPS.index(NB201.representative(iso)) + 1  # 1-based position of its class
    table = assess([REPS[0], iso, REPS[-2], REPS[-1]], truth)
    assert table["arch"].tolist() == [REPS[0], NB201.representative(iso), REPS[-2], REPS[-1]]
    assert table["percentile"].tolist() == pytest.approx([100 / n, 100 * k / n, 100.0, 100.0])
    best = (n - 1) / n
    assert table["regret"].tolist() == pytest.approx([best - 1 / n, best - k / n, 0.0, 0.0])
    assert table["clean"].tolist() == pytest.approx((table["pgd_8"] + 0.3).tolist())
    with pytest.raises(ValueError, match="lacks columns"):
        assess([0], truth, dataset="cifar100")


# ------------------------------------------------------------------------------------- ensembles


def test_logrank_ensemble_source_by_hand():
    a, b, c = REPS[10], REPS[11], REPS[12]
    values = pd.DataFrame({"x": [3.0, 1.0, 2.0], "y": [1.0, 3.0, 2.0]}, index=[a, b, c])
    orientation = {"x": True, "y": False}  # y: lower is better, so y's ranks are (3, 1, 2)
    got = ensemble_source(values, {"x": 1.0, "y": 1.0}, orientation=orientation).values
    assert [got[a], got[b], got[c]] == pytest.approx([0.0, 2 * math.log(1 / 3), 2 * math.log(2 / 3)])
    tied = ensemble_source(values.assign(y=[2.0, 2.0, 1.0]), {"x": 3.0, "y": 1.0}, orientation=orientation).values
    # y = (2, 2, 1) lower-better -> ranks (1.5, 1.5, 3) of 3
    assert [tied[a], tied[b], tied[c]] == pytest.approx([math.log(0.5), 3 * math.log(1 / 3) + math.log(0.5),
                                                         3 * math.log(2 / 3)])
    flagged = ensemble_source(values, {"x": 1.0}, orientation=orientation,
                              degenerate=pd.DataFrame({"x": [True, False, False]}, index=[a, b, c]))
    assert min(flagged.values, key=flagged.values.get) == a  # the degenerate best value now ranks worst
    result = random_search(Objective(ensemble_source(values, {"x": 1.0, "y": 1.0}, orientation=orientation),
                                     Budget(5)), seed=0)
    assert result.chosen == a and result.evaluations == 3
    with pytest.raises(ValueError, match="weights"):
        ensemble_source(values, {"x": -1.0}, orientation=orientation)
    with pytest.raises(ValueError, match="member"):
        ensemble_source(values, {"z": 1.0}, orientation={"z": True})


def _write_long_csv(path, rows):
    frame = pd.DataFrame(rows, columns=["arch", "proxy", "value", "seconds", "flags", "settings_hash", "settings"])
    frame.to_csv(path, index=False)


def test_store_csv_source_restricts_the_domain_and_rejects_mixed_settings(tmp_path):
    scored = REPS[:40]
    rows = [(a, "params", float(k), 0.1, json.dumps([]), "h0", json.dumps({"seed": 0})) for k, a in enumerate(scored)]
    path = tmp_path / "scores.csv"
    _write_long_csv(path, rows)
    source = store_source(read_scores(path), "params")
    assert len(source.domain) == 40 and source.higher_is_better
    result = random_search(Objective(source, Budget(100)), seed=0)
    assert sorted(result.archs) == sorted(scored) and result.chosen == scored[-1] and result.compute_seconds == 0
    _write_long_csv(path, rows + [(scored[0], "params", 9.0, 0.1, "[]", "h1", json.dumps({"seed": 1}))])
    with pytest.raises(ValueError, match="different settings"):
        store_source(read_scores(path), "params")
    assert len(store_source(read_scores(path), "params", settings={"seed": 1}).domain) == 1
    with pytest.raises(ValueError, match="no stored scores"):
        store_source(read_scores(path), "synflow")


def test_store_hits_count_as_evaluations_but_cost_no_compute_seconds(tmp_path):
    from zcproxy.store import Store

    arch = REPS[5]
    with Store(tmp_path / "s.sqlite") as store:
        first = Objective(LiveSource("params", store=store), Budget(3))
        value = first(arch)
        assert first.evaluations == 1 and first.compute_seconds > 0
        again = Objective(LiveSource("params", store=store), Budget(3))
        assert again(arch) == value
        assert again.evaluations == 1 and again.compute_seconds == 0.0
    expected = sum(p.numel() for p in NB201.build(arch).parameters()) / 1e6
    assert value == pytest.approx(expected)


# ------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "rea", "--budget", "5"], "--proxy NAME"),
    (["--strategy", "rea", "--oracle", "--proxy", "params"], "not both"),
    (["--strategy", "rea", "--proxy", "params,flops"], "needs --store"),
    (["--strategy", "rea", "--proxy", "nope"], "unknown proxy output 'nope'"),
    (["--strategy", "rea", "--proxy", "params", "--population", "2", "--sample-size", "3"], "--sample-size"),
    (["--strategy", "predictor"], "needs --store PATH"),
    (["--strategy", "predictor", "--oracle", "--store", "s.csv"], "--oracle and --live do not apply"),
    (["--strategy", "predictor", "--store", "s.csv", "--initial", "30", "--budget", "20"], "exceed --budget 20"),
])
def test_cli_usage_errors_exit_2_with_a_message(argv, message, capsys):
    assert main(["search", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--strategy", "bayes", "--oracle"], ["--strategy", "rea", "--budget", "0"],
                                  ["--strategy", "rea", "--seconds", "-3", "--oracle"]])
def test_cli_argparse_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["search", *argv])
    assert exc.value.code == 2
    assert "search" in capsys.readouterr().err


def test_cli_searches_a_stored_csv(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ZCPROXY_DATA", raising=False)
    scored = REPS[100:130]
    rows = [(a, "params", float(k), 0.1, "[]", "h0", "{}") for k, a in enumerate(scored)]
    _write_long_csv(tmp_path / "s.csv", rows)
    code = main(["search", "--strategy", "random", "--proxy", "params", "--store", str(tmp_path / "s.csv"),
                 "--budget", "100", "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "30 scored architectures" in out and "spent 30 proxy evaluations" in out and str(scored[-1]) in out


def test_cli_pareto_front_of_stored_criteria_matches_brute_force(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ZCPROXY_DATA", raising=False)
    rng = np.random.default_rng(3)
    scored = REPS[200:240]
    crit = {name: rng.integers(0, 5, size=len(scored)).astype(float) for name in ("snip", "synflow", "params")}
    rows = [(a, name, crit[name][k], 0.0, "[]", f"h-{name}", "{}") for name in crit for k, a in enumerate(scored)]
    _write_long_csv(tmp_path / "s.csv", rows)
    code = main(["search", "--strategy", "random", "--proxy", "snip", "--store", str(tmp_path / "s.csv"),
                 "--budget", "40", "--pareto", "--pareto-proxies", "snip,synflow", "--cost", "params",
                 "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    front_lines = out.split("Pareto front")[1].strip().splitlines()[3:]
    printed = {int(line.split("|")[1]) for line in front_lines if line.startswith("|")}
    points = np.stack([crit["snip"], crit["synflow"], -crit["params"]], axis=1)  # params is minimised
    expected = {scored[b] for b in range(len(scored))
                if not any((points[a] >= points[b]).all() and (points[a] > points[b]).any() for a in range(len(scored)))}
    assert printed == expected


@pytest.mark.data
def test_oracle_with_the_whole_space_finds_the_benchmark_optimum(data_dir):
    from zcproxy.search import oracle_source
    from zcproxy.truth import load_nasrobbench201

    truth = load_nasrobbench201(data_dir)
    result = random_search(Objective(oracle_source(truth), Budget(len(REPS))), seed=0)
    verdict = assess([result.chosen], truth).iloc[0]
    assert verdict["regret"] == 0 and verdict["percentile"] == 100
    assert verdict["pgd_8"] == pytest.approx(truth[("cifar10", "pgd_8")].max())


@pytest.mark.data
def test_cli_oracle_run_reports_true_accuracies(data_dir, capsys):
    assert main(["search", "--strategy", "rea", "--oracle", "--budget", "30", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "oracle:cifar10/pgd_8" in out and "PGD-8 %" in out and "AutoAttack %" in out


def test_cli_predictor_search_labels_within_the_budget_and_finds_a_learnable_optimum(data_dir, tmp_path, capsys):
    """--strategy predictor: features from the store, labels from the truth. A feature that is a monotone
    function of the true PGD-8 (plus an uninformative one) lets the forest find the pool's best arch."""
    from zcproxy.truth import load_nasrobbench201

    truth = load_nasrobbench201(data_dir)
    pool = list(REPS[:300])
    target = truth[("cifar10", "pgd_8")].reindex(pool)
    rng = np.random.default_rng(0)
    rows = [(a, "learnable", float(np.exp(3 * target[a])), 0.1, "[]", "h0", "{}") for a in pool]
    rows += [(a, "noise", float(rng.normal()), 0.1, "[]", "h1", "{}") for a in pool]
    rows += [(a, "partial", 1.0, 0.1, "[]", "h2", "{}") for a in pool[:10]]  # too few archs: left out by default
    _write_long_csv(tmp_path / "s.csv", rows)
    code = main(["search", "--strategy", "predictor", "--store", str(tmp_path / "s.csv"), "--budget", "40",
                 "--initial", "20", "--label-batch", "5", "--data-dir", str(data_dir), "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "features: learnable, noise;" in out and "spent 40 labels" in out and "over 300 scored" in out
    found = int(out.splitlines()[-1].split("|")[1])
    assert found in pool and int((target > target[found]).sum()) < 3  # among the pool's best three
    assert main(["search", "--strategy", "predictor", "--store", str(tmp_path / "s.csv"), "--proxy", "noise",
                 "--budget", "30", "--data-dir", str(data_dir)]) == 0
    assert "features: noise;" in capsys.readouterr().out
