"""The science studies run end to end on the committed stores (small settings), so a library change that breaks
a study is caught here, not at the next study run (as dedupe_isomorphs' new argument once was)."""
from __future__ import annotations

import numpy as np


def test_few_shot_runs_every_method_on_the_same_split(data_dir, benchmark_script):
    few_shot = benchmark_script("few_shot")
    raw = few_shot.run(["sample_1000"], seeds=1, ks=(20,))
    assert set(raw["method"]) == set(few_shot.METHODS)
    assert set(raw["target"]) == set(few_shot.TARGETS)
    assert (raw["n_train"] == 20).all() and (raw["n_test"] == 980).all()
    members = raw.set_index("method")["members"]
    graph_columns = set(members["graph_only"].iloc[0].split(","))
    proxy_columns = set(members["predictor"].iloc[0].split(","))
    assert "paths" in graph_columns and "meco" in proxy_columns and not graph_columns & proxy_columns
    assert set(members["predictor_graph"].iloc[0].split(",")) == graph_columns | proxy_columns
    learned = raw[raw["method"].isin(list(few_shot.LEARNED))]["kendall"].to_numpy()
    assert np.isfinite(learned).all() and (learned > 0.2).all() and (learned < 0.95).all()


def test_size_blind_runs_and_keeps_meco_above_size(data_dir, benchmark_script):
    size_blind = benchmark_script("size_blind")
    table = size_blind.run(5).set_index("proxy")
    assert 0.45 < table.loc["meco", "partial_pgd_8"] < 0.7  # committed: 0.567 with 1,000 resamples
    assert np.isnan(table.loc["params", "partial_pgd_8"])  # params given params is undefined


def test_ntk_noise_effect_by_hand(benchmark_script):
    """studies/ntk_stability.py --noise-effect: no measured change leaves every draw at the stored tau; a score
    equal to the target has tau 1, and noise of a given size can only lower it."""
    import pandas as pd

    stability = benchmark_script("ntk_stability")
    rng = np.random.default_rng(0)
    target = pd.Series(rng.random(200), index=range(200))
    scores = pd.DataFrame({"ntk_clean": target + rng.normal(scale=0.3, size=200), "ntk_robust": target,
                           "ntk_joint_robust": target.rank()})
    still = pd.DataFrame({f"{o}_{d}": [1.0, 2.0] for o in ("ntk_robust", "ntk_joint_robust")
                          for d in ("float32", "float64")})
    draws = stability.noise_effect(still, scores, target, draws=5, seed=0)
    assert len(draws) == 6 and (draws["ntk_robust"] == 1.0).all() and (draws["ntk_joint_robust"] == 1.0).all()
    assert np.allclose(draws["ntk_robust_minus_clean"], 1.0 - draws["ntk_clean"])
    noisy = still.assign(ntk_robust_float64=[1.5, 3.0])  # 50 % changes
    draws = stability.noise_effect(noisy, scores, target, draws=5, seed=0)
    assert draws["ntk_robust"].iloc[0] == 1.0 and (draws["ntk_robust"].iloc[1:] < 1.0).all()
    assert (draws["ntk_joint_robust"] == 1.0).all()  # its measured change is 0


def test_vkdnw_rankings_rank_only_complete_rows_and_match_the_library(benchmark_script):
    import pandas as pd

    from zcproxy.proxies.vkdnw import vkdnw_ranks

    study = benchmark_script("vkdnw_rankings")
    table = pd.DataFrame({"vkdnw": [0.5, 0.7, 0.6, float("nan")], "vkdnw_dim": [10.0, 10.0, 12.0, 12.0],
                          "az_nas_expressivity": [1.0, 2.0, 3.0, 4.0], "az_nas_trainability": [3.0, 1.0, 2.0, 4.0],
                          "flops": [5.0, 6.0, 7.0, 8.0], "jacov": [0.1, 0.3, 0.2, 0.4], "params": [1.0, 2.0, 3.0, 4.0]},
                         index=[11, 12, 13, 14])
    out = study.ranked(table)
    assert list(out.index) == [11, 12, 13]  # arch 14 lacks vkdnw: not ranked, and not in the population
    expected = vkdnw_ranks(table.loc[[11, 12, 13]])
    assert out["vkdnw_single"].equals(expected["vkdnw_single"]) and out["vkdnw_agg"].equals(expected["vkdnw_agg"])
    assert out["vkdnw_single"].rank().tolist() == [1.0, 2.0, 3.0]  # (10, .5) < (10, .7) < (12, .6)
