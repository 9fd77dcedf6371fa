"""``zcproxy search``: proxy-guided search (random, REA, pruning) with the benchmark's verdict on the result."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from .predict import LEARNERS
from ._args import (DATASETS, add_space_arguments, assignment, dataset_name, load_truth, non_negative_int,
                    options_dict, positive_int, renamed_flag, truth_metric)

HELP = ("Search a space (NAS-Bench-201, DARTS, yours) with a proxy, an ensemble or the benchmark truth (--oracle) "
        "under a budget of proxy evaluations; report the found architecture's true accuracy, percentile and regret.")
STRATEGY_CHOICES = ("random", "rea", "prune", "predictor")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strategy", required=True, choices=STRATEGY_CHOICES,
                        help="random sampling, regularized evolution, TE-NAS-style pruning, or few-shot predictor "
                             "search (labels = the truth's --target accuracy, counted in --budget; features = the "
                             "--store outputs)")
    parser.add_argument("--proxy", help="proxy output to maximise (orientation from the registry); several "
                        "comma-separated names make an equal-weight log-rank ensemble (needs --store)")
    parser.add_argument("--oracle", action="store_true",
                        help="drive the search by the benchmark's true --target accuracy instead of a proxy")
    parser.add_argument("--budget", type=positive_int, default=100, help="proxy evaluations (default 100)")
    parser.add_argument("--seconds", type=_positive_float, help="also stop after this many compute seconds")
    parser.add_argument("--store", help="score store (.sqlite) or its long CSV export; the search is restricted "
                        "to the architectures scored there (stored values cost 0 s)")
    parser.add_argument("--live", action="store_true", help="with --store: score missing architectures live "
                        "and write them to the store (without --store every score is computed live)")
    parser.add_argument("--setting", type=assignment, action="append", metavar="KEY=VALUE",
                        help="select stored scores whose settings have this value (repeatable)")
    parser.add_argument("--dataset", default="cifar10", type=dataset_name,
                        help=f"dataset: {', '.join(DATASETS)} (any letter case; default cifar10)")
    parser.add_argument("--target", default=None,
                        help="true metric for --oracle, percentile and regret (default pgd_8 = PGD-8/255 when the "
                             "truth has it, else its first metric, e.g. clean for darts1000)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="search seed")
    parser.add_argument("--score-seed", type=non_negative_int, default=0,
                        help="seed of live scoring (weights and batch), also selects stored scores")
    parser.add_argument("--batch", dest="batch_size", type=positive_int, default=64,
                        help="live scoring batch size (default 64)")
    parser.add_argument("--batch-size", action=renamed_flag("--batch"), help=argparse.SUPPRESS)
    parser.add_argument("--option", type=assignment, action="append", metavar="KEY=VALUE",
                        help="proxy option for live scoring, e.g. eps=8/255 (repeatable)")
    parser.add_argument("--stand-in", action="store_true", help="live scoring: CIFAR-10 images stand in")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", help="data folder (default $ZCPROXY_DATA, then ~/.cache/zcproxy)")
    parser.add_argument("--population", type=positive_int, default=20, help="REA population (default 20)")
    parser.add_argument("--sample-size", type=positive_int, default=5, help="REA tournament size (default 5)")
    parser.add_argument("--samples-per-round", type=positive_int,
                        help="pruning: new archs sampled per round (default (budget-1)/4)")
    parser.add_argument("--pareto", action="store_true", help="also print the Pareto front of the evaluated archs "
                        "over (clean score, robust score, cost)")
    parser.add_argument("--pareto-proxies", default="ntk_clean,ntk_robust", metavar="CLEAN,ROBUST",
                        help="clean- and robust-oriented proxy outputs for --pareto (oracle: true clean and "
                        "--target accuracy)")
    parser.add_argument("--cost", default="params", help="cost output minimised by --pareto (params or flops)")
    parser.add_argument("--initial", type=positive_int, default=20,
                        help="predictor: random labels before the first fit (default 20, part of --budget)")
    parser.add_argument("--label-batch", type=positive_int, default=10,
                        help="predictor: archs labelled per round, the best predicted (default 10)")
    parser.add_argument("--learner", default="random_forest", choices=LEARNERS,
                        help="predictor: the regressor (default random_forest)")
    parser.add_argument("--graph-features", action="store_true",
                        help="predictor: add the space's graph features to the stored outputs")
    add_space_arguments(parser, truth_help="ground truth for --oracle and the verdict (default: the space's "
                                           "built-in benchmark, nasrobbench201 for nb201, darts1000 for darts)")


def _check(args: argparse.Namespace) -> list[str]:
    if args.strategy == "predictor":
        return _check_predictor(args)
    if args.oracle and args.proxy:
        raise ValueError("give either --proxy NAME or --oracle, not both")
    if not args.oracle and not args.proxy:
        raise ValueError("--proxy NAME[,NAME...] is required (or --oracle to search with the true accuracy)")
    names = [p.strip() for p in (args.proxy or "").split(",") if p.strip()]
    if args.proxy is not None and not names:
        raise ValueError(f"--proxy {args.proxy!r} names no proxy output")
    if len(names) > 1 and not args.store:
        raise ValueError("an ensemble (--proxy with several names) ranks archs against the scored ones: "
                         "it needs --store PATH")
    if len(names) > 1 and args.live:
        raise ValueError("--live works with one --proxy output, not an ensemble")
    if args.live and args.store and args.store.lower().endswith(".csv"):
        raise ValueError("--live writes new scores to the store: give a .sqlite store, not a CSV export")
    if args.sample_size > args.population:
        raise ValueError(f"--sample-size {args.sample_size} must not exceed --population {args.population}")
    if args.oracle and (args.store or args.live):
        raise ValueError("--oracle searches with the true accuracy; --store/--live do not apply")
    return names


def _check_predictor(args: argparse.Namespace) -> list[str]:
    """Usage checks of ``--strategy predictor``: features come from --store, labels from the truth."""
    if args.oracle or args.live:
        raise ValueError("--strategy predictor labels architectures with the ground truth (counted in --budget) and "
                         "reads its features from --store: --oracle and --live do not apply")
    if not args.store:
        raise ValueError("--strategy predictor needs --store PATH: its stored outputs are the predictor's features")
    if args.initial > args.budget:
        raise ValueError(f"--initial {args.initial} random labels exceed --budget {args.budget}")
    return [p.strip() for p in (args.proxy or "").split(",") if p.strip()]


def _predictor_features(args: argparse.Namespace, names: list[str], stored):
    """Feature table of ``--strategy predictor``: the named stored outputs (default: every output scored on as
    many architectures as the most widely scored one), rows scored in all of them, plus graph features."""
    from ..search import stored_table
    from ..validate.predictor import with_graph_features

    settings = options_dict(args.setting, "--setting") or None
    present = stored[stored["space"] == args.space.name] if "space" in stored.columns else stored
    chosen = names or sorted(set(present["proxy"]))
    values, _ = stored_table(stored, chosen, settings=settings, space=args.space)
    if not names:
        coverage = values.notna().sum()
        values = values.loc[:, coverage == coverage.max()]
    features = values.dropna()
    if features.empty:
        raise ValueError(f"no architecture of {args.store} is scored in all of {list(values.columns)}")
    if args.graph_features:
        features = with_graph_features(features, args.space)
    return features


def _truth(args: argparse.Namespace, required: bool, dataset: str):
    from ..errors import DataNotFoundError
    from ..truth import BUILTIN

    if args.truth is None:
        args.truth = next((name for name, (space, _) in BUILTIN.items() if space == args.space.name), None)
    if args.truth is None:
        if required:
            raise ValueError(f"--oracle needs ground truth for space {args.space.name!r}; pass --truth FILE.csv")
        return None
    try:
        truth = load_truth(args, dataset)
    except DataNotFoundError as exc:
        if required:
            raise
        print(f"note: no ground truth ({exc}); true accuracies are not shown", file=sys.stderr)
        return None
    if args.target is None:
        args.target = truth_metric(truth, dataset, None).name[1]
    elif (dataset, args.target) not in truth.columns:
        raise ValueError(f"--target {args.target!r} is not in the ground truth; it has "
                         f"{[m for d, m in truth.columns if d == dataset]}")
    return truth


def _source(args: argparse.Namespace, names: list[str], dataset: str, truth, stored, store):
    from ..search import LiveSource, ensemble_source, oracle_source, store_source, stored_table

    settings = options_dict(args.setting, "--setting") or None
    space = args.space
    if args.oracle:
        return oracle_source(truth, dataset=dataset, metric=args.target, space=space)
    if len(names) > 1:
        values, degenerate = stored_table(stored, names, settings=settings, space=space)
        return ensemble_source(values, {n: 1.0 for n in names}, degenerate=degenerate, space=space)
    if store is not None or stored is None:
        return LiveSource(names[0], dataset=dataset, seed=args.score_seed, batch_size=args.batch_size,
                          stand_in=args.stand_in, options=options_dict(args.option), data_dir=args.data_dir,
                          device=args.device, store=store, space=space)
    return store_source(stored, names[0], settings=settings, space=space)


def _pareto_rows(args, result, dataset, truth, stored, store) -> tuple[list[dict[str, Any]], int, float]:
    """Evaluate (clean, robust, cost) on every evaluated arch and return the first front's rows."""
    from ..search import Budget, LiveSource, Objective, oracle_source, pareto_front, store_source

    settings = options_dict(args.setting, "--setting") or None

    def proxy_source(output: str):
        if stored is not None and not args.live:
            return store_source(stored, output, settings=settings, space=args.space)
        return LiveSource(output, dataset=dataset, seed=args.score_seed, batch_size=args.batch_size,
                          stand_in=args.stand_in, options=options_dict(args.option), data_dir=args.data_dir,
                          device=args.device, store=store, space=args.space)

    if args.oracle:
        clean_name, robust_name = "true clean", f"true {args.target}"
        sources = [oracle_source(truth, dataset=dataset, metric="clean", space=args.space),
                   oracle_source(truth, dataset=dataset, metric=args.target, space=args.space)]
    else:
        pair = [p.strip() for p in args.pareto_proxies.split(",") if p.strip()]
        if len(pair) != 2:
            raise ValueError(f"--pareto-proxies needs two outputs CLEAN,ROBUST, got {args.pareto_proxies!r}")
        clean_name, robust_name = pair
        sources = [proxy_source(pair[0]), proxy_source(pair[1])]
    sources.append(proxy_source(args.cost))
    archs = [a for a in result.archs if all(a in s.domain for s in sources)]
    if not archs:
        raise ValueError("no evaluated architecture has all three Pareto criteria in the store")
    objectives = [Objective(s, Budget(evaluations=len(archs))) for s in sources]

    def raw_value(objective: Objective, arch: int) -> float:
        objective(arch)
        return objective.known(arch).value

    points = [[objectives[0](a), objectives[1](a), raw_value(objectives[2], a)] for a in archs]
    front = sorted(pareto_front(points, maximize=[True, True, False]), key=lambda i: -points[i][1])
    rows = [{"arch": archs[i], clean_name: objectives[0].known(archs[i]).value,
             robust_name: objectives[1].known(archs[i]).value, args.cost: points[i][2]} for i in front]
    extra = sum(o.evaluations for o in objectives)
    seconds = sum(o.compute_seconds for o in objectives)
    return rows, extra, seconds


