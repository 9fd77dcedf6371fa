"""README claims that code can check: the score() signature, the data layout, the measured demo time."""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import zcproxy
from zcproxy.fetch import MANIFEST

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_shows_the_real_score_signature():
    match = re.search(r"`zcproxy\.score\(([^`]*)\)`", README)
    assert match, "README lost the zcproxy.score(...) signature line"
    shown = [p.strip() for p in match.group(1).replace("\n", " ").split(",") if p.strip()]
    real = []
    for p in inspect.signature(zcproxy.score).parameters.values():
        if p.kind is p.KEYWORD_ONLY and "*" not in real:
            real.append("*")
        if p.kind is p.VAR_KEYWORD:
            real.append(f"**{p.name}")
        elif p.default is p.empty:
            real.append(p.name)
        else:
            real.append(p.name + "=" + repr(p.default))
    normalised = [s if "=" not in s else s.split("=", 1)[0] + "=" + repr(ast.literal_eval(s.split("=", 1)[1]))
                  for s in shown]
    assert normalised == real


def test_readme_data_layout_lists_every_fetched_file():
    layout = README[README.index("## Data"):README.index("## Scoring at scale")]
    for resource in MANIFEST.values():
        assert resource.target.rsplit("/", 1)[-1] in layout, resource.target
    assert "NasBenchID_6466_idx.txt" in layout


def test_readme_demo_time_is_the_committed_measurement():
    report = (ROOT / "results" / "perf" / "demo_time.md").read_text()
    measured = re.search(r"Measured wall time: \*\*(\d+) s\*\*", report).group(1)
    idle = re.search(r"two idle cores.*?\*\*(\d+) s\*\*", report).group(1)
    demo = README[README.index("## Two commands"):README.index("## Ten lines of Python")]
    assert f"{idle} s" in demo and f"{measured} s" in demo
    assert "results/perf/demo_time.md" in demo


def test_readme_predictor_figures_are_the_committed_study():
    import pandas as pd

    summary = pd.read_csv(ROOT / "results" / "predictor" / "few_shot_summary.csv")
    rows = summary[(summary["set"] == "all_representatives") & (summary["target"] == "pgd_8")]

    def at(k: int, method: str) -> pd.Series:
        return rows[(rows["k"] == k) & (rows["method"] == method)].iloc[0]

    bullet = " ".join(README[README.index("- [results/predictor/]"):README.index("- [results/perf/]")].split())
    et = at(100, "predictor_graph_et")
    assert f"τ {et['kendall']:.3f} [{et['ci_lo']:.3f}, {et['ci_hi']:.3f}]" in bullet
    assert f"(random forest {at(100, 'predictor_graph')['kendall']:.3f}," in bullet
    assert f"the proxies alone {at(100, 'predictor')['kendall']:.3f}" in bullet
    assert f"{at(500, 'predictor_graph_et')['kendall']:.3f} at K = 500" in bullet
    assert f"against {at(100, 'best_single_oracle')['kendall']:.3f} for MeCo" in bullet
    assert at(10, "predictor_graph")["kendall"] < at(10, "predictor")["kendall"]  # "below K = 20 ... hurt"
    assert at(20, "predictor_graph")["kendall"] < at(20, "predictor")["kendall"]


def test_readme_search_sentence_is_the_committed_summary():
    """The README's search numbers (zero-shot REA median, few-shot finds of 2581, oracle REA) come from
    results/search/summary.csv."""
    import pandas as pd

    summary = pd.read_csv(ROOT / "results/search/summary.csv")
    rea = summary[summary["strategy"] == "rea"].set_index("objective")
    zero_shot = rea.loc[[o for o in rea.index if o.startswith("ensemble (zero-shot")]]
    assert len(zero_shot) == 1
    assert f"median percentile {zero_shot['percentile_median'].iloc[0]:.2f}" in README
    found = (summary.loc[summary["strategy"] == "predictor", "found_best"] * 20).round().astype(int)
    assert f"in {found.min()}–{found.max()} of 20 seeds" in README
    oracle = int(round(rea.loc["oracle [search half]", "found_best"] * 20))
    assert f"REA on the true accuracy itself: {oracle} of 20" in README


def test_readme_attack_precision_figures_are_the_committed_stability_measurement():
    import pandas as pd

    rows = pd.read_csv(ROOT / "results/stability/ntk_attack_precision.csv")
    assert f"flipped up to {rows['flips_layout_float32'].max():,} of {rows['components'].iloc[0]:,} signs" in README
    assert f"`ntk_robust` by up to {100 * rows['rel_ntk_robust_float32_vs_stored'].max():.1f} %" in README
    assert f"`ntk_joint_robust` by up to {100 * rows['rel_ntk_joint_robust_float32_vs_stored'].max():.0f} %" in README
    assert rows[["flips_layout_float64", "flips_threads_float64"]].to_numpy().max() == 0
    assert f"on any of {len(rows)} architectures" in README


