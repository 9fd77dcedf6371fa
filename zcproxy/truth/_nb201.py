"""NAS-Bench-201 clean accuracies: 200-epoch test accuracy (NATS-Bench topology space, seed mean)."""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._paths import find_data
from ..errors import DataFormatError
from ..space import get_space

NB201 = get_space("nb201")  # this module reads a NAS-Bench-201 benchmark: its keys are NB201 indices
from ._frame import DATASETS, build_frame

NB201_FILE = "nasbench201/nb201_200ep_test_accuracy.csv"
_COLUMNS = {"CIFAR10TestAccuracy200Epochs": "cifar10", "CIFAR100TestAccuracy200Epochs": "cifar100",
            "ImageNetTestAccuracy200Epochs": "ImageNet16-120"}
_ARCH_COLUMN = "ArchitectureString"


def load_nb201(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """NAS-Bench-201 200-epoch test accuracy of all 15,625 indices as fractions.

    Reads ``nasbench201/nb201_200ep_test_accuracy.csv`` (percent, one row per index in index order, with
    the arch string, which must equal ``NB201.arch(i)``). Columns ``(dataset, "clean")`` for ``cifar10``,
    ``cifar100`` and ``ImageNet16-120``, plus ``("arch", "representative")``; indexed by ``index``.
    """
    return _read_csv(find_data(NB201_FILE, data_dir, what="NAS-Bench-201 accuracy table"))


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataFormatError(f"{path} is not a readable CSV file ({exc})") from None
    header = set(rows[0]) if rows else set()
    needed = set(_COLUMNS) | {_ARCH_COLUMN}
    if not needed <= header:
        raise DataFormatError(f"{path}: columns {sorted(needed - header)} are missing (found {sorted(header)})")
    if len(rows) != NB201.size():
        raise DataFormatError(
            f"{path} has {len(rows)} data rows, expected {NB201.size()} (one per NAS-Bench-201 index); "
            "the file is truncated or not the NAS-Bench-201 table"
        )
    values = {key: np.empty(NB201.size()) for key in DATASETS}
    for index, row in enumerate(rows):
        if row[_ARCH_COLUMN] != NB201.arch(index):
            raise DataFormatError(
                f"{path}: row {index} is {row[_ARCH_COLUMN]!r} but NAS-Bench-201 index {index} is "
                f"{NB201.arch(index)!r}; rows must be in NAS-Bench-201 index order"
            )
        for column, dataset in _COLUMNS.items():
            values[dataset][index] = _percent(path, row[column], f"row {index} {column}")
    return build_frame({(dataset, "clean"): values[dataset] / 100.0 for dataset in DATASETS})


def _percent(path: Path, text: str | None, where: str) -> float:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataFormatError(f"{path}: {where} is {text!r}, expected a percentage") from None
    if not (math.isfinite(value) and 0.0 <= value <= 100.0):
        raise DataFormatError(f"{path}: {where} is {value!r}, outside the percentage range [0, 100]")
    return value
