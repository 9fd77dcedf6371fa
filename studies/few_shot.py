"""Few-shot predictor study: train on K labelled CIFAR-10 representatives, rank all the others.

Produces ``results/predictor/few_shot.csv`` (one row per set x target x K x seed x method: Kendall tau-b on
the held-out architectures), ``results/predictor/few_shot.md`` (means with CIs, paired differences) and
``results/predictor/few_shot.png`` (tau against K for PGD-8/255).

Sets: the nine cheap proxies on all 6,466 isomorphism representatives, and every proxy output (27) on the
seeded 1,000-representative sample. For each K in {10, 20, 50, 100, 500} and seed 0..19, K representatives
are drawn at random (``numpy.random.default_rng([seed, K])``, the same draw for every target) and every other
representative of the set is the test set. Targets: NAS-RobBench-201 CIFAR-10 PGD-8/255, clean and
AutoAttack accuracy, and NAS-Bench-201 CIFAR-10 standard-training accuracy (the quantity GreenFactory's
anchor is about). Methods, all judged on the same test architectures:

* ``predictor_graph``: ``zcproxy.validate.predictor.fit`` (random forest, library defaults, model seed = seed)
  on every proxy output of the set plus the architecture's graph features (``zcproxy.space.graph_features``,
  70 zero-cost columns: op counts, path lengths per op set, degrees);
* ``predictor_graph_et``: the same features, ``model="extra_trees"``;
* ``predictor``: the random forest on the proxy outputs only; ``graph_only``: on the graph features only;
* ``best_single_fit``: the proxy with the highest oriented tau on the K training archs;
* ``best_single_oracle``: the proxy with the highest tau on the whole set (chosen with every label, so an
  upper bound for a single proxy -- MeCo here);
* ``ensemble_nnls``: ``zcproxy.validate.ensemble.fit_ensemble(method="nnls")`` on the K archs (the log-rank
  method is left out: on these sets it selects MeCo alone, i.e. the best single proxy; see ensemble/).

Run (one thread; about 30 minutes on the shared 2-core machine):

    OMP_NUM_THREADS=1 ZCPROXY_DATA=/work/shared/data .venv/bin/python studies/few_shot.py
    .venv/bin/python studies/few_shot.py --report-only     # rebuild the .md and .png from the .csv

or as two single-thread processes, one per set, joined afterwards (how the committed files were made):

    export OMP_NUM_THREADS=1 ZCPROXY_DATA=/work/shared/data; P=results/predictor
    for s in all_representatives sample_1000; do .venv/bin/python studies/few_shot.py --sets $s --csv $P/part_$s.csv & done; wait
    .venv/bin/python studies/few_shot.py --report-only $P/part_all_representatives.csv $P/part_sample_1000.csv
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studies import ROOT, wide_scores  # noqa: E402

OUT = ROOT / "results" / "predictor"
KS = (10, 20, 50, 100, 500)
SEEDS = 20
TARGETS = {  # name: (loader, dataset, metric)
    "pgd_8": ("nasrobbench201", "cifar10", "pgd_8"),
    "clean": ("nasrobbench201", "cifar10", "clean"),
    "autoattack": ("nasrobbench201", "cifar10", "autoattack"),
    "nb201_clean": ("nb201", "cifar10", "clean"),
}
METHODS = ("predictor_graph", "predictor_graph_et", "predictor", "graph_only", "best_single_fit",
           "best_single_oracle", "ensemble_nnls")
PRIMARY = METHODS[0]
COMPARATORS = METHODS[1:]
LEARNED = {  # method: (model, use proxy scores, use graph features)
    "predictor_graph": ("random_forest", True, True),
    "predictor_graph_et": ("extra_trees", True, True),
    "predictor": ("random_forest", True, False),
    "graph_only": ("random_forest", False, True),
}


def _tau(pred, truth) -> float:
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    ok = np.isfinite(p) & np.isfinite(t)
    if ok.sum() < 3 or np.ptp(p[ok]) == 0:
        return np.nan
    return float(scipy.stats.kendalltau(p[ok], t[ok]).statistic)


def run(sets: list[str], seeds: int, csv: Path | None = None, ks: tuple[int, ...] = KS) -> pd.DataFrame:
    from zcproxy.truth import REPRESENTATIVE, load_nasrobbench201, load_nb201
    from zcproxy.validate import dedupe_isomorphs, orientations
    from zcproxy.validate.ensemble import fit_ensemble, oriented_ranks
    from zcproxy.space import graph_features
    from zcproxy.validate.predictor import fit

    truths = {"nasrobbench201": load_nasrobbench201(), "nb201": load_nb201()}
    rows = []
    for name in sets:
        scores, source = wide_scores(name)
        archs = dedupe_isomorphs(scores.index, truths["nasrobbench201"][REPRESENTATIVE])
        if archs.size != len(scores):
            raise SystemExit(f"{name}: {len(scores)} scored archs but {archs.size} isomorphism classes")
        scores = scores.loc[archs]
        orient = orientations(scores.columns)
        signed = oriented_ranks(scores, orient)  # higher = better, a non-finite (degenerate) score ranks worst
        graph = graph_features(archs, "nb201").set_axis(archs)
        tables = {(True, False): scores, (False, True): graph, (True, True): scores.join(graph)}
        targets = {t: truths[src][(d, m)].reindex(archs).astype(np.float64).rename(t)
                   for t, (src, d, m) in TARGETS.items()}
        oracle = {t: max(signed.columns, key=lambda c: np.nan_to_num(_tau(signed[c], y), nan=-2.0))
                  for t, y in targets.items()}
        print(f"{name}: {len(archs)} archs x {scores.shape[1]} outputs from {source}; oracle {oracle}", flush=True)
        for k in ks:
            started = time.time()
            for seed in range(seeds):
                perm = np.random.default_rng([seed, k]).permutation(archs)
                train, test = np.sort(perm[:k]), np.sort(perm[k:])
                for target, y in targets.items():
                    base = {"set": name, "target": target, "k": k, "seed": seed, "n_train": k, "n_test": test.size}
                    for method, (learner, use_scores, use_graph) in LEARNED.items():
                        table = tables[(use_scores, use_graph)]
                        model = fit(table.loc[train], y, model=learner, seed=seed)
                        rows.append(base | {"method": method, "members": ",".join(model.features),
                                            "kendall": _tau(model.predict(table.loc[test]), y.loc[test])})
                    fit_taus = {c: _tau(signed.loc[train, c], y.loc[train]) for c in signed.columns}
                    best = max(fit_taus, key=lambda c: np.nan_to_num(fit_taus[c], nan=-2.0))
                    rows.append(base | {"method": "best_single_fit", "members": best,
                                        "kendall": _tau(signed.loc[test, best], y.loc[test])})
                    rows.append(base | {"method": "best_single_oracle", "members": oracle[target],
                                        "kendall": _tau(signed.loc[test, oracle[target]], y.loc[test])})
                    for method in ("nnls",):  # log-rank picks MeCo alone here (ensemble/), i.e. best single
                        try:
                            ens = fit_ensemble(scores.loc[train], y, method, orientation=orient)
                            tau, members = _tau(ens.predict(scores.loc[test]), y.loc[test]), ",".join(ens.members)
                        except ValueError as exc:  # e.g. no candidate ranks the K archs in the right direction
                            tau, members = np.nan, f"failed: {exc}"[:80]
                        rows.append(base | {"method": f"ensemble_{method}", "members": members, "kendall": tau})
            print(f"  K={k}: {seeds} seeds in {time.time() - started:.0f} s", flush=True)
            if csv is not None:  # after every K, so an interrupted run keeps what it finished
                pd.DataFrame(rows).to_csv(csv, index=False, float_format="%.6g")
    return pd.DataFrame(rows)


def _mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    v = values[np.isfinite(values)]
    if v.size < 2:
        return (float(v.mean()) if v.size else np.nan), np.nan, np.nan
    half = scipy.stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def summarise(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean tau with a t-interval over seeds per (set, target, K, method), and the paired difference
    predictor - comparator per seed (t-interval, share of seeds the predictor wins)."""
    means, diffs = [], []
    for (s, t, k), group in raw.groupby(["set", "target", "k"], sort=False):
        wide = group.pivot(index="seed", columns="method", values="kendall")
        for method in METHODS:
            mean, lo, hi = _mean_ci(wide[method].to_numpy())
            means.append({"set": s, "target": t, "k": k, "method": method, "seeds": int(wide[method].notna().sum()),
                          "kendall": mean, "ci_lo": lo, "ci_hi": hi, "seed_min": wide[method].min(),
                          "seed_max": wide[method].max()})
        for method in COMPARATORS:
            d = (wide[PRIMARY] - wide[method]).to_numpy()
            mean, lo, hi = _mean_ci(d)
            diffs.append({"set": s, "target": t, "k": k, "versus": method, "delta": mean, "ci_lo": lo, "ci_hi": hi,
                          "wins": int((d[np.isfinite(d)] > 0).sum()), "seeds": int(np.isfinite(d).sum())})
    return pd.DataFrame(means), pd.DataFrame(diffs)


