"""benchmarks/ntk_sweep.py: its stored values are exactly what zcproxy.score records, and it resumes."""
from __future__ import annotations


import pandas as pd
import pytest

import zcproxy
from zcproxy.store import load, settings_hash



@pytest.fixture(scope="module")
def sweep(benchmark_script):
    return benchmark_script("ntk_sweep")


def test_phases_put_the_cheap_work_first_and_pair_every_arch(sweep):
    items = sweep.phases([7, 8, 9], batch_archs=2)
    assert items == [(7, "fgsm", "frozen"), (8, "fgsm", "frozen"), (9, "fgsm", "frozen"),
                     (7, "pgd", "frozen"), (8, "pgd", "frozen"), (9, "pgd", "frozen"),
                     (7, "fgsm", "batch"), (8, "fgsm", "batch"), (7, "pgd", "batch"), (8, "pgd", "batch")]


def test_run_stores_what_score_would_and_resumes(sweep, data_dir, tmp_path, capsys):
    store = tmp_path / "sweep.sqlite"
    argv = ["run", "--store", str(store), "--archs", "1", "--batch-archs", "0", "--batch", "4",
            "--data-dir", str(data_dir)]
    assert sweep.main(argv) == 0
    frame = load(store)
    arch = int(frame["arch"].iloc[0])
    assert frame["arch"].nunique() == 1
    # 2 attacks x 5 eps x (3 base outputs + 2 joint outputs x 5 betas), ntk_clean/ntk_cond shared per hash
    assert frame["settings_hash"].nunique() == len(frame)
    assert len(frame) >= 2 * 5 * (1 + 2 * 5)
    for attack, ticks, beta in (("fgsm", 8, 1.0), ("pgd", 2, 0.25)):
        ours = zcproxy.score(arch, ["ntk_robust", "ntk_joint_robust"], batch_size=4, data_dir=data_dir,
                             attack=attack, eps=ticks / 255, beta=beta, ntk_bn="frozen")
        for name, result in ours.items():
            row = frame[frame["settings_hash"] == settings_hash(result.settings)]
            assert len(row) == 1, (name, attack, ticks, beta)
            assert float(row["value"].iloc[0]) == pytest.approx(result.value, rel=1e-5)
    capsys.readouterr()
    assert sweep.main(argv) == 0
    assert capsys.readouterr().out == ""  # everything done: nothing recomputed
    assert len(load(store)) == len(frame)


def test_report_leaves_out_configurations_with_too_few_attacked_archs(sweep, data_dir, tmp_path, capsys):
    import numpy as np
    from types import SimpleNamespace

    from zcproxy.store import Store
    from zcproxy.truth import load_nasrobbench201

    truth = load_nasrobbench201(data_dir)
    archs = sweep.sample_archs(40, seed=0)
    pgd = truth[("cifar10", "pgd_8")]
    fgsm_plan = sweep.planned(("fgsm", 8, "frozen"), seed=0, batch_size=64)
    pgd_plan = sweep.planned(("pgd", 8, "frozen"), seed=0, batch_size=64)
    rng = np.random.default_rng(0)
    store = tmp_path / "sweep.sqlite"
    with Store(store) as s:
        for k, arch in enumerate(archs):
            for plan in (fgsm_plan, pgd_plan) if k < 5 else (fgsm_plan,):
                results = {f"{label}#{settings_hash(settings)}": SimpleNamespace(
                    value=float(pgd[arch] + rng.normal(0, 1e-3)) * (-1 if label == "ntk_cond" else 1),
                    settings=settings, seconds=0.0, flags=()) for label, settings in plan.items()}
                s.put(arch, results, device="cpu")
    out = tmp_path / "report"
    argv = ["report", "--store", str(store), "--out", str(out), "--data-dir", str(data_dir), "--bootstrap", "50"]
    assert sweep.main(argv) == 0
    capsys.readouterr()
    text = (out / "ntk_sweep.md").read_text()
    assert "pgd 8/255 frozen (5 archs)" in text
    table = pd.read_csv(out / "ntk_sweep.csv")
    assert set(table["attack"]) == {"fgsm"} and (table["n"] == 40).all()
    robust = table[(table["proxy"] == "ntk_robust") & (table["metric"] == "pgd_8")]
    assert float(robust["kendall"].iloc[0]) > 0.9
    assert sweep.main(argv + ["--min-archs", "41"]) == 1


def test_shards_split_the_work_without_overlap(sweep, data_dir, tmp_path):
    store = tmp_path / "shard.sqlite"
    argv = ["run", "--store", str(store), "--archs", "1", "--batch-archs", "0", "--batch", "4",
            "--data-dir", str(data_dir), "--shard", "1/2"]
    assert sweep.main(argv) == 0
    frame = load(store)
    attacks = {s.get("attack") for s in frame["settings"]}
    # work items are (arch, fgsm, frozen), (arch, pgd, frozen): shard 1 of 2 takes only the PGD item
    # (ntk_clean and ntk_cond record no attack)
    assert attacks == {"pgd", None}


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1/0", "a/b", "1"])
def test_bad_shard_is_refused_with_the_expected_form(sweep, text, capsys):
    with pytest.raises(SystemExit):
        sweep.main(["run", "--shard", text])
    assert "--shard" in capsys.readouterr().err
