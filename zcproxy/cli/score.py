"""``zcproxy score``: score many architectures into a resumable SQLite store."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
HELP = ("Score NB201 architectures with zero-cost proxies into a resumable SQLite store "
        "(skips what is already stored; parallel, sharded or on Ray).")
ARCHS_FORMS = "unique, all, sample:N, a file of indices/arch strings, or a comma list i,j,k"


# ---------------------------------------------------------------------------------- argument parsing


def _int_at_least(minimum: int, wording: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {wording}, got {text!r}")
        return value
    return parse


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "an integer >= 0")


def dataset_name(text: str) -> str:
    """argparse type: a dataset name in any case ('imagenet' too) -> its canonical name."""
    from .._datasets import dataset_info

    try:
        return dataset_info(text).name
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; use one of {', '.join(DATASETS)} "
                                         "(any letter case)") from None


def shard_spec(text: str) -> tuple[int, int]:
    """``i/n`` with 0 <= i < n (0-based, like ``$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n (0-based), e.g. 0/4, got {text!r}")
    return int(match[1]), int(match[2])


def parse_value(text: str) -> Any:
    """``3`` -> int, ``0.5`` -> float, ``8/255`` -> float(8/255), ``true``/``false`` -> bool, else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    match = re.fullmatch(r"\s*([-+]?\d+(?:\.\d*)?)\s*/\s*(\d+(?:\.\d*)?)\s*", text)
    if match and float(match[2]) != 0:
        return float(match[1]) / float(match[2])
    return text


def assignment(text: str) -> tuple[str, Any]:
    """``key=value`` (value parsed by :func:`parse_value`)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected key=value (e.g. eps=8/255), got {text!r}")
    return key.strip(), parse_value(value)


def _arch_token(token: str, where: str) -> int:
    from ..space import NB201

    try:
        return NB201.resolve(int(token)) if re.fullmatch(r"\d+", token) else NB201.index(token)
    except (ValueError, KeyError, IndexError, TypeError):
        raise ValueError(f"--archs: {token!r} in {where} is neither an NB201 index 0..{NB201.size() - 1} nor an "
                         "NB201 arch string like |nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|") from None


def parse_archs(spec: str, seed: int = 0) -> list[int]:
    """Architectures named by ``--archs``: ``unique``, ``all``, ``sample:N`` (seeded uniform sample of N
    isomorphism representatives), a file of indices / arch strings, or ``i,j,k``."""
    import numpy as np

    from ..space import NB201

    spec = spec.strip()
    if spec == "unique":
        return NB201.unique()
    if spec == "all":
        return list(range(NB201.size()))
    if spec.startswith("sample:"):
        count = spec.partition(":")[2]
        unique = NB201.unique()
        if not count.isdigit() or not 1 <= int(count) <= len(unique):
            raise ValueError(f"--archs sample:N needs 1 <= N <= {len(unique)}, got {spec!r}")
        picked = np.random.default_rng(seed).choice(len(unique), size=int(count), replace=False)
        return sorted(unique[int(i)] for i in picked)
    path = Path(spec).expanduser()
    if path.is_file():
        tokens = [(t, f"{path} line {n}") for n, line in enumerate(path.read_text().splitlines(), 1)
                  for t in re.split(r"[\s,]+", line.split("#", 1)[0]) if t]
        if not tokens:
            raise ValueError(f"--archs file {path} lists no architectures; write one index or arch string per line")
        return list(dict.fromkeys(_arch_token(t, w) for t, w in tokens))
    if os.sep in spec or spec.endswith(".txt"):
        raise ValueError(f"--archs file {spec} does not exist; pass an existing file or one of: {ARCHS_FORMS}")
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise ValueError(f"--archs is empty; pass {ARCHS_FORMS}")
    return list(dict.fromkeys(_arch_token(t, "the list") for t in tokens))


def parse_proxies(spec: str) -> list[str]:
    """``all`` or comma-separated proxy names (unknown names raise naming the valid ones)."""
    from .. import proxies

    names = proxies.available() if spec.strip() == "all" else [p.strip() for p in spec.split(",") if p.strip()]
    if not names:
        raise ValueError(f"--proxies is empty; pass all or names from: {', '.join(proxies.available())}")
    unknown = [n for n in names if n not in proxies.available()]
    if unknown:
        raise ValueError(f"--proxies: unknown proxy name(s) {unknown}; available: {', '.join(proxies.available())}")
    return list(dict.fromkeys(names))


def options_dict(pairs: list[tuple[str, Any]] | None, flag: str = "--option") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs or []:
        if key in out and out[key] != value:
            raise ValueError(f"{flag} {key} given twice with different values ({out[key]!r}, {value!r})")
        out[key] = value
    return out


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
    parser.add_argument("--shard", type=shard_spec, default=None, metavar="I/N",
                        help="score only shard I of N (0-based; for SLURM job arrays)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local processes or a Ray cluster (default local)")
    parser.add_argument("--stand-in", action="store_true",
                        help="use CIFAR-10 images where the dataset's own images are absent")


def run(args: argparse.Namespace) -> int:
    from .. import runner

    archs = parse_archs(args.archs, seed=args.seed)
    proxies = parse_proxies(args.proxies)
    try:
        summary = runner.run(archs, proxies, store=args.store, dataset=args.dataset, seed=args.seed,
                             batch_size=args.batch, stand_in=args.stand_in, device=args.device,
                             workers=args.workers, shard=args.shard, backend=args.backend, data_dir=args.data_dir,
                             options=options_dict(args.option), progress=not args.quiet, threads=args.threads)
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    print_summary(summary)
    return 0 if summary.ok else 1