def _fmt(mean: float, lo: float, hi: float, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(mean)} [{f.format(lo)}, {f.format(hi)}]" if np.isfinite(lo) else f.format(mean)


def report(raw: pd.DataFrame, command: str) -> None:
    means, diffs = summarise(raw)
    lines = [
        "# Few-shot predictor: K labelled architectures, Kendall τ on all the others",
        "",
        f"Made by `{command}` from [few_shot.csv](few_shot.csv) (one row per set × target × K × seed × method; "
        "`python studies/few_shot.py --report-only` rebuilds this page and the figure from it).",
        "",
        "Train on K random isomorphism representatives, test on every other representative of the set; "
        f"{raw['seed'].nunique()} seeds (train draw and model seed). Predictors: `zcproxy.validate.predictor.fit` "
        "(random forest, 100 trees, raw scores) on every proxy output of the set plus the 70 graph features of "
        "`zcproxy.space.graph_features` (`predictor_graph`; `predictor_graph_et` the same with extra trees), on "
        "the proxy outputs only (`predictor`) and on the graph features only (`graph_only`). Comparators on the "
        "same test archs: the best single proxy chosen on the K training archs "
        "(`best_single_fit`), the best single proxy chosen with *all* labels (`best_single_oracle`, an upper "
        "bound for a single proxy), and the NNLS rank ensemble (`zcproxy.validate.ensemble.fit_ensemble`, greedy "
        "selection of up to 5 proxies on the K archs).",
        "",
        "**CI**: mean over seeds ± Student-t 95 % interval of that mean (t with seeds − 1 df). It covers the "
        "variation from *which* K archs are labelled (and the forest's seed); it does not cover sampling of the "
        "test archs, which are nearly the whole set. `seed range` is the lowest and highest single-seed τ. "
        "Paired differences are per seed (same train and test archs), with the same t-interval and the number "
        "of seeds the predictor wins.",
        "",
        "Targets: NAS-RobBench-201 CIFAR-10 `pgd_8` (PGD-8/255), `clean`, `autoattack` (adversarial training) and "
        "`nb201_clean` (NAS-Bench-201 200-epoch standard training, the setting of GreenFactory's τ 0.921 anchor "
        "on NATS-Bench-TSS CIFAR-10).",
    ]
    target_order = {t: i for i, t in enumerate(TARGETS)}
    for s in raw["set"].unique():
        sub = raw[raw["set"] == s]
        lines += ["", f"## {s}: {int(sub['n_train'].iloc[0] + sub['n_test'].iloc[0])} representatives, "
                  f"{len(sub[sub['method'] == 'predictor']['members'].iloc[0].split(','))} proxy outputs "
                  f"+ {len(sub[sub['method'] == 'graph_only']['members'].iloc[0].split(','))} graph features", ""]
        for t in sorted(sub["target"].unique(), key=target_order.get):
            m = means[(means["set"] == s) & (means["target"] == t)]
            d = diffs[(diffs["set"] == s) & (diffs["target"] == t)]
            lines += [f"### {t}", "",
                      "| K | test archs | scores + graph (RF) | scores + graph (ET) | scores (RF) | graph (RF) "
                      "| best single (fit on K) | best single (oracle) | NNLS ensemble | scores + graph (RF) seed range |",
                      "|---:|---:|---|---|---|---|---|---|---|---|"]
            for k in KS:
                row = m[m["k"] == k].set_index("method")
                if row.empty:
                    continue
                n_test = int(sub[(sub["k"] == k)]["n_test"].iloc[0])
                cells = [_fmt(row.loc[x, "kendall"], row.loc[x, "ci_lo"], row.loc[x, "ci_hi"]) for x in METHODS]
                rng = f"{row.loc[PRIMARY, 'seed_min']:.3f}–{row.loc[PRIMARY, 'seed_max']:.3f}"
                lines.append(f"| {k} | {n_test} | " + " | ".join(cells) + f" | {rng} |")
            lines += ["", "Scores + graph (RF) minus each other method (paired over seeds; wins = seeds where it is "
                      "higher):", "", "| K | " + " | ".join(f"− {x}" for x in COMPARATORS) + " |",
                      "|---:|" + "---|" * len(COMPARATORS)]
            for k in KS:
                row = d[d["k"] == k].set_index("versus")
                if row.empty:
                    continue
                cells = [f"{_fmt(row.loc[x, 'delta'], row.loc[x, 'ci_lo'], row.loc[x, 'ci_hi'], True)} "
                         f"({int(row.loc[x, 'wins'])}/{int(row.loc[x, 'seeds'])})" for x in COMPARATORS]
                lines.append(f"| {k} | " + " | ".join(cells) + " |")
            lines.append("")
        oracle = sub[sub["method"] == "best_single_oracle"].groupby("target")["members"].first().to_dict()
        lines.append(f"Oracle single proxy per target: {oracle}.")
    k100 = means[(means["k"] == 100) & means["method"].isin(list(LEARNED))]
    lines += ["", "## Target: few-shot τ ≥ 0.90 with K = 100", ""]
    for _, r in k100.iterrows():
        verdict = "met" if r["ci_lo"] >= 0.90 else ("not met" if r["ci_hi"] < 0.90 else "undecided")
        lines.append(f"- {r['set']}, {r['target']}, {r['method']}: τ {_fmt(r['kendall'], r['ci_lo'], r['ci_hi'])} "
                     f"— {verdict}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "few_shot.md").write_text("\n".join(lines).rstrip("\n") + "\n")
    means.to_csv(OUT / "few_shot_summary.csv", index=False, float_format="%.6g")
    diffs.to_csv(OUT / "few_shot_paired.csv", index=False, float_format="%.6g")
    _plot(means)


def _plot(means: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(means["set"].unique())
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4), squeeze=False, sharey=True)
    for ax, s in zip(axes[0], sets):
        m = means[(means["set"] == s) & (means["target"] == "pgd_8")]
        for method in METHODS:
            r = m[m["method"] == method].sort_values("k")
            ax.errorbar(r["k"], r["kendall"], yerr=[r["kendall"] - r["ci_lo"], r["ci_hi"] - r["kendall"]],
                        marker="o", capsize=3, label=method)
        ax.axhline(0.90, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xticks(KS, [str(k) for k in KS])
        ax.set_xlabel("K labelled architectures")
        ax.set_title(f"{s}: CIFAR-10 PGD-8/255")
    axes[0][0].set_ylabel("Kendall τ on held-out archs (mean, 95 % t-CI)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "few_shot.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="all_representatives,sample_1000")
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--csv", type=Path, default=OUT / "few_shot.csv", help="where the run writes its rows")
    parser.add_argument("--report-only", nargs="*", type=Path, metavar="CSV",
                        help="rebuild few_shot.md/.png from few_shot.csv, or from the given part CSVs "
                             "(written by runs with --sets/--csv), which are then joined into few_shot.csv")
    args = parser.parse_args(argv)
    if args.report_only is not None:
        parts = args.report_only or [OUT / "few_shot.csv"]
        raw = pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)
        if args.report_only:
            raw.to_csv(OUT / "few_shot.csv", index=False, float_format="%.6g")
    else:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        raw = run(args.sets.split(","), args.seeds, args.csv)
        raw.to_csv(args.csv, index=False, float_format="%.6g")
        if args.csv.resolve() != (OUT / "few_shot.csv").resolve():
            print(f"wrote {args.csv}; join the parts with --report-only PART.csv ...")
            return
    report(raw, "python studies/few_shot.py" + (f" --seeds {args.seeds}" if args.seeds != SEEDS else ""))
    print(f"wrote {OUT / 'few_shot.csv'}, few_shot.md, few_shot.png")


if __name__ == "__main__":
    main()
