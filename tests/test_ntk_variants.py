"""studies/ntk_variants.py: it stores exactly what zcproxy.score records, resumes, and reports the right tau."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import zcproxy
from zcproxy.store import Store, load, settings_hash


@pytest.fixture(scope="module")
def variants(benchmark_script):
    return benchmark_script("ntk_variants")


def test_work_order_puts_variants_1_to_5_of_every_arch_before_the_per_class_ones(variants):
    items = variants.work_items([7, 8])
    assert [arch for arch, _ in items] == [7, 8, 7, 8]
    cheap, costly = items[0][1], items[2][1]
    assert [v.name for v in cheap] == ["float64_attack", "eps16", "attack_bn_eval", "trace_normalised",
                                       "seed1", "seed2"]
    assert [v.name for v in costly] == ["per_class_trace", "per_class_full"]
    assert items[1][1] == cheap and items[3][1] == costly
    # per-class variants score one kernel per call (bounded memory); the others share one call
    assert variants.calls(variants.BY_NAME["per_class_full"]) == [("ntk_clean", "ntk_cond"), ("ntk_robust",),
                                                                  ("ntk_joint_robust",)]
    assert variants.calls(variants.BY_NAME["seed1"]) == [variants.ALL_OUTPUTS]


def test_run_stores_what_score_would_and_resumes(variants, data_dir, tmp_path, capsys):
    store = tmp_path / "variants.sqlite"
    chosen = "float64_attack,eps16,attack_bn_eval,trace_normalised,seed2,per_class_trace"
    argv = ["run", "--store", str(store), "--archs", "2", "--batch", "2", "--variants", chosen,
            "--data-dir", str(data_dir)]
    assert variants.main(argv) == 0
    frame = load(store)
    archs = variants.sample_archs(2, 0)
    assert sorted(frame["arch"].unique()) == sorted(archs)
    picked = variants.variant_list(chosen)
    expected = {settings_hash(s) for v in picked for s in variants.planned(v, batch_size=2).values()}
    assert set(frame["settings_hash"]) == expected
    assert len(frame) == 2 * len(expected)
    for name in ("eps16", "trace_normalised", "seed2", "per_class_trace"):
        v = variants.BY_NAME[name]
        ours = zcproxy.score(archs[0], list(v.outputs), batch_size=2, data_dir=data_dir, seed=v.seed,
                             **variants.options_for(v.outputs, v.all_options))
        for output, result in ours.items():
            row = frame[(frame["arch"] == archs[0]) & (frame["settings_hash"] == settings_hash(result.settings))]
            assert len(row) == 1, (name, output)
            assert row["proxy"].iloc[0] == output
            assert float(row["value"].iloc[0]) == pytest.approx(result.value, rel=1e-5), (name, output)
    settings = frame["settings"].tolist()
    assert {s.get("attack_dtype") for s in settings} == {"float64", None}  # None: ntk_clean / ntk_cond
    assert {s["seed"] for s in settings} == {0, 2}
    capsys.readouterr()
    before = load(store)
    assert variants.main(argv) == 0
    out = capsys.readouterr().out
    assert "] arch " not in out  # nothing recomputed: no progress line, only the start and end lines
    after = load(store)
    assert len(after) == len(before) and (after["timestamp"].to_numpy() == before["timestamp"].to_numpy()).all()


def _put(store, arch, plan, value_of):
    """Write hand-made values for one arch: every output of ``plan`` stored under its exact settings."""
    with Store(store) as s:
        s.put(arch, {o: SimpleNamespace(value=value_of(o), settings=settings, seconds=0.0, flags=())
                     for o, settings in plan.items()}, device="cpu")


def test_report_gives_the_hand_checkable_tau(variants, data_dir, tmp_path, capsys):
    from zcproxy.truth import load_nasrobbench201

    pgd = load_nasrobbench201(data_dir)[("cifar10", "pgd_8")]
    archs = variants.sample_archs(40, 0)
    noise = dict(zip(archs, np.random.default_rng(3).normal(size=len(archs))))

    def truth_like(arch):  # values ranking the archs exactly as PGD-8 accuracy (ntk_cond: lower is better)
        return lambda o: float(pgd[arch]) * (-1.0 if o == "ntk_cond" else 1.0)

    sweep, ours = tmp_path / "sweep.sqlite", tmp_path / "variants.sqlite"
    for k, arch in enumerate(archs):
        # the sweep's float32 base ranks by the truth for clean/cond, and reverses it for robust/joint
        f32 = {o: variants.base_settings(o, attack_dtype="float32", batch_size=64) for o in variants.ALL_OUTPUTS}
        _put(sweep, arch, f32, lambda o, a=arch: (-1.0 if o in ("ntk_robust", "ntk_joint_robust") else 1.0)
             * truth_like(a)(o))
        for v in variants.VARIANTS:
            if v.per_class:
                continue
            plan = variants.planned(v, batch_size=64)
            if v.name == "eps16":  # noise: tau ~ 0
                _put(ours, arch, plan, lambda o, a=arch: float(noise[a]))
            elif v.name == "attack_bn_eval" and k >= 20:  # too few archs: left out and named
                continue
            else:
                _put(ours, arch, plan, truth_like(arch))
    out = tmp_path / "report"
    argv = ["report", "--store", str(ours), "--sweep-store", str(sweep), "--out", str(out),
            "--data-dir", str(data_dir), "--bootstrap", "50"]
    assert variants.main(argv) == 0
    capsys.readouterr()
    table = pd.read_csv(out / "ntk_variants.csv")
    text = (out / "ntk_variants.md").read_text()
    assert "attack_bn_eval (20 archs)" in text and "per_class_full (0 archs)" in text
    assert "attack_bn_eval" not in set(table["variant"])
    acc = table[(table["section"] == "accuracy") & (table["against"] == "pgd_8")].set_index(["variant", "score"])
    for v in ("float64_attack", "trace_normalised", "seed1", "seed2"):
        for o in variants.BY_NAME[v].outputs:
            assert acc.loc[(v, o), "n"] == 40
            assert acc.loc[(v, o), "kendall"] == pytest.approx(1.0)
    assert acc.loc[("sweep_float32", "ntk_robust"), "kendall"] == pytest.approx(-1.0)
    assert acc.loc[("sweep_float32", "ntk_clean"), "kendall"] == pytest.approx(1.0)
    # float64 vs the sweep's float32 on the same archs: 1 - (-1) = 2; the others vs the float64 base: 0
    assert acc.loc[("float64_attack", "ntk_robust"), "delta"] == pytest.approx(2.0)
    assert acc.loc[("float64_attack", "ntk_robust"), "base"] == "sweep_float32"
    assert acc.loc[("seed1", "ntk_joint_robust"), "delta"] == pytest.approx(0.0)
    assert acc.loc[("seed1", "ntk_joint_robust"), "base"] == "float64_base"
    assert abs(acc.loc[("eps16", "ntk_robust"), "kendall"]) < 0.35
    assert acc.loc[("eps16", "ntk_robust"), "delta"] == pytest.approx(acc.loc[("eps16", "ntk_robust"), "kendall"] - 1)
    rmc = table[(table["section"] == "robust_minus_clean") & (table["against"] == "pgd_8")].set_index(
        ["variant", "score"])
    assert rmc.loc[("sweep_float32", "ntk_robust"), "delta"] == pytest.approx(-2.0)
    assert rmc.loc[("float64_attack", "ntk_robust"), "delta"] == pytest.approx(0.0)
    seeds = table[table["section"] == "seed_to_seed"].set_index(["variant", "score"])
    for o in variants.ALL_OUTPUTS:  # identical columns: tau 1
        assert seeds.loc[("seed1~seed2", o), "kendall"] == pytest.approx(1.0)
        assert seeds.loc[("seed0~seed1", o), "n"] == 40
    assert seeds.loc[("seed0~seed1", "ntk_clean"), "kendall"] == pytest.approx(1.0)
    assert variants.main(argv + ["--min-archs", "41"]) == 1


def test_seed_tau_matches_scipy_and_ignores_non_finite(variants):
    from scipy.stats import kendalltau

    rng = np.random.default_rng(0)
    a = pd.Series(rng.normal(size=50))
    b = a + pd.Series(rng.normal(size=50))
    b.iloc[3] = np.inf
    t = variants.seed_tau(a, b, bootstrap=100, seed=0)
    keep = np.isfinite(b)
    assert t["n"] == 49
    assert t["kendall"] == pytest.approx(kendalltau(a[keep], b[keep]).statistic)
    assert t["kendall_lo"] <= t["kendall"] <= t["kendall_hi"]
