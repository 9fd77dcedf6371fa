"""benchmarks/ntk_sweep.py: its stored values are exactly what zcproxy.score records, and it resumes."""
from __future__ import annotations


import pytest

import zcproxy
from zcproxy.store import load, settings_hash



@pytest.fixture(scope="module")
def sweep(benchmark_script):
    return benchmark_script("ntk_sweep")


def test_phases_put_the_cheap_attack_first_and_pair_every_arch(sweep):
    items = sweep.phases([7, 8, 9], batch_archs=2)
    assert items[:5] == [(7, "fgsm", "frozen"), (8, "fgsm", "frozen"), (9, "fgsm", "frozen"),
                         (7, "fgsm", "batch"), (8, "fgsm", "batch")]
    assert items[5:] == [(7, "pgd", "frozen"), (8, "pgd", "frozen"), (9, "pgd", "frozen"),
                         (7, "pgd", "batch"), (8, "pgd", "batch")]


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
