"""``zcproxy predict``: a few-shot predictor from stored zero-cost scores (fit on labelled archs, apply to a store)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._args import add_space_arguments, assignment, created_outputs, load_truth, options_dict, truth_metric

LEARNERS = ("random_forest", "extra_trees", "gradient_boosting")
"""zcproxy.validate.predictor.MODELS, spelled out so that --help needs no pandas import (a test keeps them equal)."""

HELP = ("Few-shot predictor: fit a random forest on stored zero-cost scores of labelled architectures "
        "(--truth), save it as JSON, and predict the metric for every architecture of a store.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("step", choices=("fit", "apply"), help="fit a predictor, or apply a saved one")
    parser.add_argument("--store", required=True, action="append", metavar="PATH",
                        help="score store(s) (repeatable; combined)")
    parser.add_argument("--model", required=True, metavar="FILE.json",
                        help="fit: where to save the predictor (JSON, no pickle); apply: the saved predictor")
    parser.add_argument("--out", metavar="FILE.csv", help="apply: CSV of predictions (default: print the top 20)")
    parser.add_argument("--labels", metavar="N", type=int, default=None,
                        help="fit: use N seeded labelled architectures (default: every one with ground truth)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the label sample and the forest (default 0)")
    parser.add_argument("--dataset", default="cifar10", help="truth dataset (default cifar10)")
    parser.add_argument("--proxies", metavar="NAME[,NAME...]", help="fit: feature columns (default: every output)")
    parser.add_argument("--setting", type=assignment, action="append", metavar="KEY=VALUE",
                        help="keep only scores with these settings (repeatable)")
    parser.add_argument("--learner", default="random_forest", choices=LEARNERS,
                        help="fit: the regressor (default random_forest, as GreenFactory; extra_trees ranked best "
                             "with graph features in results/predictor/few_shot.md)")
    parser.add_argument("--graph-features", action="store_true",
                        help="fit: add the space's graph features (op counts, path lengths, degrees) as features; "
                             "apply adds them whenever the saved predictor uses them")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --model / --out file")
    add_space_arguments(parser, truth_help="fit: ground truth of the labelled architectures")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..validate import predictor, report

    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()] if args.proxies else None
    scores, _, _ = report.load_scores(args.store, settings=options_dict(args.setting, "--setting"),
                                      space=args.space.name, proxies=proxies)
    if args.step == "fit":
        if args.graph_features:
            scores = predictor.with_graph_features(scores, args.space)
        truth = load_truth(args, args.dataset)
        if truth is None:
            raise ValueError("predict fit needs --truth (the labels)")
        column = truth_metric(truth, args.dataset, args.metric)
        target = column.rename(f"{column.name[0]}_{column.name[1]}")
        labelled = scores.index.intersection(target.dropna().index)
        if args.labels is not None:
            if not 1 <= args.labels <= len(labelled):
                raise ValueError(f"--labels {args.labels}: choose 1..{len(labelled)} (scored archs with ground truth)")
            labelled = labelled[np.sort(np.random.default_rng(args.seed).choice(len(labelled), args.labels,
                                                                                replace=False))]
        model = predictor.fit(scores.loc[labelled], target.loc[labelled], seed=args.seed, model=args.learner)
        path = Path(args.model).expanduser()
        if path.exists() and not args.force:
            raise ValueError(f"--model {path} exists; pass --force to overwrite it")
        with created_outputs(path.parent):
            model.save(path)
        print(f"fitted on {len(labelled)} labelled architectures, {len(model.features)} features; saved {path}")
        return 0
    model = predictor.load(args.model)
    if set(model.features) - set(scores.columns) and hasattr(args.space, "graph"):
        scores = predictor.with_graph_features(scores, args.space)
    predicted = model.predict(scores).sort_values(ascending=False)
    if args.out:
        out = Path(args.out).expanduser()
        if out.exists() and not args.force:
            raise ValueError(f"--out {out} exists; pass --force to overwrite it")
        with created_outputs(out.parent):
            predicted.to_csv(out, header=True)
        print(f"wrote {len(predicted)} predictions to {out}")
    else:
        print(predicted.head(20).to_string(), file=sys.stdout)
    return 0
