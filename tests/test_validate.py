"""Correlation statistics, bootstrap CIs, isomorph handling, benchmark sanity, plots and `zcproxy correlate`."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from zcproxy.cli import main
from zcproxy.scoring import ProxyResult
from zcproxy.space import NB201
from zcproxy.validate import _stats, benchmark_agreement, compare, correlate, dedupe_isomorphs
from zcproxy.validate.plots import plot_heatmap, plot_scatter, plot_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _truth(values: dict[tuple[str, str], np.ndarray] | None = None, rng: np.random.Generator | None = None) -> pd.DataFrame:
    """A 15,625-row truth frame; isomorphs share their representative's value like the real loaders."""
    rng = rng or np.random.default_rng(0)
    reps = np.array([NB201.representative(i) for i in range(NB201.size())])
    columns = values or {(d, m): rng.random(NB201.size()) for d in ("cifar10", "cifar100") for m in ("clean", "pgd_8")}
    data = {key: np.asarray(col, dtype=float)[reps] for key, col in columns.items()}
    frame = pd.DataFrame(data, index=pd.RangeIndex(NB201.size(), name="index"))
    frame[("arch", "representative")] = reps
    frame.columns = pd.MultiIndex.from_tuples(list(frame.columns), names=["dataset", "metric"])
    return frame


def _isomorph_pair() -> tuple[int, int]:
    """A representative and another member of its class."""
    for i in range(NB201.size()):
        r = NB201.representative(i)
        if r != i:
            return r, i
    raise AssertionError("NB201 has isomorphs")


# ----------------------------------------------------------------------------- vectorised bootstrap kernels


@pytest.mark.parametrize("n", [3, 6, 40, 300])
def test_bootstrap_kernels_match_scipy_on_materialised_resamples(n):
    rng = np.random.default_rng(n)
    x = rng.integers(0, 6, n).astype(float)  # heavy ties in both variables
    y = x + rng.integers(0, 4, n)
    counts = np.concatenate([np.ones((n, 1), np.int32), _stats.resample_counts(n, 25, rng)], axis=1)
    assert (counts.sum(axis=0) == n).all()
    tau = _stats.kendall_tau_b(x, y, counts)
    rho = _stats.spearman_rho(x, y, counts)
    r = _stats.weighted_pearson(x * 1e30, y, counts)  # huge scales must not overflow or cancel
    for b in range(counts.shape[1]):
        xs, ys = np.repeat(x, counts[:, b]), np.repeat(y, counts[:, b])
        if np.ptp(xs) == 0 or np.ptp(ys) == 0:
            assert math.isnan(tau[b]) and math.isnan(rho[b]) and math.isnan(r[b])
            continue
        assert tau[b] == pytest.approx(scipy.stats.kendalltau(xs, ys).statistic, abs=1e-12)
        assert rho[b] == pytest.approx(scipy.stats.spearmanr(xs, ys).statistic, abs=1e-12)
        assert r[b] == pytest.approx(scipy.stats.pearsonr(xs, ys).statistic, abs=1e-12)


def test_kendall_and_spearman_hand_computed_with_a_tie():
    x = np.array([1.0, 2, 3, 4, 5])
    y = np.array([1.0, 2, 2, 4, 5])
    ones = np.ones(5, dtype=np.int32)
    # 10 pairs, 9 concordant, 0 discordant, 1 pair tied in y: 9 / sqrt(10 * 9)
    assert _stats.kendall_tau_b(x, y, ones)[0] == pytest.approx(9 / math.sqrt(90))
    # ranks y = 1, 2.5, 2.5, 4, 5: cov 9.5, var_x 10, var_y 9.5
    assert _stats.spearman_rho(x, y, ones)[0] == pytest.approx(9.5 / math.sqrt(95))


def _brute_top_precision(x: np.ndarray, y: np.ndarray, percent: float) -> float:
    """Average overlap over every tie-breaking order of x and of y."""
    n = x.size
    k = max(1, math.ceil(percent / 100 * n - 1e-9))
    def tops(v):
        return [frozenset(sorted(range(n), key=lambda i: (-v[i], perm.index(i)))[:k])
                for perm in itertools.permutations(range(n))]
    tx, ty = tops(x), tops(y)
    return sum(len(a & b) for a in tx for b in ty) / (len(tx) * len(ty) * k)


