"""``zcproxy demo``: score a seeded sample of unique architectures and correlate with NAS-RobBench-201."""
from __future__ import annotations

import argparse
from pathlib import Path

from .score import add_run_arguments, options_dict, parse_archs, parse_proxies, print_summary

HELP = ("Score 50 seeded unique NB201 architectures with every proxy on CIFAR-10 (resumable store "
        "runs/demo.sqlite) and print their rank correlations with NAS-RobBench-201.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, archs_default="sample:50", store_default="runs/demo.sqlite")


def _fallback_ranking(wide, top: int = 5) -> str:
    from tabulate import tabulate

    from .. import proxies
    from .rank import ranking

    orientation = proxies.outputs()
    rows = []
    for output in wide.columns:
        higher = orientation.get(output, (None, True))[1]
        best = ranking(wide, output, higher, top)
        rows.append([output, "higher" if higher else "lower", " ".join(str(a) for a, _ in best)])
    return tabulate(rows, headers=["proxy", "better", f"top {top} archs"])


def run(args: argparse.Namespace) -> int:
    from .. import runner, store

    archs = parse_archs(args.archs, seed=args.seed)
    names = parse_proxies(args.proxies)
    options = options_dict(args.option)
    summary = runner.run(archs, names, store=args.store, dataset="cifar10", seed=args.seed, batch_size=args.batch,
                         device=args.device, workers=args.workers, data_dir=args.data_dir, options=options,
                         progress=not args.quiet, threads=args.threads)
    print_summary(summary)
    planned = runner.plan(names, dataset="cifar10", seed=args.seed, batch_size=args.batch, options=options)
    frame = store.load(args.store)
    keep = frame["arch"].isin(archs) & (frame["proxy"].map(planned) == frame["settings_hash"])
    wide = store.pivot(frame[keep])
    if wide.empty:
        print("no scores to correlate")
        return 0 if summary.ok else 1
    try:
        from ..truth import load_nasrobbench201
        from ..validate import correlate
    except ImportError as exc:
        print(f"(zcproxy.validate is not available: {exc}; showing the rankings instead)")
        print(_fallback_ranking(wide))
        return 0 if summary.ok else 1
    truth = load_nasrobbench201(args.data_dir)
    truth = truth.drop(columns="arch", level=0) if "arch" in truth.columns.get_level_values(0) else truth
    table = correlate(wide, truth)
    full = Path(args.store).with_name(Path(args.store).stem + "_correlations.csv")
    table.to_csv(full, index=False)
    print(f"\nKendall tau of {wide.shape[1]} proxy outputs with NAS-RobBench-201 accuracy over {len(wide)} archs "
          f"(seed {args.seed}, batch {args.batch}; all metrics and intervals in {full}):")
    print(_compact(table))
    return 0 if summary.ok else 1


def _compact(table) -> str:
    """Kendall tau per proxy (rows) for clean and PGD-8/255 accuracy on each dataset (columns)."""
    from tabulate import tabulate

    needed = {"proxy", "dataset", "metric", "kendall"}
    if not needed <= set(table.columns):
        return table.to_string()
    shown = table[table["metric"].isin(_SHOWN_METRICS)]
    if shown.empty:
        shown = table
    wide = shown.pivot_table(index="proxy", columns=["dataset", "metric"], values="kendall", sort=False)
    if len(wide.columns):
        key = ("cifar10", "pgd_8") if ("cifar10", "pgd_8") in wide.columns else wide.columns[0]
        wide = wide.sort_values(key, ascending=False)
    headers = ["proxy"] + [f"{d} {m}" for d, m in wide.columns]
    return tabulate(wide.reset_index().values.tolist(), headers=headers, floatfmt=".3f")


_SHOWN_METRICS = ("clean", "pgd_8")
