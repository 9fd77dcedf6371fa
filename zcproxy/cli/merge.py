"""``zcproxy merge``: combine score stores (e.g. the shards of a SLURM job array) into one."""
from __future__ import annotations

import argparse

from .._paths import expand
from ._files import remove_if_failed

HELP = "Merge score stores into OUT: identical rows are deduplicated, conflicting values are reported."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="store to merge into (created if absent)")
    parser.add_argument("inputs", metavar="IN", nargs="+", help="stores to read")


def run(args: argparse.Namespace) -> int:
    from .. import store

    for source in args.inputs:
        if not expand(source, "input store").is_file():
            raise FileNotFoundError(f"input store {source!r} does not exist or is not a file; check the path "
                                    f"(nothing was written to {args.out})")
    out = str(expand(args.out, "OUT"))
    with remove_if_failed(out, out + "-wal", out + "-shm", out + "-journal"):
        report = store.merge(args.out, args.inputs)
    print(f"merged {len(args.inputs)} store(s) into {args.out}: {report.added} rows added, "
          f"{report.duplicates} identical duplicates skipped, {report.failures_added} failures copied, "
          f"{len(report.conflicts)} conflicts")
    for c in report.conflicts[:50]:
        print(f"  conflict arch {c['arch']} {c['proxy']} [{c['settings_hash']}]: kept {c['kept']!r}, "
              f"{c['source']} has {c['other']!r}")
    if len(report.conflicts) > 50:
        print(f"  ... and {len(report.conflicts) - 50} more conflicts")
    return 1 if report.conflicts else 0
