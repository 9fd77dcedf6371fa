"""studies/search_study.py: per-output pools inside the search half, one oracle per pool, merged stores."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zcproxy.space import NB201
from zcproxy.truth import load_nasrobbench201

SCRIPT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study(benchmark_script):
    return benchmark_script("search_study")


def _long_csv(path: Path, values: pd.Series, proxy: str) -> None:
    frame = pd.DataFrame({"arch": values.index, "proxy": proxy, "value": values.to_numpy(),
                          "flags": json.dumps([]), "settings": json.dumps({}), "settings_hash": "h"})
    frame.to_csv(path, mode="a", header=not path.exists(), index=False)


def _args(stores: list[Path], data_dir: Path, **extra) -> argparse.Namespace:
    values = dict(store=[str(s) for s in stores], proxies=None, setting=None, params=False, top=2,
                  min_scored=100, seeds=1, budget=50, split_seed=0, data_dir=str(data_dir), zero_shot_members=3,
                  predictor_grid="")
    values.update(extra)
    return argparse.Namespace(**values)


def test_each_output_searches_its_scored_part_of_the_search_half(study, data_dir, tmp_path):
    truth = load_nasrobbench201(data_dir)
    reps = np.asarray(NB201.unique())
    pgd = truth[("cifar10", "pgd_8")].reindex(reps)
    rng = np.random.default_rng(3)
    wide, narrow = tmp_path / "wide.csv", tmp_path / "narrow.csv"
    _long_csv(wide, pd.Series(pgd.to_numpy() + rng.normal(0, 0.01, reps.size), index=reps), "meco")
    _long_csv(wide, pd.Series(-pgd.to_numpy(), index=reps), "synflow")
    subset = np.sort(rng.choice(reps, 900, replace=False))
    _long_csv(narrow, pd.Series(rng.normal(size=subset.size), index=subset), "ntk_robust")
    # the same (arch, output) in a later store is ignored: the first store's value wins
    _long_csv(narrow, pd.Series(np.zeros(reps.size), index=reps), "meco")

    log: list[str] = []
    objectives = study.build_objectives(_args([wide, narrow], data_dir), truth, log)

    order = np.random.default_rng(0).permutation(reps)
    search_half = set(order[reps.size // 2:].tolist())
    good, pool_good = objectives["meco"]
    assert set(good.values) == search_half and pool_good == "search half"
    assert np.corrcoef([good.values[a] for a in sorted(search_half)], pgd[sorted(search_half)])[0, 1] > 0.9
    ntk, pool_ntk = objectives["ntk_robust"]
    expected = set(subset.tolist()) & search_half
    assert set(ntk.values) == expected and pool_ntk == f"search half, {len(expected)} scored"
    assert "synflow" not in objectives  # top=2 keeps the best fit-half proxies (meco, then ntk) only
    for label in (pool_good, pool_ntk):
        oracle, pool = objectives[f"oracle [{label}]"]
        assert pool == label
    assert set(objectives["oracle [search half]"][0].values) == search_half
    assert set(objectives[f"oracle [{pool_ntk}]"][0].values) == expected
    ensembles = [name for name in objectives if name.startswith("ensemble")]
    assert {e.split(")")[0] for e in ensembles} == {"ensemble (logrank", "ensemble (nnls"}
    assert sum(e.endswith("[all outputs]") for e in ensembles) == 2  # ntk_robust is scored on fewer archs
    for e in ensembles:
        source, pool = objectives[e]
        assert set(source.values) <= search_half and f"oracle [{pool}]" in objectives
    assert any("meco" in e for e in ensembles)


def test_outputs_scored_on_too_few_archs_are_reported_not_searched(study, data_dir, tmp_path):
    truth = load_nasrobbench201(data_dir)
    reps = np.asarray(NB201.unique())
    store = tmp_path / "tiny.csv"
    _long_csv(store, pd.Series(np.arange(150.0), index=reps[:150]), "meco")
    log: list[str] = []
    objectives = study.build_objectives(_args([store], data_dir, budget=100), truth, log)
    assert "meco" not in objectives and set(objectives) == {"oracle [all 6466]"}
    assert any("2 x budget" in line for line in log)


def test_live_cost_reads_the_measured_seconds_of_each_distinct_proxy(study):
    seconds = pd.read_csv(SCRIPT_ROOT / "results" / "perf" / "proxy_seconds.csv").set_index("proxy")["median_seconds"]
    assert study.live_cost("meco") == pytest.approx(seconds["meco"])
    assert study.live_cost("params (exact)") == pytest.approx(seconds["params"])
    assert study.live_cost("az_nas_complexity") == pytest.approx(seconds["az_nas"])
    ensemble = "ensemble (nnls): meco+az_nas_trainability+az_nas_complexity [all outputs]"
    assert study.live_cost(ensemble) == pytest.approx(seconds["meco"] + seconds["az_nas"])
    assert np.isnan(study.live_cost("oracle [search half]"))


def test_the_budget_plot_drops_duplicate_curves_only(study):
    names = ["oracle [all 6466]", "params (exact)", "oracle [search half]", "meco", "flops", "params",
             "ntk_robust", "ntk_joint_clean", "ntk_clean", "ensemble (logrank): meco",
             "ensemble (nnls): meco+synflow", "ensemble (nnls): meco+ntk_cond [all outputs]"]
    assert study.plotted(names) == ["oracle [all 6466]", "params (exact)", "oracle [search half]", "meco",
                                    "ntk_robust", "ntk_clean", "ensemble (nnls): meco+synflow"]
    assert study.plotted(["meco", "params", "ensemble (logrank): meco"]) == ["meco", "params",
                                                                            "ensemble (logrank): meco"]


# ----------------------------------------------------------------- zero-shot and few-shot rows (issue 22)


def _halves() -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(np.asarray(NB201.unique()))
    return np.sort(order[: order.size // 2]), np.sort(order[order.size // 2:])


def test_the_zero_shot_choice_sees_only_the_fit_half(study, data_dir):
    truth = load_nasrobbench201(data_dir)
    reps = np.asarray(NB201.unique())
    pgd = truth[("cifar10", "pgd_8")].reindex(reps)
    rng = np.random.default_rng(5)
    table = pd.DataFrame({"meco": pgd.to_numpy() + rng.normal(0, 0.002, reps.size),
                          "synflow": rng.normal(size=reps.size), "zico": -pgd.to_numpy()}, index=reps)
    degenerate = pd.DataFrame(False, index=reps, columns=table.columns)
    args = _args([], data_dir, seeds=2, budget=30, zero_shot_members=2)
    fit_half, search_half = _halves()
    ranked = study.choose_zero_shot(table, degenerate, set(fit_half.tolist()), pgd, args)
    assert len(ranked) == 3 + 3 and ranked.loc[0, "members"] == "meco"
    assert ranked.loc[0, "fit_rea_median"] > 95 and ranked["fit_rea_median"].iloc[-1] < 20
    scrambled, target = table.copy(), pgd.copy()
    scrambled.loc[search_half] = rng.permutation(scrambled.loc[search_half].to_numpy())
    target.loc[search_half] = rng.permutation(target.loc[search_half].to_numpy())
    again = study.choose_zero_shot(scrambled, degenerate, set(fit_half.tolist()), target, args)
    pd.testing.assert_frame_equal(ranked, again)


def test_predictor_rows_spend_labels_on_the_search_half_only(study, data_dir):
    truth = load_nasrobbench201(data_dir)
    reps = np.asarray(NB201.unique())
    rng = np.random.default_rng(2)
    table = pd.DataFrame({"meco": rng.normal(size=reps.size), "synflow": rng.normal(size=reps.size)}, index=reps)
    log: list[str] = []
    args = _args([], data_dir, seeds=2, budget=30, predictor_grid="10x10,12x5:extra_trees")
    rows = study.predictor_runs(table, truth, args, log)
    _, search_half = _halves()
    assert set(rows["strategy"]) == {"predictor"} and set(rows["pool"]) == {"search half"}
    assert set(rows["objective"]) == {"few-shot random_forest (initial 10, batch 10)",
                                      "few-shot extra_trees (initial 12, batch 5)"}
    assert sorted(set(rows["budget"])) == [10, 20, 30]
    assert (rows["evaluations"] == rows["budget"]).all()
    assert set(rows["arch"]) <= set(search_half.tolist())
    at_30 = rows[rows["budget"] == 30]
    assert (at_30.groupby("objective")["pgd_8"].min().to_numpy()
            >= rows[rows["budget"] == 10].groupby("objective")["pgd_8"].min().to_numpy()).all()
    assert "2 stored outputs (meco, synflow) + 70 NB201 graph features" in log[-1]


def test_the_predictor_grid_is_parsed_or_named_in_the_error(study):
    assert study.parse_grid("20x10, 50X10:extra_trees") == [(20, 10, "random_forest"), (50, 10, "extra_trees")]
    assert study.parse_grid("") == []
    for bad in ("20", "20x10:svm", "ax10"):
        with pytest.raises(ValueError, match="--predictor-grid"):
            study.parse_grid(bad)


def test_targets_are_marked_met_only_at_their_thresholds(study):
    def row(strategy, objective, median, found):
        return {"strategy": strategy, "objective": objective, "runs": 20, "percentile_median": median,
                "percentile_mean": median, "found_best": found / 20}

    summary = pd.DataFrame([row("rea", "zs", 99.8, 0), row("random", "zs", 100.0, 20), row("rea", "meco", 100.0, 20),
                            row("predictor", "a", 99.9, 5), row("predictor", "b", 100.0, 4),
                            row("predictor", "c", 99.89, 20)])
    lines = study.target_lines(summary, "zs", 2581)
    assert len(lines) == 4
    assert "**met**" in lines[0] and "zs: median 99.80" in lines[0]
    assert ["**met**" in line for line in lines[1:]] == [True, False, False]
    assert "found in 4 of 20 seeds" in lines[2]
    lower = study.target_lines(summary.assign(percentile_median=99.79), "zs", 2581)
    assert "**not met**" in lower[0]


def test_the_summary_counts_runs_that_return_the_benchmark_best(study):
    runs = pd.DataFrame({"strategy": "rea", "objective": "x", "pool": "p", "budget": 100, "seed": range(4),
                         "arch": [2581, 7, 2581, 2581], "evaluations": 100, "pgd_8": 0.4, "clean": 0.7,
                         "autoattack": 0.3, "percentile": 99.0, "regret": 0.01})
    summary = study.summarise(runs, 100, best_arch=2581)
    assert summary.loc[0, "found_best"] == pytest.approx(0.75)
