"""``zcproxy export``: write a score store to CSV."""
from __future__ import annotations

import argparse

from .score import assignment, options_dict

HELP = "Export a score store to CSV (long: one row per score; --wide: one row per arch, one column per proxy)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="SQLite store written by `zcproxy score`")
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--wide", action="store_true", help="one row per arch, one column per proxy output")
    parser.add_argument("--setting", type=assignment, action="append", metavar="KEY=VALUE",
                        help="keep only scores with these settings, e.g. seed=0 (repeatable)")


def run(args: argparse.Namespace) -> int:
    from .. import store

    if not args.out.lower().endswith(".csv"):
        raise ValueError(f"--out {args.out!r} must name a .csv file")
    rows = store.export(args.store, args.out, wide=args.wide, settings=options_dict(args.setting, "--setting"))
    print(f"wrote {rows} rows to {args.out}")
    return 0
