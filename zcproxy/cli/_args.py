"""Argument types and parsers shared by every ``zcproxy`` command (one definition per flag)."""
from __future__ import annotations

import argparse
import contextlib
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
ARCHS_FORMS = ("all, unique, sample:N, quantiles:K, truth, a file (one architecture per line), or a comma list of "
               "architectures")


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
    """argparse type: ``i/n`` with 0 <= i < n (see :func:`zcproxy.runner.shard_spec`)."""
    from ..runner import shard_spec as parse

    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def space_name(text: str):
    """argparse type: ``nb201``, ``darts`` or ``package.module:OBJECT`` -> the search space object."""
    from ..space import get_space

    try:
        return get_space(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_archs(spec: str, seed: int = 0, space=None, truth=None) -> list:
    """Architectures named by ``--archs`` (:mod:`zcproxy.space.selection`), as labels (NB201: ints)."""
    from ..space import get_space, label
    from ..space.selection import select_archs

    return [label(k) for k in select_archs(spec, get_space("nb201" if space is None else space), seed=seed,
                                           truth=truth)]


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




def add_space_arguments(parser: argparse.ArgumentParser, *, truth_help: str = "ground truth") -> None:
    """``--space``, ``--truth``, ``--truth-key``, ``--metric``: the same flags in every command."""
    parser.add_argument("--space", type=space_name, default="nb201",
                        help="search space: nb201, darts, or package.module:OBJECT (default nb201)")
    parser.add_argument("--truth", default=None,
                        help=f"{truth_help}: nasrobbench201, nb201, darts1000, or a CSV file with a key column and "
                             "metric columns")
    parser.add_argument("--truth-key", default="arch", help="key column of a --truth CSV (default arch)")
    parser.add_argument("--metric", default=None,
                        help="ground-truth metric for quantiles:K and the like (default pgd_8 when present, else "
                             "the first metric)")


def load_truth(args: argparse.Namespace, dataset: str = "cifar10"):
    """The ``--truth`` table of ``args`` in ``args.space`` (None when no --truth was given)."""
    if getattr(args, "truth", None) is None:
        return None
    from ..truth import load_truth as _load

    return _load(args.truth, args.space, data_dir=getattr(args, "data_dir", None), key_column=args.truth_key,
                 dataset=dataset)


def truth_metric(truth, dataset: str, metric: str | None):
    """One metric column of a truth table as a Series (``metric`` None: pgd_8 if present, else the first)."""
    columns = [m for d, m in truth.columns if d == dataset]
    if not columns:
        raise ValueError(f"the ground truth has no column for dataset {dataset!r}; it has "
                         f"{sorted({d for d, _ in truth.columns if d != 'arch'})}")
    chosen = metric or ("pgd_8" if "pgd_8" in columns else columns[0])
    if chosen not in columns:
        raise ValueError(f"--metric {chosen!r} is not in the ground truth for {dataset}; choose one of {columns}")
    return truth[(dataset, chosen)]


def selected_archs(args: argparse.Namespace, dataset: str = "cifar10") -> list[str]:
    """Canonical keys of ``--archs`` in ``--space`` (loading ``--truth`` when the selection needs it)."""
    from ..space.selection import select_archs, split_items

    truth = None
    if any(i == "truth" or i.startswith("quantiles:") for i in split_items(args.archs)):
        table = load_truth(args, dataset)
        if table is None:
            raise ValueError(f"--archs {args.archs!r} needs ground truth; pass --truth")
        truth = truth_metric(table, dataset, getattr(args, "metric", None))
    return select_archs(args.archs, args.space, seed=args.seed, truth=truth)


@contextlib.contextmanager
def created_outputs(folder: Path) -> Iterator[Path]:
    """Create ``folder`` (and parents) for a command's outputs; if the command fails, remove what it created
    there (new files, and the folders it made) and never what existed before."""
    existed = {p for p in folder.rglob("*")} if folder.exists() else set()
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # made[-1]: the topmost folder we create
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {folder} is a file; pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"--out {folder}: a parent of it is a file; pass a folder path") from None
    try:
        yield folder
    except BaseException:
        if made:
            shutil.rmtree(made[-1], ignore_errors=True)
        else:
            for path in sorted(set(folder.rglob("*")) - existed, key=lambda p: len(p.parts), reverse=True):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


def renamed_flag(new: str) -> type[argparse.Action]:
    """An argparse action for a retired flag: using it is a usage error naming ``new``."""

    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(f"{option_string} was renamed {new} (the same flag in every command); use {new}")

    return Renamed
