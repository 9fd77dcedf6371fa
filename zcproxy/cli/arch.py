"""``zcproxy arch IDX|STR``: everything known about one NAS-Bench-201 architecture."""
from __future__ import annotations

import argparse
import sys

HELP = "Show an architecture: string, index, isomorphism class, params, FLOPs and benchmark accuracies."

_MAX_LISTED = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", metavar="IDX|STR",
                        help="NAS-Bench-201 index 0..15624 or arch string |op~0|+|op~0|op~1|+|op~0|op~1|op~2|")
    parser.add_argument("--data-dir", metavar="DIR", help="folder with the benchmark tables (default: $ZCPROXY_DATA)")


def _resolve(text: str) -> int:
    from ..space import NB201

    token = text.strip()
    if token.lstrip("-").isdigit():
        return NB201.resolve(int(token))
    if "~" not in token:
        raise ValueError(f"{text!r} is neither an index 0..{NB201.size() - 1} nor an arch string "
                         "like |nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_1x1~2|")
    return NB201.index(token)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..errors import DataFormatError, DataNotFoundError
    from ..space import NB201
    from ..space._cost import count_flops, count_params

    try:
        index = _resolve(args.arch)
    except ValueError as exc:
        print(f"zcproxy arch: error: {exc}", file=sys.stderr)
        return 2
    rep = NB201.representative(index)
    members = [i for i in range(NB201.size()) if NB201.representative(i) == rep]
    listed = ", ".join(map(str, members[:_MAX_LISTED])) + (", ..." if len(members) > _MAX_LISTED else "")
    model = NB201.build(index)
    facts = [
        ("arch", NB201.arch(index)),
        ("index", index),
        ("representative", rep),
        ("isomorphism class", f"{len(members)} architecture(s): {listed}"),
        ("constant output", "yes (every path to the output has a 'none' edge)" if NB201.is_zero_output(index)
         else "no"),
        ("params (CIFAR-10 head)", f"{count_params(model):,} ({count_params(model) / 1e6:.4f} M)"),
        ("FLOPs (1x3x32x32)", f"{count_flops(model, (1, 3, 32, 32)) / 1e6:.2f} M"),
    ]
    print(tabulate(facts, tablefmt="plain"))
    status = 0
    for title, load in _truth_tables():
        try:
            frame = load(args.data_dir)
        except DataNotFoundError:
            print(f"\n{title}: not available (run `zcproxy fetch` or set ZCPROXY_DATA)")
            continue
        except DataFormatError as exc:
            print(f"\n{title}: unreadable: {exc}", file=sys.stderr)
            status = 1
            continue
        row = frame.loc[index].drop("arch", level="dataset")
        table = row.unstack("metric") * 100.0
        print(f"\n{title} (accuracy %)")
        print(tabulate(table, headers="keys", floatfmt=".2f"))
    return status


def _truth_tables():
    from ..truth import load_nasrobbench201, load_nb201

    return (("NAS-RobBench-201, adversarially trained", load_nasrobbench201),
            ("NAS-Bench-201, standard training, 200 epochs", load_nb201))