def test_findings_noise_paragraph_is_the_committed_noise_effect():
    import pandas as pd

    findings = " ".join((ROOT / "results/correlation/README.md").read_text().split())
    draws = pd.read_csv(ROOT / "results/stability/ntk_noise_effect.csv")
    stored, noisy = draws.iloc[0], draws.iloc[1:]["ntk_joint_robust_minus_clean"]
    diff = stored["ntk_joint_robust_minus_clean"]
    assert f"difference of +{diff:.4f} by a median {(noisy - diff).abs().median():.4f}" in findings
    assert f"within [+{noisy.quantile(0.025):.4f}, +{noisy.quantile(0.975):.4f}]" in findings
    assert (noisy > 0).all()  # "never its sign"
    assert (noisy - diff).abs().max() < diff / 2.5  # "at most about a third"


def test_findings_ensemble_figures_are_the_committed_ensemble_page():
    import pandas as pd

    findings = " ".join((ROOT / "results/correlation/README.md").read_text().split())
    folds = pd.read_csv(ROOT / "results/correlation/ensemble/correlation_nasrobbench201_cifar10_ensemble_cifar10_pgd_8.csv")
    best = folds[(folds["method"] == "logrank") & (folds["exhaustive"] == 3)].sort_values("fold")
    assert set(best["members"]) == {"croze,jacov,meco"}
    assert "CRoZe + jacob_cov + MeCo on both halves" in findings
    assert f"held-out τ {best['test_kendall'].iloc[0]:.3f} / {best['test_kendall'].iloc[1]:.3f}" in findings
    greedy = folds[(folds["method"] == "logrank") & (folds["exhaustive"] == 1)]
    assert set(greedy["members"]) == {"meco"}  # "greedy log-rank selection keeps MeCo alone"


def test_findings_pairs_with_meco_rank_worse_than_meco(data_dir):
    import numpy as np
    import scipy.stats

    from zcproxy.store import load, pivot
    from zcproxy.truth import load_nasrobbench201

    findings = " ".join((ROOT / "results/correlation/README.md").read_text().split())
    scores = pivot(load(ROOT / "results/correlation/stores/study_cifar10.sqlite"))
    logs = np.log(scores.rank(pct=True))
    target = load_nasrobbench201(data_dir)[("cifar10", "pgd_8")].reindex(scores.index)

    def tau(*members: str) -> float:
        return scipy.stats.kendalltau(logs[list(members)].mean(axis=1), target).statistic

    expected = (f"(τ {tau('croze', 'meco'):.3f} and {tau('jacov', 'meco'):.3f} against {tau('meco'):.3f} on the "
                "whole sample)")
    assert expected in findings


def test_findings_ntk_variant_figures_are_the_committed_variant_study():
    import pandas as pd

    findings = " ".join((ROOT / "results/correlation/README.md").read_text().split())
    rows = pd.read_csv(ROOT / "results/correlation/ntk_variants.csv")

    def ci(section: str, variant: str, score: str, column: str = "delta") -> str:
        r = rows[(rows["section"] == section) & (rows["variant"] == variant) & (rows["score"] == score)
                 & (rows["against"] == "pgd_8")].iloc[0]
        fmt = lambda v: f"{v:+.3f}".replace("-", "−")  # noqa: E731
        return f"{fmt(r[column])} [{fmt(r[column + '_lo'])}, {fmt(r[column + '_hi'])}]"

    assert ci("accuracy", "float64_attack", "ntk_robust") in findings
    for variant in ("eps16", "attack_bn_eval", "seed1", "seed2", "trace_normalised"):
        assert ci("robust_minus_clean", variant, "ntk_robust") in findings, variant
    assert ci("accuracy", "trace_normalised", "ntk_clean") in findings
    gains = rows[(rows["section"] == "robust_minus_clean") & (rows["against"] == "pgd_8")]
    assert (gains["delta_lo"] <= 0).all()  # "no variant ... with a CI above 0"
    seeds = rows[rows["section"] == "seed_to_seed"].set_index("score")["kendall"]
    lam = seeds.drop("ntk_cond")
    assert f"seed-to-seed Kendall τ of the scores is {lam.min():.2f}–{lam.max():.2f}" in findings
    assert f"(`ntk_cond` {seeds['ntk_cond'].min():.2f}–{seeds['ntk_cond'].max():.2f})" in findings
    moved = rows[(rows["section"] == "accuracy") & rows["variant"].isin(["seed1", "seed2"])
                 & (rows["against"] == "pgd_8")]["delta"]
    assert f"moves by up to +{moved.max():.3f} between seeds" in findings