def test_top_k_precision_by_hand_and_against_brute_force():
    ones5 = np.ones(5, dtype=np.int32)
    x = np.arange(10.0)
    assert _stats.top_k_precision(x, x, np.ones(10, np.int32), (10, 50)).ravel().tolist() == [1.0, 1.0]
    assert _stats.top_k_precision(x, -x, np.ones(10, np.int32), (10, 50, 100)).ravel().tolist() == [0.0, 0.0, 1.0]
    # top 40% of 5 = 2 archs; truth top-2 = {0, 1}; proxy: 0 sure, then 1 or 2 tied -> expected 1.5 / 2
    px = np.array([3.0, 2, 2, 1, 0])
    py = np.array([4.0, 3, 2, 1, 0])
    assert _stats.top_k_precision(px, py, ones5, (40,))[0, 0] == pytest.approx(0.75)
    rng = np.random.default_rng(3)
    for _ in range(4):
        a = rng.integers(0, 3, 5).astype(float)
        b = rng.integers(0, 3, 5).astype(float)
        for p in (20, 40, 60):
            assert _stats.top_k_precision(a, b, ones5, (p,))[0, 0] == pytest.approx(_brute_top_precision(a, b, p))


def test_top_k_precision_on_resamples_matches_materialised_brute_force():
    rng = np.random.default_rng(5)
    x = np.array([2.0, 1, 1, 0])
    y = np.array([0.0, 2, 1, 1])
    counts = _stats.resample_counts(4, 6, rng)
    got = _stats.top_k_precision(x, y, counts, (50,))[0]
    for b in range(6):
        want = _brute_top_precision(np.repeat(x, counts[:, b]), np.repeat(y, counts[:, b]), 50)
        assert got[b] == pytest.approx(want)


# ----------------------------------------------------------------------------- correlate()


def _scores(archs, **columns) -> pd.DataFrame:
    return pd.DataFrame(columns, index=pd.Index(np.asarray(archs), name="arch"))


def test_correlate_matches_scipy_and_orients_lower_is_better():
    rng = np.random.default_rng(1)
    truth = _truth(rng=rng)
    archs = np.array(NB201.unique()[:400])
    acc = truth.loc[archs, ("cifar10", "pgd_8")].to_numpy()
    noisy = acc + rng.normal(scale=0.3, size=archs.size)
    scores = _scores(archs, good=noisy, loss=-acc * 3.0)
    table = correlate(scores, truth, datasets=["cifar10"], metrics=["pgd_8"], bootstrap=0,
                      orientation={"good": True, "loss": False})
    good = table.set_index("proxy").loc["good"]
    assert good["n"] == 400 and good["missing"] == 0 and good["degenerate"] == 0
    assert good["kendall"] == pytest.approx(scipy.stats.kendalltau(noisy, acc).statistic, abs=1e-12)
    assert good["spearman"] == pytest.approx(scipy.stats.spearmanr(noisy, acc).statistic, abs=1e-12)
    assert good["pearson"] == pytest.approx(scipy.stats.pearsonr(noisy, acc).statistic, abs=1e-12)
    assert math.isnan(good["kendall_lo"])  # bootstrap=0: no CI
    loss = table.set_index("proxy").loc["loss"]  # lower is better and perfectly anti-correlated: +1, not -1
    for stat in ("kendall", "spearman", "pearson", "top1", "top5", "top10"):
        assert loss[stat] == pytest.approx(1.0)
    assert not loss["higher_is_better"]


def test_correlate_uses_registry_orientation_and_rejects_unknown_columns():
    truth = _truth()
    archs = np.array(NB201.unique()[:50])
    acc = truth.loc[archs, ("cifar10", "clean")].to_numpy()
    table = correlate(_scores(archs, params=acc), truth, datasets=["cifar10"], metrics=["clean"], bootstrap=0)
    assert bool(table["higher_is_better"].iloc[0]) and table["kendall"].iloc[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="mystery.*orientation"):
        correlate(_scores(archs, mystery=acc), truth, bootstrap=0)