_LABELS = {"pgd_8": "PGD-8", "autoattack": "AutoAttack"}


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .._datasets import dataset_info
    from ..errors import ProxyError
    from ..search import Budget, Objective, assess, read_scores
    from ..search import run as run_search

    names = _check(args)
    dataset = dataset_info(args.dataset).name
    predictor = args.strategy == "predictor"
    truth = _truth(args, required=args.oracle or predictor, dataset=dataset)
    if args.target is None:
        args.target = "pgd_8"
    stored = read_scores(args.store) if args.store and not args.live else None
    store = None
    if args.live and args.store:
        from ..store import Store

        store = Store(args.store)
    try:
        options: dict[str, Any] = {}
        if predictor:
            from ..search import oracle_source

            features = _predictor_features(args, names, stored)
            source = oracle_source(truth, dataset=dataset, metric=args.target, space=args.space,
                                   domain=features.index.intersection(truth.index))
            options = {"features": features, "initial": args.initial, "batch": args.label_batch,
                       "model": args.learner}
        else:
            source = _source(args, names, dataset, truth, stored, store)
        if args.strategy == "rea":
            options = {"population": args.population, "sample_size": args.sample_size}
        elif args.strategy == "prune" and args.samples_per_round:
            options = {"samples_per_round": args.samples_per_round}
        objective = Objective(source, Budget(args.budget, args.seconds))
        try:
            result = run_search(args.strategy, objective, seed=args.seed, **options)
        except ProxyError as exc:
            print(f"zcproxy search: {exc}", file=sys.stderr)
            return 1
        if stored is not None:
            scope = f"{len(source.domain)} scored architectures in {args.store} (search restricted to them)"
        elif source.domain.open:
            scope = f"the whole {args.space.name} space (sampled; too large to list)"
        else:
            scope = f"all {len(source.domain):,} representatives of {args.space.name}"
        print(f"{args.strategy} search on {dataset}, objective {source.name}, over {scope}")
        if predictor:
            print(f"features: {', '.join(map(str, options['features'].columns[:12]))}"
                  + (f" and {options['features'].shape[1] - 12} more" if options["features"].shape[1] > 12 else "")
                  + f"; {args.learner} refitted on every label so far")
        spent = "labels (true accuracies, the first " + str(args.initial) + " random)" if predictor else \
            "proxy evaluations"
        print(f"spent {result.evaluations} {spent} (budget {args.budget}"
              + (f", {args.seconds} s" if args.seconds else "") + f"), {result.compute_seconds:.2f} compute seconds")
        chosen = {e.arch: e for e in result.history}.get(result.chosen)
        row: dict[str, Any] = {"arch": result.chosen, "objective value": None if chosen is None else chosen.value}
        if truth is not None:
            if result.chosen in truth.index:
                verdict = assess([result.chosen], truth, dataset=dataset, target=args.target, space=args.space).iloc[0]
                row["arch string"] = verdict["arch_str"]
                row.update({_LABELS.get(m, m) + " %": _percent(verdict[m])
                            for m in ("clean", "pgd_8", "autoattack") if m in verdict})
                row.update({f"{args.target} percentile": f"{verdict['percentile']:.2f}",
                            f"{args.target} regret (pts)": f"{100 * verdict['regret']:.2f}"})
            else:
                row["truth"] = "not in the ground truth (a live search may find unlisted architectures)"
        print(tabulate([row], headers="keys", tablefmt="github"))
        if args.pareto:
            rows, extra, seconds = _pareto_rows(args, result, dataset, truth, stored, store)
            if truth is not None:
                listed = [r for r in rows if r["arch"] in truth.index]
                verdicts = assess([r["arch"] for r in listed], truth, dataset=dataset, target=args.target,
                                  space=args.space)
                for r, (_, v) in zip(listed, verdicts.iterrows()):
                    r.update({_LABELS.get(m, m) + " %": _percent(v[m]) for m in ("clean", "pgd_8", "autoattack")
                              if m in v})
            print(f"\nPareto front of the {result.evaluations} evaluated architectures "
                  f"({extra} criterion evaluations, {seconds:.2f} s):")
            print(tabulate(rows, headers="keys", tablefmt="github"))
    finally:
        if store is not None:
            store.close()
    return 0
