"""``zcproxy demo``: fetch what is missing, score a seeded sample, correlate with NAS-RobBench-201."""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .score import add_run_arguments, options_dict, parse_archs, parse_proxies, print_summary

# The study's leaders that cost well under a second per architecture, plus the paper's clean and robust NTK.
QUICK_PROXIES = ("meco", "params", "synflow", "ntk_clean", "ntk_robust")
QUICK_ARCHS = "sample:32"
FULL_ARCHS = "sample:50"
NEEDED = ("cifar10", "nasrobbench201")  # proxy batch images, ground truth
SMALL_N = 30
STUDY = Path(__file__).resolve().parents[2] / "results" / "correlation" / "correlation_nasrobbench201_cifar10.csv"

HELP = (f"Score {QUICK_ARCHS.split(':')[1]} seeded NB201 architectures with {', '.join(QUICK_PROXIES)} on CIFAR-10 "
        "(under 3 minutes on two idle cores; --full: every proxy on 50 archs, over half an hour) and print their "
        "Kendall tau with NAS-RobBench-201 beside the committed 1,000-arch study. Missing data is fetched first; "
        "Ctrl-C prints the table of what is done.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, archs_default=QUICK_ARCHS, store_default="runs/demo.sqlite")
    parser.add_argument("--full", action="store_true",
                        help=f"every registered proxy on {FULL_ARCHS} (over half an hour on two idle cores)")
    parser.add_argument("--base-url", metavar="URL", help="fetch missing data from URL/<file name> (a mirror)")
    helps = {"archs": f"architectures (default {QUICK_ARCHS}; {FULL_ARCHS} with --full)",
             "proxies": f"comma-separated proxy names (default {','.join(QUICK_PROXIES)}; all with --full)",
             "workers": "local worker processes (default: 2, or 1 on a single core)",
             "threads": "torch threads per worker (default 1, as in the committed study)"}
    for action in parser._actions:
        if action.dest in helps:
            action.default, action.help = None, helps[action.dest]


class _Stages:
    """Wall and CPU seconds (this process and its finished workers) per named stage."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    @staticmethod
    def _cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), self._cpu()
        try:
            yield
        finally:
            self.rows.append((name, time.perf_counter() - wall, self._cpu() - cpu))

    def line(self) -> str:
        parts = ", ".join(f"{name} {wall:.1f} s (CPU {cpu:.1f} s)" for name, wall, cpu in self.rows)
        return f"stages: {parts}; total {sum(r[1] for r in self.rows):.1f} s"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def choices(args: argparse.Namespace) -> tuple[str, str, int, int]:
    """(archs spec, proxies spec, worker processes, torch threads) after the quick / --full defaults."""
    return (args.archs or (FULL_ARCHS if args.full else QUICK_ARCHS),
            args.proxies or ("all" if args.full else ",".join(QUICK_PROXIES)),
            args.workers or min(2, _cores()), args.threads or 1)


def run(args: argparse.Namespace) -> int:
    from .. import fetch, runner

    stages = _Stages()
    archs_spec, proxies_spec, workers, threads = choices(args)
    archs = parse_archs(archs_spec, seed=args.seed)
    names = parse_proxies(proxies_spec)
    options = options_dict(args.option)
    with stages("data"):
        fetch.ensure(NEEDED, dest=args.data_dir, base_url=args.base_url)
    print(f"scoring {len(archs)} archs with {len(names)} proxies ({', '.join(names)}) in {workers} process(es) of "
          f"{threads} torch thread(s); store {args.store} (resumable; Ctrl-C shows what is done)", flush=True)
    interrupted = False
    summary = None
    with stages("scoring"):
        try:
            summary = runner.run(archs, names, store=args.store, dataset="cifar10", seed=args.seed,
                                 batch_size=args.batch, device=args.device, workers=workers, data_dir=args.data_dir,
                                 options=options, progress=not args.quiet, threads=threads)
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: the table below covers the architectures finished so far (kept in the store; "
                  "run the same command to continue)", file=sys.stderr, flush=True)
    if summary is not None:
        print_summary(summary)
    with stages("correlation"):
        shown = _report(args, archs, names, options)
    print(stages.line())
    if interrupted:
        return 130
    return 0 if shown and summary is not None and summary.ok else 1


def _report(args: argparse.Namespace, archs: list[int], names: list[str], options: dict) -> bool:
    """Print Kendall tau (95 % CI) per proxy output beside the committed study; False when nothing is scored."""
    from .. import runner, store
    from ..truth import load_nasrobbench201
    from ..validate import correlate

    planned = runner.plan(names, dataset="cifar10", seed=args.seed, batch_size=args.batch, options=options)
    frame = store.load(args.store) if Path(args.store).exists() else None
    if frame is None or frame.empty:
        print("no scores yet: nothing to correlate")
        return False
    keep = frame["arch"].isin(archs) & (frame["proxy"].map(planned) == frame["settings_hash"])
    wide = store.pivot(frame[keep])
    if wide.empty:
        print("no scores yet: nothing to correlate")
        return False
    table = correlate(wide, load_nasrobbench201(args.data_dir))
    full = Path(args.store).with_name(Path(args.store).stem + "_correlations.csv")
    table.to_csv(full, index=False)
    print(f"\nKendall tau-b [95 % bootstrap CI] with NAS-RobBench-201 CIFAR-10 accuracy over {len(wide)} archs "
          f"(seed {args.seed}, batch {args.batch}; every dataset, metric and statistic in {full}):")
    print(_compact(table, _study()))
    smallest = int(table.loc[table["dataset"] == "cifar10", "n"].min()) if len(table) else 0
    if smallest < SMALL_N:
        print(f"\nwarning: only {smallest} architectures; with n < {SMALL_N} the 95 % intervals are wide "
              f"(about +-{_half_width(smallest):.2f}), so rankings of close proxies mean little. Score more for a "
              "sharper answer, e.g. --archs sample:100 (the store keeps what is done).")
    return True


def _half_width(n: int) -> float:
    """Rough half-width of a 95 % CI of Kendall's tau at n (normal approximation under independence)."""
    return 1.96 * ((2 * (2 * n + 5)) / (9 * n * (n - 1))) ** 0.5 if n > 1 else float("inf")


def _study():
    """The committed 1,000-arch CIFAR-10 study table, or None outside a source checkout."""
    import pandas as pd

    return pd.read_csv(STUDY) if STUDY.is_file() else None


def _ci(row, prefix: str = "kendall") -> str:
    value, lo, hi = row.get(prefix), row.get(f"{prefix}_lo"), row.get(f"{prefix}_hi")
    if value is None or value != value:
        return "-"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]" if lo == lo and hi == hi else f"{value:.3f}"