def test_bootstrap_ci_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(2)
    truth = _truth(rng=rng)
    archs = np.array(NB201.unique()[:300])
    acc = truth.loc[archs, ("cifar10", "clean")].to_numpy()
    scores = _scores(archs, p=acc + rng.normal(scale=0.2, size=archs.size))
    kwargs = dict(datasets=["cifar10"], metrics=["clean"], orientation={"p": True}, bootstrap=300)
    first = correlate(scores, truth, seed=7, **kwargs)
    again = correlate(scores, truth, seed=7, **kwargs)
    other = correlate(scores, truth, seed=8, **kwargs)
    pd.testing.assert_frame_equal(first, again)
    assert first["kendall_lo"].iloc[0] != other["kendall_lo"].iloc[0]
    for stat in ("kendall", "spearman", "pearson", "top5", "top10"):
        row = first.iloc[0]
        assert row[f"{stat}_lo"] <= row[stat] <= row[f"{stat}_hi"]
        assert row[f"{stat}_lo"] < row[f"{stat}_hi"]
    # the bootstrap spread of tau matches its sampling spread under a fresh draw of architectures
    assert 0.01 < first["kendall_hi"].iloc[0] - first["kendall_lo"].iloc[0] < 0.2


def test_representatives_only_drops_isomorph_duplicates():
    rep, twin = _isomorph_pair()
    truth = _truth()
    archs = [a for a in NB201.unique()[:60] if a != rep] + [rep, twin]
    acc = truth[("cifar10", "clean")]
    values = {a: acc[a] for a in archs}
    values[twin] = -100.0  # a duplicate with a wild score would change every statistic if counted
    scores = _scores(list(values), p=list(values.values()))
    kw = dict(datasets=["cifar10"], metrics=["clean"], orientation={"p": True}, bootstrap=0)
    deduped = correlate(scores, truth, **kw).iloc[0]
    without_twin = correlate(scores.drop(index=twin), truth, **kw).iloc[0]
    everything = correlate(scores, truth, representatives_only=False, **kw).iloc[0]
    assert deduped["n"] == len(archs) - 1 and everything["n"] == len(archs)
    assert deduped["kendall"] == pytest.approx(without_twin["kendall"]) == pytest.approx(1.0)
    assert everything["kendall"] < 1.0
    # a class whose representative is unscored is represented by its scored member
    only_twin = correlate(scores.drop(index=rep), truth, **kw).iloc[0]
    assert only_twin["n"] == len(archs) - 1 and only_twin["kendall"] < 1.0


def test_dedupe_isomorphs_prefers_the_representative():
    rep, twin = _isomorph_pair()
    classes = _truth()[("arch", "representative")]
    assert dedupe_isomorphs([twin, rep], classes).tolist() == [rep]
    assert dedupe_isomorphs([twin], classes).tolist() == [twin]
    assert dedupe_isomorphs([twin, rep], pd.Series(dtype="int64")).tolist() == [rep, twin]  # no classes known


def test_correlate_accepts_string_keys_with_their_own_classes():
    keys = [f"g{i:02d}" for i in range(30)]
    rng = np.random.default_rng(1)
    acc = rng.random(30)
    truth = pd.DataFrame({("cifar10", "clean"): acc, ("arch", "representative"): keys}, index=keys)
    truth.columns = pd.MultiIndex.from_tuples(list(truth.columns), names=["dataset", "metric"])
    truth.loc["g01", ("arch", "representative")] = "g00"  # g01 is an isomorph of g00
    truth.loc["g01", ("cifar10", "clean")] = acc[0]
    scores = pd.DataFrame({"oracle": truth[("cifar10", "clean")].to_numpy()}, index=keys)
    scores.loc["g01", "oracle"] = -5.0  # the twin disagrees; deduplication must drop it
    row = correlate(scores, truth, orientation={"oracle": True}, bootstrap=0).iloc[0]
    assert row["n"] == 29 and row["kendall"] == pytest.approx(1.0)


def test_missing_and_degenerate_are_counted_and_left_out():
    truth = _truth()
    archs = np.array(NB201.unique()[:40])
    acc = truth.loc[archs, ("cifar10", "clean")].to_numpy()
    values = acc.copy()
    values[:3] = np.nan        # not scored
    values[3:5] = -np.inf      # degenerate by value
    flags = pd.DataFrame({"p": [""] * 40}, index=archs)
    flags.iloc[5, 0] = "degenerate"
    values[5] = 1e9            # flagged degenerate: would otherwise top the ranking
    scores = _scores(archs, p=values)
    row = correlate(scores, truth, datasets=["cifar10"], metrics=["clean"], orientation={"p": True},
                    bootstrap=0, flags=flags).iloc[0]
    assert (row["n"], row["missing"], row["degenerate"]) == (34, 3, 3)
    assert row["kendall"] == pytest.approx(1.0)
    unflagged = correlate(scores, truth, datasets=["cifar10"], metrics=["clean"], orientation={"p": True},
                          bootstrap=0).iloc[0]
    assert unflagged["degenerate"] == 2 and unflagged["kendall"] < 1.0


