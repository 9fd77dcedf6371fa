"""studies/ntk_sweep.py: its stored values are exactly what zcproxy.score records, and it resumes."""
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
                             attack=attack, eps=ticks / 255, beta=beta, ntk_bn="frozen",
                             attack_dtype=sweep.ATTACK_DTYPE)
        for name, result in ours.items():
            row = frame[frame["settings_hash"] == settings_hash(result.settings)]
            assert len(row) == 1, (name, attack, ticks, beta)
            assert float(row["value"].iloc[0]) == pytest.approx(result.value, rel=1e-5)
    capsys.readouterr()
    assert sweep.main(argv) == 0
    assert capsys.readouterr().out == ""  # everything done: nothing recomputed
    assert len(load(store)) == len(frame)


def _store_values(store, archs, plans_of, value_of):
    """Write fake sweep values: for each arch, every label of every plan in ``plans_of(k)`` gets
    ``value_of(arch, label)``, stored under exactly the settings the sweep uses."""
    from types import SimpleNamespace

    from zcproxy.store import Store

    with Store(store) as s:
        for k, arch in enumerate(archs):
            for plan in plans_of(k):
                results = {f"{label}#{settings_hash(settings)}": SimpleNamespace(
                    value=value_of(arch, label), settings=settings, seconds=0.0, flags=())
                    for label, settings in plan.items()}
                s.put(arch, results, device="cpu")


def test_report_leaves_out_configurations_with_too_few_attacked_archs(sweep, data_dir, tmp_path, capsys):
    import numpy as np

    from zcproxy.truth import load_nasrobbench201

    pgd = load_nasrobbench201(data_dir)[("cifar10", "pgd_8")]
    archs = sweep.sample_archs(40, seed=0)
    fgsm_plan = sweep.planned(("fgsm", 8, "frozen"), seed=0, batch_size=64)
    pgd_plan = sweep.planned(("pgd", 8, "frozen"), seed=0, batch_size=64)
    rng = np.random.default_rng(0)
    store = tmp_path / "sweep.sqlite"
    _store_values(store, archs, lambda k: (fgsm_plan, pgd_plan) if k < 5 else (fgsm_plan,),
                  lambda arch, label: float(pgd[arch] + rng.normal(0, 1e-3)) * (-1 if label == "ntk_cond" else 1))
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
    assert not (out / "ntk_sweep_bn.csv").exists()  # no batch-BN scores: no BN comparison
    assert (out / "ntk_sweep_vs_clean.png").read_bytes()[:4] == b"\x89PNG"
    vs_clean = pd.read_csv(out / "ntk_sweep_vs_clean.csv")  # numbers for machines, labels for readers
    assert np.allclose(vs_clean["eps"], 8 / 255)
    joint = vs_clean[vs_clean["score"].str.startswith("ntk_joint_robust@")]
    assert sorted(set(joint["beta"])) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert (joint["beta"] == [float(s.split("@")[1]) for s in joint["score"]]).all()
    assert "| 8/255 " in (out / "ntk_sweep_vs_clean.md").read_text()
    assert sweep.main(argv + ["--min-archs", "41"]) == 1


def test_report_compares_batch_with_frozen_bn_on_the_same_archs(sweep, data_dir, tmp_path, capsys):
    import numpy as np

    from zcproxy.truth import load_nasrobbench201

    pgd = load_nasrobbench201(data_dir)[("cifar10", "pgd_8")]
    archs = sweep.sample_archs(45, seed=0)
    frozen = sweep.planned(("fgsm", 8, "frozen"), seed=0, batch_size=64)
    batch = sweep.planned(("fgsm", 8, "batch"), seed=0, batch_size=64)
    noise = dict(zip(archs, np.random.default_rng(1).normal(size=len(archs))))
    store = tmp_path / "sweep.sqlite"
    # frozen values follow the truth (tau ~ 1); batch values (first 35 archs) are noise (tau ~ 0)
    _store_values(store, archs, lambda k: (frozen,), lambda arch, label: float(pgd[arch]))
    _store_values(store, archs[:35], lambda k: (batch,), lambda arch, label: float(noise[arch]))
    out = tmp_path / "report"
    argv = ["report", "--store", str(store), "--out", str(out), "--data-dir", str(data_dir), "--bootstrap", "50"]
    assert sweep.main(argv) == 0
    capsys.readouterr()
    table = pd.read_csv(out / "ntk_sweep_bn.csv")
    assert (table["n"] == 35).all()  # paired: only archs scored both ways
    assert set(table["metric"]) == {"pgd_8", "autoattack"}
    per_score = table.groupby("score").size()
    assert per_score["ntk_clean"] == 2 and per_score["ntk_joint_robust@1"] == 2
    clean = table[table["score"] == "ntk_clean"]
    assert set(clean["attack"]) == {"-"} and set(clean["eps"]) == {"-"}
    robust = table[(table["score"] == "ntk_robust") & (table["metric"] == "pgd_8")].iloc[0]
    assert robust["attack"] == "fgsm" and robust["eps"] == "8/255"
    assert robust["kendall_first"] > 0.95 and abs(robust["kendall_second"]) < 0.35
    assert robust["delta"] == pytest.approx(robust["kendall_second"] - robust["kendall_first"])
    assert robust["delta_hi"] < 0 and robust["p_not_better"] == 1.0
    fewer = tmp_path / "fewer"
    argv[argv.index(str(out))] = str(fewer)
    assert sweep.main(argv + ["--min-archs", "36"]) == 0  # the frozen configuration still reports
    assert (fewer / "ntk_sweep.csv").exists() and not (fewer / "ntk_sweep_bn.csv").exists()


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
