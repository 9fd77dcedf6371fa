"""``zcproxy rank``: the best architectures of a store by one proxy output."""
from __future__ import annotations

import argparse

from ._args import add_space_arguments, assignment, load_truth, options_dict, positive_int, truth_metric

HELP = "Print the top architectures of a score store by one proxy (best first, with arch strings)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="SQLite store written by `zcproxy score`")
    parser.add_argument("--proxy", required=True, help="proxy output name, e.g. ntk_robust")
    parser.add_argument("--top", type=positive_int, default=20, help="how many architectures (default 20)")
    parser.add_argument("--setting", type=assignment, action="append", metavar="KEY=VALUE",
                        help="choose among several stored settings, e.g. seed=0 or eps=8/255 (repeatable)")
    add_space_arguments(parser, truth_help="ground truth to show beside each architecture (optional)")


def ranking(wide, output: str, higher_is_better: bool, top: int):
    """Rows of the ``top`` best archs by ``output`` (ties broken by the smaller index)."""
    column = wide[output].dropna()
    order = sorted(column.items(), key=lambda kv: ((-kv[1] if higher_is_better else kv[1]), kv[0]))
    return order[:top]


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .. import proxies, store

    frame = store.load(args.store)
    if frame.empty:
        raise ValueError(f"store {args.store} holds no scores yet; run `zcproxy score --store {args.store} ...`")
    stored = sorted(frame["proxy"].unique())
    if args.proxy not in stored:
        raise ValueError(f"--proxy {args.proxy!r} is not in store {args.store}; it holds: {', '.join(stored)}")
    orientation = proxies.outputs()
    if args.proxy not in orientation:
        raise ValueError(f"--proxy {args.proxy!r} is not produced by any installed proxy, so its orientation is "
                         f"unknown; installed outputs: {', '.join(sorted(orientation))}")
    higher = orientation[args.proxy][1]
    space = args.space
    wide = store.pivot(frame[frame["proxy"] == args.proxy], settings=options_dict(args.setting, "--setting"),
                       space=space.name)
    if args.proxy not in wide.columns:
        raise ValueError(f"no {args.proxy!r} scores match --setting {dict(args.setting or [])}")
    truth = load_truth(args)
    metric = truth_metric(truth, "cifar10", args.metric) if truth is not None else None
    rows = []
    for rank, (arch, value) in enumerate(ranking(wide, args.proxy, higher, args.top), 1):
        row = [rank, arch, value]
        if metric is not None:
            row.append(metric.get(arch, float("nan")))
        if hasattr(space, "describe"):
            row.append(space.describe(space.key(arch)))
        rows.append(row)
    headers = (["rank", "arch", args.proxy] + ([f"truth {metric.name[1]}"] if metric is not None else [])
               + (["architecture"] if hasattr(space, "describe") else []))
    print(f"{args.proxy} ({'higher' if higher else 'lower'} is better), {len(wide)} archs of space {space.name} in "
          f"{args.store}")
    print(tabulate(rows, headers=headers, floatfmt=".6g"))
    return 0

