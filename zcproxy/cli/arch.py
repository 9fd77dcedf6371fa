"""``zcproxy arch ARCH``: everything known about one architecture of any search space."""
from __future__ import annotations

import argparse
import sys

from ._args import add_space_arguments

HELP = ("Show an architecture: its key, isomorphism class, params, FLOPs, graph features and ground-truth "
        "accuracies.")

_MAX_LISTED = 12
_MAX_ENUMERATED = 1_000_000  # list class members only in spaces this small
_TITLES = {"nasrobbench201": "NAS-RobBench-201, adversarially trained",
           "nb201": "NAS-Bench-201, standard training, 200 epochs",
           "darts1000": "darts1000, SWAP-NAS's DARTS architectures, standard training"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", metavar="ARCH",
                        help="an architecture of --space: NB201 index 0..15624 or arch string "
                             "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|; DARTS Genotype(...) string")
    parser.add_argument("--data-dir", metavar="DIR", help="folder with the benchmark tables (default: $ZCPROXY_DATA)")
    add_space_arguments(parser, truth_help="ground truth to show (default: every built-in table of the space)")


def _facts(space, key: str) -> list[tuple[str, object]]:
    from ..space import label
    from ..space._cost import count_flops, count_params

    rep = space.representative(key)
    facts: list[tuple[str, object]] = []
    describe = getattr(space, "describe", None)
    if callable(describe) and describe(key) != key:
        facts.append(("arch", describe(key)))
    facts += [("key" if space.name != "nb201" else "index", label(key)), ("representative", label(rep))]
    size = space.size()
    if size is not None and size <= _MAX_ENUMERATED:
        members = [label(k) for k in space.archs() if space.representative(k) == rep]
        listed = ", ".join(map(str, members[:_MAX_LISTED])) + (", ..." if len(members) > _MAX_LISTED else "")
        facts.append(("isomorphism class", f"{len(members)} architecture(s): {listed}"))
    facts.append(("constant output", "yes (no path from the input to the output without a 'none' op)"
                  if space.is_degenerate(key) else "no"))
    model = space.build(key)
    facts += [("params (10-class head)", f"{count_params(model):,} ({count_params(model) / 1e6:.4f} M)"),
              ("FLOPs (1x3x32x32)", f"{count_flops(model, (1, 3, 32, 32)) / 1e6:.2f} M")]
    if callable(getattr(space, "graph", None)):
        from ..space import graph_features

        row = graph_features([key], space).iloc[0]
        paths = sum(v for k, v in row.items() if k.split(".")[-1] == "paths")
        facts.append(("graph", f"{paths:.0f} input-output path(s); {len(row)} graph features "
                               "(zcproxy.space.graph_features)"))
    return facts


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..errors import DataFormatError, DataNotFoundError, ZcproxyError
    from ..space import label
    from ..truth import BUILTIN, load_truth

    space = args.space
    try:
        key = space.key(args.arch.strip() if isinstance(args.arch, str) else args.arch)
    except (ValueError, ZcproxyError) as exc:
        print(f"zcproxy arch: error: {exc}", file=sys.stderr)
        return 2
    if args.truth in BUILTIN and BUILTIN[args.truth][0] != space.name:
        print(f"zcproxy arch: error: ground truth {args.truth!r} is keyed in search space "
              f"{BUILTIN[args.truth][0]!r}, not {space.name!r}; pass --space {BUILTIN[args.truth][0]}",
              file=sys.stderr)
        return 2
    print(tabulate(_facts(space, key), tablefmt="plain"))
    names = [args.truth] if args.truth else [n for n, (own, _) in BUILTIN.items() if own == space.name]
    status = 0
    for name in names:
        title = _TITLES.get(str(name), str(name))
        try:
            frame = load_truth(name, space, data_dir=args.data_dir, key_column=args.truth_key)
        except DataNotFoundError:
            print(f"\n{title}: not available (run `zcproxy fetch` or set ZCPROXY_DATA)")
            continue
        except (DataFormatError, ZcproxyError) as exc:
            print(f"\n{title}: unreadable: {exc}", file=sys.stderr)
            status = 1
            continue
        if label(key) not in frame.index:
            print(f"\n{title}: this architecture is not in the table")
            continue
        row = frame.loc[label(key)].drop("arch", level="dataset", errors="ignore")
        print(f"\n{title} (accuracy %)")
        print(tabulate(row.unstack("metric") * 100.0, headers="keys", floatfmt=".2f"))
    return status
