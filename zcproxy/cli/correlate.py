"""``zcproxy correlate``: rank correlations of stored proxy scores with a benchmark's accuracies."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..truth import BUILTIN
from ..validate import report
from ._args import add_space_arguments, assignment, created_outputs, dataset_name, load_truth, options_dict

HELP = ("Correlate stored proxy scores with ground truth (NAS-RobBench-201, NAS-Bench-201, DARTS or any CSV: "
        "Kendall, Spearman, Pearson, top-k precision with bootstrap CIs); writes CSV, markdown and plots.")

DATASETS = ("cifar10", "cifar100", "ImageNet16-120", "all")


def _dataset_or_all(text: str) -> str:
    return "all" if text.lower() == "all" else dataset_name(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", action="append", metavar="PATH",
                        help="score store from `zcproxy rank`/`score` (repeatable; stores are combined)")
    add_space_arguments(parser, truth_help="ground truth (default nasrobbench201: adversarial training)")
    parser.set_defaults(truth="nasrobbench201")
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
    with created_outputs(Path(args.out).expanduser()) as out:
        if args.agreement:
            from ..truth import load_nasrobbench201, load_nb201

            written = report.write_agreement(out, load_nasrobbench201(args.data_dir), load_nb201(args.data_dir))
            print("wrote " + " and ".join(str(p) for p in written))
        if args.store:
            _correlations(args, out)
    return 0


def _correlations(args: argparse.Namespace, out: Path) -> None:
    settings = options_dict(args.filter, "--filter")
    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()] if args.proxies else None
    scores, degenerate, long = report.load_scores(args.store, settings=settings, space=args.space.name,
                                                  proxies=proxies)
    orientation = {}
    for name, word in args.orientation or []:
        if word not in ("higher", "lower"):
            raise ValueError(f"--orientation {name}={word}: use higher or lower")
        orientation[name] = word == "higher"
    truth = load_truth(args, "cifar10" if args.dataset == "all" else args.dataset)
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
    truth_name = args.truth if args.truth in BUILTIN else Path(args.truth).stem
    stem = f"correlation_{truth_name}_{args.dataset}" + ("_all15625" if args.all_15625 else "")
    table, text, written = report.write_correlations(
        scores, truth, out, stem=stem, truth_name=truth_name, degenerate=degenerate, datasets=datasets,
        metrics=metrics, orientation=orientation, representatives_only=not args.all_15625,
        bootstrap=args.bootstrap, seed=args.seed, sources=args.store, settings=settings, scatter=args.scatter,
        ensemble=args.ensemble)
    print(text)
    small = int(table["n"].min()) if len(table) else 0
    if small < 30:
        print(f"zcproxy correlate: warning: only {small} architectures in the smallest comparison; with n < 30 "
              "the 95 % intervals are wide, so rankings of close proxies mean little", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in written))
