"""studies/study_export.py: one resumable store copy holding exactly the study's sample, merged from
several stores, and a study page whose counts match it."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from zcproxy.cli.score import parse_archs
from zcproxy.space import NB201
from zcproxy.store import Store, load
from zcproxy.truth import load_nasrobbench201


def _put(path, archs, proxies, values):
    with Store(path) as store:
        for arch in archs:
            store.put(arch, {p: SimpleNamespace(value=float(values(arch, p)), seconds=0.0, flags=(),
                                                settings={"proxy": p, "dataset": "cifar10", "seed": 0})
                             for p in proxies}, device="cpu")


def test_export_merges_stores_and_keeps_only_the_sample(benchmark_script, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ZCPROXY_DATA", str(data_dir))
    export = benchmark_script("study_export")
    truth = load_nasrobbench201(data_dir)
    pgd = truth[("cifar10", "pgd_8")]
    rng = np.random.default_rng(0)
    sample = parse_archs("sample:60", seed=0)
    wider = parse_archs("sample:200", seed=5)
    outside = sorted(set(wider) - set(sample))
    study, leaders = tmp_path / "study.sqlite", tmp_path / "leaders.sqlite"

    def noisy(arch, proxy):
        return pgd[arch] + rng.normal(0, 0.02 if proxy != "ntk_robust" else 0.01)

    _put(study, sample[:40], ["ntk_clean", "ntk_robust"], noisy)
    _put(leaders, sorted(set(sample) | set(wider)), ["meco", "synflow"], noisy)
    out = tmp_path / "results"
    assert export.main(["--store", str(study), "--store", str(leaders), "--planned", "60", "--bootstrap", "20",
                        "--out", str(out)]) == 0

    copy = load(out / "stores" / "study.sqlite")
    assert set(copy["arch"]) == set(sample)  # nothing outside the sample survives
    counts = copy.groupby("proxy")["arch"].nunique().to_dict()
    assert counts == {"meco": 60, "synflow": 60, "ntk_clean": 40, "ntk_robust": 40}
    assert set(load(leaders)["arch"]) == set(sample) | set(wider)  # the input stores are not touched
    page = (out / "study_cifar10.md").read_text()
    assert "40 of the planned 60" in page
    assert "--proxies meco,ntk_clean,ntk_robust,synflow --store stores/study.sqlite" in page
    assert f"{len(outside) * 2:,} scores of architectures outside the sample left out" in page
    table = pd.read_csv(out / "correlation_nasrobbench201_cifar10.csv")
    n = table[table["metric"] == "pgd_8"].set_index("proxy")["n"].to_dict()
    assert n == {"meco": 60, "synflow": 60, "ntk_clean": 40, "ntk_robust": 40}
    assert "ntk_robust" in page.split("against the clean NTK")[1]


def test_keep_only_drops_scores_and_failures_outside(benchmark_script, tmp_path):
    export = benchmark_script("study_export")
    path = tmp_path / "s.sqlite"
    _put(path, [1, 2, 3], ["params"], lambda a, p: a)
    with Store(path) as store:
        store.put_failure(3, "meco", "h", "boom")
        store.put_failure(2, "meco", "h", "boom")
    assert export.keep_only(path, [1, 2]) == 1
    assert sorted(load(path)["arch"]) == [1, 2]
    with Store(path, readonly=True) as store:
        assert store.failures()["arch"].tolist() == [2]


def test_the_resume_command_names_the_stored_proxies(benchmark_script):
    export = benchmark_script("study_export")
    from zcproxy import proxies

    assert export.stored_proxies(["meco", "synflow", "params"]) == "meco,params,synflow"
    assert export.stored_proxies(["az_nas_complexity", "ntk_cond"]) == "az_nas,ntk_cond"
    assert export.stored_proxies(list(proxies.outputs())) == "all"


def test_conflicts_are_summarised_by_their_largest_relative_difference(benchmark_script):
    export = benchmark_script("study_export")
    assert export.conflict_size([]) == ""
    text = export.conflict_size([{"kept": 1.0, "other": 1.000001}, {"kept": -200.0, "other": -202.0}])
    assert text == ", at most 9.9e-03 apart relative to their size"


def test_an_order_file_is_checked_against_the_sample_and_named_in_the_resume_command(
        benchmark_script, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZCPROXY_DATA", str(data_dir))
    export = benchmark_script("study_export")
    pgd = load_nasrobbench201(data_dir)[("cifar10", "pgd_8")]
    sample = parse_archs("sample:60", seed=0)
    shuffled = [sample[int(i)] for i in np.random.default_rng(1).permutation(len(sample))]
    out = tmp_path / "results"
    out.mkdir()
    order = out / "order.txt"
    order.write_text("# shuffled\n" + "\n".join(map(str, shuffled)) + "\n")
    study = tmp_path / "study.sqlite"
    _put(study, shuffled[:45], ["meco"], lambda a, p: pgd[a])
    args = ["--store", str(study), "--planned", "60", "--bootstrap", "20", "--out", str(out)]
    assert export.main([*args, "--order", str(order)]) == 0
    page = (out / "study_cifar10.md").read_text()
    assert "--archs order.txt --seed 0" in page
    assert "--order order.txt" in page
    assert "45 of the planned 60" in page and "uniform subsample" in page

    order.write_text("\n".join(map(str, shuffled[:-1])) + "\n")
    with pytest.raises(SystemExit) as stop:
        export.main([*args, "--order", str(order)])
    assert stop.value.code == 2
    assert "are not the 60 of sample:60" in capsys.readouterr().err


def test_the_committed_all_representatives_order_is_the_seeded_permutation():
    path = Path(__file__).resolve().parents[1] / "results/correlation/all_representatives/order_seed0.txt"
    unique = NB201.unique()
    expected = [unique[int(i)] for i in np.random.default_rng(0).permutation(len(unique))]
    assert parse_archs(str(path)) == expected