def test_findings_new_proxy_figures_are_the_committed_all_representatives_export():
    import pandas as pd

    findings = " ".join((ROOT / "results/correlation/README.md").read_text().split())
    folder = ROOT / "results/correlation/all_representatives"
    table = pd.read_csv(folder / "correlation_nasrobbench201_cifar10.csv")
    table = table[table["metric"] == "pgd_8"].set_index("proxy")
    r = table.loc["swap_reg"]
    assert f"regularised SWAP τ {r['kendall']:.3f} [{r['kendall_lo']:.3f}, {r['kendall_hi']:.3f}] ({int(r['n'])} archs" in findings
    assert f"plain SWAP {table.loc['swap', 'kendall']:.3f} and GradSign {table.loc['gradsign', 'kendall']:.3f}" in findings
    assert f"CRoZe {table.loc['croze', 'kendall']:.3f} on {int(table.loc['croze', 'n']):,}" in findings
    assert f"`graph_convs` (convolutions on an input-output path) {table.loc['graph_convs', 'kendall']:.3f}" in findings
    folds = pd.read_csv(folder / "ensemble/correlation_nasrobbench201_cifar10_ensemble_cifar10_pgd_8.csv")
    best = folds[(folds["method"] == "logrank") & (folds["exhaustive"] == 3)].sort_values("fold")
    assert set(best["members"]) == {"flops,jacov,meco"}
    assert (f"FLOPs + jacob_cov + MeCo reach {best['test_kendall'].iloc[0]:.3f} / {best['test_kendall'].iloc[1]:.3f} "
            f"against MeCo's {best['best_single_test_kendall'].iloc[0]:.3f} / "
            f"{best['best_single_test_kendall'].iloc[1]:.3f}") in findings
    assert (best["test_kendall"] < 0.80).all()  # "the zero-shot target ... is not met"


def test_findings_size_blind_counts_are_the_committed_table():
    import pandas as pd

    findings = " ".join((ROOT / "results/correlation/README.md").read_text().split())
    table = pd.read_csv(ROOT / "results/correlation/size_blind.csv").set_index("proxy")
    defined = table["partial_pgd_8"].notna()
    above = int((table.loc[defined, "partial_pgd_8_lo"] > 0).sum())
    assert f"and {above} of {len(table)} outputs stay above 0" in findings  # as size_blind.md counts
    r = table.loc["swap_reg"]
    assert f"regularised SWAP {r['partial_pgd_8']:.3f} [{r['partial_pgd_8_lo']:.3f}, {r['partial_pgd_8_hi']:.3f}]" in findings
    g = table.loc["gradsign"]
    assert g["partial_pgd_8"] < 0.05 and g["partial_pgd_8_lo"] < 0.01  # "almost all size"
    assert f"GradSign's {g['partial_pgd_8']:.3f} [{g['partial_pgd_8_lo']:.3f}, {g['partial_pgd_8_hi']:.3f}]" in findings


def test_findings_predictor_ceiling_is_the_committed_benchmark_agreement():
    import pandas as pd

    agreement = pd.read_csv(ROOT / "results" / "correlation" / "benchmark_agreement.csv")
    row = agreement[(agreement["dataset"] == "cifar10") & (agreement["metric_a"] == "clean")
                    & (agreement["metric_b"] == "pgd_8") & (agreement["source_b"] == "NAS-RobBench-201")].iloc[0]
    findings = " ".join((ROOT / "results" / "correlation" / "README.md").read_text().split())
    assert f"ranks their PGD-8/255 accuracy at τ {row['kendall']:.3f}" in findings


def test_findings_vkdnw_rankings_are_the_committed_study():
    import pandas as pd

    findings = " ".join((ROOT / "results/correlation/README.md").read_text().split())
    rows = pd.read_csv(ROOT / "results/correlation/vkdnw_rankings.csv")
    nb = rows[(rows["set"] == "nb201_sample") & (rows["truth"] == "nasrobbench201 pgd_8")].set_index("output")
    darts = rows[rows["set"] == "darts1000"].set_index("output")["kendall"]
    assert (f"give VKDNW_single {nb.loc['vkdnw_single', 'kendall']:.3f} and VKDNW_agg (with AZ-NAS, FLOPs and "
            f"jacob_cov) {nb.loc['vkdnw_agg', 'kendall']:.3f} on those archs, against "
            f"{nb.loc['params', 'kendall']:.3f} for the parameter count there") in findings
    assert (f"on DARTS-1000 VKDNW_agg is {darts['vkdnw_agg']:.3f} and VKDNW_single {darts['vkdnw_single']:.3f} "
            f"(params {darts['params']:.3f})") in findings
    assert f"VKDNW ({int(nb.loc['vkdnw', 'n'])} archs of the sample so far)" in findings