def test_correlate_reports_too_few_points_instead_of_silent_nan():
    truth = _truth()
    archs = np.array(NB201.unique()[:2])
    row = correlate(_scores(archs, p=[1.0, 2.0]), truth, orientation={"p": True}, bootstrap=10,
                    datasets=["cifar10"], metrics=["clean"]).iloc[0]
    assert math.isnan(row["kendall"]) and "at least 3" in row["note"]


@pytest.mark.parametrize("kwargs, message", [
    ({"datasets": ["svhn"]}, "svhn.*available"),
    ({"metrics": ["pgd_16"]}, "pgd_16.*available"),
    ({"bootstrap": -1}, "bootstrap"),
    ({"topk": (0,)}, "topk"),
    ({"confidence": 1.5}, "confidence"),
    ({"seed": -3}, "seed"),
])
def test_correlate_rejects_bad_arguments(kwargs, message):
    truth = _truth()
    archs = np.array(NB201.unique()[:10])
    with pytest.raises(ValueError, match=message):
        correlate(_scores(archs, p=np.arange(10.0)), truth, orientation={"p": True}, **kwargs)


def test_correlate_rejects_bad_frames():
    truth = _truth()
    with pytest.raises(ValueError, match="empty"):
        correlate(pd.DataFrame(index=pd.Index([], dtype="int64")), truth)
    with pytest.raises(ValueError, match="architecture labels"):
        correlate(pd.DataFrame({"p": [1.0]}, index=[0.5]), truth, orientation={"p": True})
    with pytest.raises(ValueError, match="dataset, metric"):
        correlate(_scores([0, 1, 2], p=[1.0, 2, 3]), pd.DataFrame({"x": [1.0]}), orientation={"p": True})


# ----------------------------------------------------------------------------- ground-truth sanity


def test_benchmark_agreement_on_synthetic_truth():
    rng = np.random.default_rng(4)
    base = rng.random(NB201.size())
    rob = _truth({("cifar10", "clean"): base, ("cifar10", "pgd_8"): base ** 3,
                  ("cifar10", "fgsm_8"): -base})
    std = _truth({("cifar10", "clean"): base * 2})
    table = benchmark_agreement(rob, std)
    pairs = {(r.metric_a, r.source_b, r.metric_b): r for r in table.itertuples()}
    assert set(table["n"]) == {len(NB201.unique())}
    assert pairs[("clean", "NAS-RobBench-201", "pgd_8")].kendall == pytest.approx(1.0)  # monotone
    assert pairs[("clean", "NAS-RobBench-201", "pgd_8")].pearson < 1.0                  # but not linear
    assert pairs[("clean", "NAS-RobBench-201", "fgsm_8")].spearman == pytest.approx(-1.0)
    assert pairs[("pgd_8", "NAS-Bench-201", "clean")].kendall == pytest.approx(1.0)
    assert len(table) == 3 + 3  # 3 pairs within, 3 metrics vs NB201 clean


@pytest.mark.data
def test_committed_benchmark_agreement_matches_real_data(data_dir, tmp_path):
    assert main(["correlate", "--agreement", "--out", str(tmp_path), "--data-dir", str(data_dir)]) == 0
    table = pd.read_csv(tmp_path / "benchmark_agreement.csv")
    committed = pd.read_csv(Path(__file__).resolve().parents[1] / "results/correlation/benchmark_agreement.csv")
    assert len(table) == len(committed) == 63
    np.testing.assert_allclose(table[["kendall", "spearman", "pearson"]].to_numpy(),
                               committed[["kendall", "spearman", "pearson"]].to_numpy(), atol=2e-6)
    row = table[(table.dataset == "cifar10") & (table.metric_a == "fgsm_8") & (table.metric_b == "pgd_8")].iloc[0]
    assert row["n"] == 6466 and row["spearman"] > 0.99  # paper: PGD vs FGSM ~0.998


