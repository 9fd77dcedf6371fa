"""``zcproxy export``: write a score store to CSV."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from .._paths import expand
from ._files import remove_if_failed

from .score import assignment, options_dict

HELP = "Export a score store to CSV (long: one row per score; --wide: one row per arch, one column per proxy)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="SQLite store written by `zcproxy score`")
    parser.add_argument("--out", required=True, help="CSV file to write (an existing file needs --force)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--wide", action="store_true", help="one row per arch, one column per proxy output")
    parser.add_argument("--setting", type=assignment, action="append", metavar="KEY=VALUE",
                        help="keep only scores with these settings, e.g. seed=0 (repeatable)")


def run(args: argparse.Namespace) -> int:
    from .. import store

    if not args.out.lower().endswith(".csv"):
        raise ValueError(f"--out {args.out!r} must name a .csv file")
    out = expand(args.out, "--out")
    if out.exists() and not args.force:
        raise ValueError(f"--out {args.out!r} already exists; pass --force to overwrite it, or choose another file")
    if out.exists() and not out.is_file():
        raise ValueError(f"--out {args.out!r} is not a regular file; choose a .csv file path")
    settings = options_dict(args.setting, "--setting")
    temp = out.with_name(f".{out.name}.{os.getpid()}.part")
    with remove_if_failed(temp):
        rows = store.export(args.store, temp, wide=args.wide, settings=settings)
        os.replace(temp, out)
    print(f"wrote {rows} rows to {args.out}")
    return 0
