"""``zcproxy correlate``: rank correlations of stored proxy scores with a benchmark's accuracies."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .score import assignment, dataset_name, options_dict

HELP = ("Correlate stored proxy scores with NAS-RobBench-201 / NAS-Bench-201 accuracies (Kendall, Spearman, "
        "Pearson, top-k precision with bootstrap CIs); writes CSV, markdown and plots.")

TRUTHS = ("nasrobbench201", "nb201")
DATASETS = ("cifar10", "cifar100", "ImageNet16-120", "all")


def _dataset_or_all(text: str) -> str:
    return "all" if text.lower() == "all" else dataset_name(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", action="append", metavar="PATH",
                        help="score store from `zcproxy rank`/`score` (repeatable; stores are combined)")
    parser.add_argument("--truth", choices=TRUTHS, default="nasrobbench201",
                        help="ground truth: adversarial training (nasrobbench201, default) or NAS-Bench-201 (nb201)")
    parser.add_argument("--dataset", type=_dataset_or_all, default="cifar10",
                        help=f"dataset: {', '.join(DATASETS)} (any letter case; default cifar10)")
    parser.add_argument("--metrics", metavar="M[,M...]",
                        help="truth metrics, e.g. clean,pgd_8 (default: all of the truth's accuracy metrics)")
    parser.add_argument("--proxies", metavar="NAME[,NAME...]", help="score columns to correlate (default: all)")
    parser.add_argument("--out", default="results/correlation", metavar="DIR",
                        help="output folder (default results/correlation)")
    parser.add_argument("--all-15625", dest="all_15625", action="store_true",
                        help="count every scored index, isomorphs included (default: one per isomorphism class)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples for the 95%% CIs (default 1000; 0 = no CIs)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--filter", "--setting", dest="filter", type=assignment, action="append",
                        metavar="KEY=VALUE", help="keep only scores with these settings, e.g. seed=0 or "
                        "eps=8/255 (repeatable)")
    parser.add_argument("--orientation", type=assignment, action="append", metavar="NAME=higher|lower",
                        help="orientation of a column that is not a registered proxy output (repeatable)")
    parser.add_argument("--scatter", type=int, default=6, metavar="K",
                        help="scatter plots of the K best proxies against the first metric (default 6; 0 = none)")
    parser.add_argument("--ensemble", metavar="METRIC",
                        help="also fit rank ensembles (log-rank, NNLS) to METRIC (e.g. pgd_8) of each dataset with "
                        "two-fold held-out evaluation; writes <stem>_ensemble_<dataset>_<METRIC>.{csv,md}")
    parser.add_argument("--agreement", action="store_true",
                        help="also write benchmark_agreement.{csv,md}: rank agreement of the benchmark's own "
                        "metrics (needs no --store)")
    parser.add_argument("--data-dir", metavar="DIR", help="folder with the benchmark tables (default: $ZCPROXY_DATA)")


def run(args: argparse.Namespace) -> int:
    if not args.store and not args.agreement:
        raise ValueError("pass --store PATH (a score store) and/or --agreement")
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if args.scatter < 0:
        raise ValueError(f"--scatter must be >= 0, got {args.scatter}")
    for path in args.store or []:
        if not Path(path).expanduser().is_file():
            raise ValueError(f"--store {path}: no such file; pass a store written by `zcproxy rank` or `zcproxy score`")
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    if args.agreement:
        _write_agreement(out, args.data_dir)
    if args.store:
        _write_correlations(args, out)
    return 0


def _write_agreement(out: Path, data_dir: str | None) -> None:
    from ..truth import load_nasrobbench201, load_nb201
    from ..validate.sanity import benchmark_agreement

    table = benchmark_agreement(load_nasrobbench201(data_dir), load_nb201(data_dir))
    table.to_csv(out / "benchmark_agreement.csv", index=False, float_format="%.6f")
    text = ("Rank agreement of ground-truth metrics over the 6,466 isomorphism representatives "
            "(NAS-RobBench-201: adversarial training; NAS-Bench-201: standard training, 200 epochs).\n\n"
            + _markdown(table, floatfmt=".4f") + "\n")
    (out / "benchmark_agreement.md").write_text(text)
    print(f"wrote {out / 'benchmark_agreement.csv'} and {out / 'benchmark_agreement.md'}")


def _write_correlations(args: argparse.Namespace, out: Path) -> None:
    import pandas as pd

    from .. import store
    from ..truth import load_nasrobbench201, load_nb201
    from ..validate import correlate

    settings = options_dict(args.filter, "--filter")
    long = pd.concat([store.load(p) for p in args.store], ignore_index=True)
    long = long.drop_duplicates(["arch", "proxy", "settings_hash"], keep="first")
    scores = store.pivot(long, settings=settings)
    degenerate = store.pivot(long.assign(value=[float("degenerate" in f) for f in long["flags"]]),
                             settings=settings) > 0
    if scores.empty:
        raise ValueError(f"no scores left in {args.store} after --filter {settings}")
    if args.proxies:
        names = [p.strip() for p in args.proxies.split(",") if p.strip()]
        unknown = [p for p in names if p not in scores.columns]
        if unknown:
            raise ValueError(f"--proxies: {unknown} not in the store; stored outputs: {list(scores.columns)}")
        scores = scores[names]
    orientation = {}
    for name, word in args.orientation or []:
        if word not in ("higher", "lower"):
            raise ValueError(f"--orientation {name}={word}: use higher or lower")
        orientation[name] = word == "higher"
    truth = (load_nasrobbench201 if args.truth == "nasrobbench201" else load_nb201)(args.data_dir)
    datasets = None if args.dataset == "all" else [args.dataset]
    scored_on = {s.get("dataset") for s in long["settings"] if s.get("dataset") is not None}
    if settings.get("dataset") is not None:
        scored_on = {settings["dataset"]}
    foreign = sorted({d for d, _ in truth.columns if d != "arch"} if datasets is None else set(datasets))
    foreign = [d for d in foreign if d not in scored_on]
    if scored_on and foreign:
        print(f"zcproxy correlate: note: the scores were computed on {sorted(scored_on)}; correlating them "
              f"with {foreign} accuracies measures transfer (score with --dataset to match)", file=sys.stderr)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    table = correlate(scores, truth, datasets=datasets, metrics=metrics, orientation=orientation,
                      representatives_only=not args.all_15625, bootstrap=args.bootstrap, seed=args.seed,
                      flags=degenerate)
    stem = f"correlation_{args.truth}_{args.dataset}" + ("_all15625" if args.all_15625 else "")
    table.to_csv(out / f"{stem}.csv", index=False, float_format="%.6f")
    summary = _summary(table)
    header = (f"Proxy vs {args.truth} accuracy ({'all scored indices' if args.all_15625 else 'one per isomorphism class'}"
              f"; 95% bootstrap CI, {args.bootstrap} resamples, seed {args.seed}; stores: {', '.join(args.store)}"
              + (f"; settings {settings}" if settings else "") + ")\n\n")
    markdown = _markdown(summary, floatfmt=".3f")
    (out / f"{stem}.md").write_text(header + markdown + "\n")
    print(markdown)

    from ..validate.plots import plot_heatmap, plot_scatter

    written = [out / f"{stem}.csv", out / f"{stem}.md", plot_heatmap(table, out / f"{stem}_heatmap.png")]
    if args.scatter:
        for dataset in dict.fromkeys(table["dataset"]):
            first = table[table["dataset"] == dataset]
            metric = first["metric"].iloc[0] if "pgd_8" not in set(first["metric"]) else "pgd_8"
            best = (first[first["metric"] == metric].dropna(subset=["kendall"])
                    .sort_values("kendall", ascending=False)["proxy"].head(args.scatter).tolist())
            if best:
                written.append(plot_scatter(scores, truth, best, out / f"{stem}_scatter_{dataset}_{metric}.png",
                                            dataset=dataset, metric=metric, orientation=orientation,
                                            representatives_only=not args.all_15625))
    if args.ensemble:
        written += _write_ensembles(args, scores, truth, table, orientation, stem, out)
    print("wrote " + ", ".join(str(p) for p in written))


def _write_ensembles(args, scores, truth, table, orientation, stem: str, out: Path) -> list[Path]:
    from ..validate.ensemble import cross_validated

    written = []
    for dataset in dict.fromkeys(table["dataset"]):
        if (dataset, args.ensemble) not in truth.columns:
            raise ValueError(f"--ensemble {args.ensemble}: the truth has no such metric for {dataset}")
        folds = cross_validated(scores, truth, dataset, args.ensemble, args.seed, orientation=orientation,
                                representatives_only=not args.all_15625)
        path = out / f"{stem}_ensemble_{dataset}_{args.ensemble}"
        folds.to_csv(path.with_suffix(".csv"), index=False, float_format="%.6f")
        markdown = _markdown(folds, floatfmt=".3f")
        path.with_suffix(".md").write_text(
            f"Ensembles for {dataset} {args.ensemble}: members and weights chosen on one half of the "
            f"architectures (seed {args.seed}), Kendall tau reported on the other half.\n\n{markdown}\n")
        print(markdown)
        written += [path.with_suffix(".csv"), path.with_suffix(".md")]
    return written


def _summary(table):
    """Compact view: each statistic as 'value [lo, hi]'."""
    import pandas as pd

    view = table[["proxy", "dataset", "metric", "n", "missing", "degenerate"]].copy()
    for stat in ("kendall", "spearman", "pearson") + tuple(c for c in table.columns if c.startswith("top")
                                                           and not c.endswith(("_lo", "_hi"))):
        view[stat] = [_with_ci(v, lo, hi) for v, lo, hi in zip(table[stat], table[f"{stat}_lo"], table[f"{stat}_hi"])]
    return pd.DataFrame(view)


def _with_ci(value: float, lo: float, hi: float) -> str:
    import math

    if not math.isfinite(value):
        return "n/a"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{value:.3f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def _markdown(frame, floatfmt: str) -> str:
    from tabulate import tabulate

    return tabulate(frame, headers="keys", tablefmt="github", showindex=False, floatfmt=floatfmt)
