"""``zcproxy score``: score many architectures into a resumable SQLite store."""
from __future__ import annotations

import argparse

from ._args import (ARCHS_FORMS, DATASETS, add_space_arguments, assignment, dataset_name,  # noqa: F401
                    non_negative_int, options_dict, parse_archs, parse_proxies, parse_value, positive_int,
                    selected_archs, shard_spec, space_name)

HELP = ("Score architectures of any search space with zero-cost proxies into a resumable SQLite store "
        "(skips what is already stored; parallel, sharded or on Ray).")


# ---------------------------------------------------------------------------------- argument parsing


def print_summary(summary) -> None:
    from tabulate import tabulate

    rows = [[r["proxy"], r["scored"], r["mean_seconds"], r["failures"]] for r in summary.table()]
    if rows:
        print(tabulate(rows, headers=["proxy", "archs scored", "mean s/arch", "failures"], floatfmt=".3f"))
    print(f"{summary.archs} archs: {summary.scored} scored now, {summary.skipped} already in the store, "
          f"{len(summary.failed)} with failures; store {summary.store}; {summary.wall_seconds:.1f} s")
    if summary.failed:
        print("failed (retried on the next run):")
        for arch, errors in sorted(summary.failed.items()):
            for proxy, message in errors.items():
                print(f"  arch {arch} {proxy}: {message.splitlines()[0] if message else ''}")


# ---------------------------------------------------------------------------------------- subcommand


def add_run_arguments(parser: argparse.ArgumentParser, *, archs_default: str | None = None,
                      store_default: str | None = None) -> None:
    """Arguments shared by ``score`` and ``demo``."""
    parser.add_argument("--archs", required=archs_default is None, default=archs_default,
                        help=f"architectures: {ARCHS_FORMS}" + (f" (default {archs_default})" if archs_default else ""))
    parser.add_argument("--proxies", default="all", help="all, or comma-separated proxy names (default all)")
    parser.add_argument("--batch", type=positive_int, default=64, help="proxy batch size (default 64)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of weights, batch and sample:N (default 0)")
    parser.add_argument("--store", required=store_default is None, default=store_default,
                        help="SQLite store path (created if absent; resumed if present)")
    parser.add_argument("--workers", type=positive_int, default=1, help="local worker processes (default 1)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads per worker (default: cores // workers; with 1 worker, torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--option", type=assignment, action="append", metavar="KEY=VALUE",
                        help="proxy option override, e.g. eps=8/255 (repeatable)")
    parser.add_argument("--data-dir", default=None, help="data folder (default $ZCPROXY_DATA or ~/.cache/zcproxy)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=dataset_name, default="cifar10",
                        help=f"dataset: {', '.join(DATASETS)} (any letter case; default cifar10)")
    add_run_arguments(parser)
    add_space_arguments(parser, truth_help="ground truth for --archs truth / quantiles:K")
    parser.add_argument("--shard", type=shard_spec, default=None, metavar="I/N",
                        help="score only shard I of N (0-based; for SLURM job arrays)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local processes or a Ray cluster (default local)")
    parser.add_argument("--stand-in", action="store_true",
                        help="use CIFAR-10 images where the dataset's own images are absent")


def run(args: argparse.Namespace) -> int:
    from .. import runner

    archs = selected_archs(args, args.dataset)
    proxies = parse_proxies(args.proxies)
    try:
        summary = runner.run(archs, proxies, store=args.store, space=args.space, dataset=args.dataset, seed=args.seed,
                             batch_size=args.batch, stand_in=args.stand_in, device=args.device,
                             workers=args.workers, shard=args.shard, backend=args.backend, data_dir=args.data_dir,
                             options=options_dict(args.option), progress=not args.quiet, threads=args.threads)
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    print_summary(summary)
    return 0 if summary.ok else 1
