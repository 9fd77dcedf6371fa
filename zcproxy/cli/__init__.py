"""The ``zcproxy`` command line. Each subcommand lives in its own module ``zcproxy.cli.<name>`` with
``HELP: str``, ``add_arguments(parser)`` and ``run(args) -> int``.

Exit codes: 0 done, 1 some work failed (listed), 2 usage error.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from .._malloc import release_large_frees
from ..errors import ZcproxyError

# Subcommands in the order shown by --help; a module missing from this list is not exposed.
COMMANDS = ("demo", "score", "arch", "rank", "merge", "export", "correlate", "predict", "verify", "search", "fetch")


def _available_commands() -> list[str]:
    present = {m.name for m in pkgutil.iter_modules(__path__)}
    return [c for c in COMMANDS if c in present]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zcproxy",
        description="Zero-cost proxies for any search space: score, rank, correlate, predict, verify and search.",
    )
    parser.add_argument("--low-memory", action="store_true",
                        help="fix glibc's mmap threshold at 128 KiB: freed large blocks go back to the system at once, "
                             "for a lower peak memory at a longer run time (results/perf/allocator.md)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _available_commands():
        module = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.low_memory:
        release_large_frees()  # memory against time: see zcproxy/_malloc.py
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:  # the reader went away (`zcproxy ... | head`): stop quietly, as other tools do
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout without a file descriptor (captured)
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a killed writer
    except KeyboardInterrupt:
        print("interrupted; finished work is kept in the store", file=sys.stderr)
        return 130
    except (ZcproxyError, ValueError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"zcproxy {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