# ----------------------------------------------------------------------------- plots


def test_plots_write_png_files(tmp_path):
    rng = np.random.default_rng(6)
    truth = _truth(rng=rng)
    archs = np.array(NB201.unique()[:80])
    acc = truth.loc[archs, ("cifar10", "pgd_8")].to_numpy()
    scores = _scores(archs, a=acc + rng.normal(size=80), b=-acc)
    orient = {"a": True, "b": False}
    table = correlate(scores, truth, orientation=orient, bootstrap=20)
    sweep = pd.DataFrame([{"eps": e, "beta": b, "attack": a, "bn": bn, "kendall": 0.3 + b / 10, "lo": 0.2,
                           "hi": 0.5} for e in (1 / 255, 8 / 255) for b in (0.0, 0.5, 1.0)
                          for a in ("fgsm", "pgd") for bn in ("train", "eval")])
    paths = [plot_heatmap(table, tmp_path / "h.png"),
             plot_scatter(scores, truth, ["a", "b"], tmp_path / "sub" / "s.png", orientation=orient),
             plot_sweep(sweep, tmp_path / "w.png"),
             plot_sweep(sweep.assign(kendall=sweep["kendall"] - 0.4), tmp_path / "d.png", ylabel="tau difference",
                        zero_line=True)]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def test_plots_reject_empty_or_malformed_input(tmp_path):
    truth = _truth()
    with pytest.raises(ValueError, match="empty"):
        plot_heatmap(pd.DataFrame(columns=["proxy", "dataset", "metric", "kendall"]), tmp_path / "h.png")
    with pytest.raises(ValueError, match="lacks column"):
        plot_sweep(pd.DataFrame({"eps": [0.1]}), tmp_path / "w.png")
    with pytest.raises(ValueError, match="at least one proxy"):
        plot_scatter(_scores([0], a=[1.0]), truth, [], tmp_path / "s.png")
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- CLI


def _store(path: Path, truth: pd.DataFrame, archs) -> None:
    from zcproxy.store import Store

    rng = np.random.default_rng(9)
    with Store(path) as store:
        for arch in archs:
            acc = float(truth.loc[arch, ("cifar10", "pgd_8")])
            for name, value, flags in (("params", acc + rng.normal(scale=0.01), ()),
                                       ("fake_loss", -acc, ("degenerate",) if arch == archs[0] else ())):
                store.put(int(arch), {name: ProxyResult(value, 0.1, {"proxy": name, "seed": 0}, frozenset(flags))},
                          device="cpu")


