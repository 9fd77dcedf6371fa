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