def _compact(table, study) -> str:
    """One row per proxy output: n, tau with clean and PGD-8/255 accuracy, and the study's PGD-8/255 tau."""
    from tabulate import tabulate

    ours = table[table["dataset"] == "cifar10"].set_index(["proxy", "metric"])
    theirs = None if study is None else study[study["dataset"] == "cifar10"].set_index(["proxy", "metric"])
    rows = []
    for proxy in dict.fromkeys(ours.index.get_level_values(0)):
        pgd = ours.loc[(proxy, "pgd_8")] if (proxy, "pgd_8") in ours.index else {}
        clean = ours.loc[(proxy, "clean")] if (proxy, "clean") in ours.index else {}
        ref = theirs.loc[(proxy, "pgd_8")] if theirs is not None and (proxy, "pgd_8") in theirs.index else {}
        rows.append([proxy, int(pgd.get("n", 0)), _ci(clean), _ci(pgd), _ci(ref),
                     pgd.get("kendall", float("-inf"))])
    rows.sort(key=lambda r: -r[-1] if r[-1] == r[-1] else float("inf"))
    headers = ["proxy", "n", "tau clean", "tau PGD-8/255",
               "study tau PGD-8/255 (1,000 archs)" if study is not None else "study (not in this install)"]
    out = tabulate([r[:-1] for r in rows], headers=headers, disable_numparse=True)
    if study is not None:
        out += (f"\n(study column: {STUDY.relative_to(STUDY.parents[2])}, the same settings on a seeded sample of "
                "1,000 archs)")
    return out
