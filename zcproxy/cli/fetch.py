"""``zcproxy fetch``: download the public data files into the data directory."""
from __future__ import annotations

import argparse
import sys

HELP = "Download the benchmark tables and CIFAR images into the data directory (checksums verified)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dest", metavar="DIR",
                        help="data directory to fill (default: $ZCPROXY_DATA, else ~/.cache/zcproxy)")
    parser.add_argument("--only", metavar="NAME[,NAME...]",
                        help="comma-separated names from --list (default: all but cifar100)")
    parser.add_argument("--base-url", metavar="URL", help="download every file from URL/<file name> (a mirror)")
    parser.add_argument("--force", action="store_true", help="download again even when the target exists")
    parser.add_argument("--list", action="store_true", help="list the available files and exit")


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .._paths import data_dir
    from ..errors import ZcproxyError
    from ..fetch import DEFAULT, MANIFEST, fetch

    if args.list:
        rows = [(r.name, "yes" if r.name in DEFAULT else "no", r.target,
                 f"{r.size / 1e6:.2f}" if r.size else "?",
                 r.checksum, r.description)
                for r in MANIFEST.values()]
        print(tabulate(rows, headers=["name", "default", "target", "MB", "checksum", "contents"]))
        print(f"\ndestination: {data_dir(args.dest)}")
        return 0
    names = list(DEFAULT) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in MANIFEST]
    if unknown or not names:
        print(f"zcproxy fetch: error: unknown name(s) {unknown or args.only!r}; choose from {', '.join(MANIFEST)} "
              "(see `zcproxy fetch --list`)", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        try:
            fetch([name], dest=args.dest, base_url=args.base_url, force=args.force, progress=True)
        except ZcproxyError as exc:
            print(f"zcproxy fetch: {name} failed: {exc}", file=sys.stderr)
            failed.append(name)
    done = len(names) - len(failed)
    print(f"{done} of {len(names)} file(s) in place under {data_dir(args.dest)}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