@pytest.mark.data
def test_cli_correlate_writes_tables_and_plots(tmp_path, data_dir, capsys):
    from zcproxy.truth import load_nasrobbench201

    truth = load_nasrobbench201(data_dir)
    archs = NB201.unique()[:60]
    _store(tmp_path / "s.sqlite", truth, archs)
    out = tmp_path / "out"
    code = main(["correlate", "--store", str(tmp_path / "s.sqlite"), "--out", str(out), "--bootstrap", "50",
                 "--orientation", "fake_loss=lower", "--metrics", "clean,pgd_8", "--filter", "seed=0",
                 "--ensemble", "pgd_8",
                 "--data-dir", str(data_dir)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| proxy" in printed and "fake_loss" in printed
    table = pd.read_csv(out / "correlation_nasrobbench201_cifar10.csv")
    loss = table[(table.proxy == "fake_loss") & (table.metric == "pgd_8")].iloc[0]
    assert loss["kendall"] == pytest.approx(1.0) and loss["degenerate"] == 1 and loss["n"] == 59
    for name in ("correlation_nasrobbench201_cifar10.md", "correlation_nasrobbench201_cifar10_heatmap.png",
                 "correlation_nasrobbench201_cifar10_scatter_cifar10_pgd_8.png",
                 "correlation_nasrobbench201_cifar10_ensemble_cifar10_pgd_8.md"):
        assert (out / name).stat().st_size > 0
    folds = pd.read_csv(out / "correlation_nasrobbench201_cifar10_ensemble_cifar10_pgd_8.csv")
    assert len(folds) == 2 * 2 * 2 and (folds["n_fit"] + folds["n_test"] == 60).all()  # fold x method x search


@pytest.mark.parametrize("argv, message", [
    (["correlate"], "--store"),
    (["correlate", "--store", "/nonexistent/s.sqlite"], "no such file"),
    (["correlate", "--agreement", "--bootstrap", "-5"], "--bootstrap"),
])
def test_cli_correlate_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_correlate_rejects_bad_orientation_word(tmp_path, capsys):
    truth = _truth({("cifar10", "pgd_8"): np.random.default_rng(0).random(NB201.size())})
    _store(tmp_path / "s.sqlite", truth, NB201.unique()[:5])
    assert main(["correlate", "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o"),
                 "--orientation", "fake_loss=down"]) == 2
    assert "higher or lower" in capsys.readouterr().err


def test_correlate_rejects_text_scores():
    truth = _truth()
    archs = np.array(NB201.unique()[:5])
    with pytest.raises(ValueError, match="'p'.*not numeric"):
        correlate(_scores(archs, p=["1", "2", "x", "4", "5"]), truth, orientation={"p": True})


# ----------------------------------------------------------------------------- paired comparison


def test_compare_is_a_paired_kendall_difference_on_common_archs():
    rng = np.random.default_rng(4)
    truth = _truth({("cifar10", "pgd_8"): rng.random(NB201.size())})
    reps = np.array(NB201.unique()[:120])
    y = truth[("cifar10", "pgd_8")].reindex(reps).to_numpy()
    good = y + 0.05 * rng.standard_normal(reps.size)
    poor = y + 0.5 * rng.standard_normal(reps.size)
    scores = pd.DataFrame({"poor": poor, "good": good, "flipped": -good}, index=reps)
    scores.loc[reps[:7], "poor"] = np.nan  # only archs scored by both count
    got = compare(scores, truth, "poor", "good", dataset="cifar10", metric="pgd_8", bootstrap=300,
                  orientation={"poor": True, "good": True})
    keep = reps[7:]
    yk = truth[("cifar10", "pgd_8")].reindex(keep).to_numpy()
    tau_poor = scipy.stats.kendalltau(scores.loc[keep, "poor"], yk).statistic
    tau_good = scipy.stats.kendalltau(scores.loc[keep, "good"], yk).statistic
    assert got["n"] == keep.size
    assert got["kendall_first"] == pytest.approx(tau_poor, abs=1e-12)
    assert got["kendall_second"] == pytest.approx(tau_good, abs=1e-12)
    assert got["delta"] == pytest.approx(tau_good - tau_poor, abs=1e-12)
    assert got["delta_lo"] <= got["delta"] <= got["delta_hi"]
    assert got["delta_lo"] > 0 and got["p_not_better"] == 0.0
    # orientation is applied, never abs: the flipped score with "lower is better" equals the good one
    same = compare(scores, truth, "good", "flipped", dataset="cifar10", metric="pgd_8", bootstrap=50,
                   orientation={"good": True, "flipped": False})
    assert same["delta"] == 0.0 and same["delta_lo"] == 0.0 and same["delta_hi"] == 0.0
    assert same["p_not_better"] == 1.0
    wrong = compare(scores, truth, "good", "flipped", dataset="cifar10", metric="pgd_8", bootstrap=0,
                    orientation={"good": True, "flipped": True})
    assert wrong["delta"] == pytest.approx(-2 * wrong["kendall_first"])
    with pytest.raises(ValueError, match="'missing'"):
        compare(scores, truth, "good", "missing", dataset="cifar10", metric="pgd_8")
    with pytest.raises(ValueError, match="cifar100"):
        compare(scores, truth, "good", "poor", dataset="cifar100", metric="pgd_8")
    # archs flagged degenerate in either column are left out, as correlate does
    flags = pd.DataFrame({"poor": [()] * reps.size, "good": [()] * reps.size}, index=reps)
    flags.loc[reps[10], "good"] = ("degenerate",)
    flags.loc[reps[11], "poor"] = ("failed", "degenerate")
    flagged = compare(scores, truth, "poor", "good", dataset="cifar10", metric="pgd_8", bootstrap=0,
                      orientation={"poor": True, "good": True}, flags=flags)
    rest = np.setdiff1d(keep, reps[[10, 11]])
    assert flagged["n"] == keep.size - 2
    assert flagged["kendall_second"] == pytest.approx(
        scipy.stats.kendalltau(scores.loc[rest, "good"], truth[("cifar10", "pgd_8")].reindex(rest)).statistic)
