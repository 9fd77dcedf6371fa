"""The common shape of every ground-truth table: one row per NAS-Bench-201 index, (dataset, metric) columns."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataFormatError
from ..space import get_space

NB201 = get_space("nb201")  # this module reads a NAS-Bench-201 benchmark: its keys are NB201 indices

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet16-120")
ROBUST_METRICS: tuple[str, ...] = ("clean", "fgsm_3", "pgd_3", "fgsm_8", "pgd_8", "autoattack")
REPRESENTATIVE = ("arch", "representative")


def build_frame(values: dict[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    """Assemble 15,625-row accuracy columns plus the ``("arch", "representative")`` column."""
    columns = list(values) + [REPRESENTATIVE]
    data = {key: np.asarray(col, dtype=np.float64) for key, col in values.items()}
    data[REPRESENTATIVE] = representatives()
    frame = pd.DataFrame(data, index=pd.RangeIndex(NB201.size(), name="index"))
    frame.columns = pd.MultiIndex.from_tuples(columns, names=["dataset", "metric"])
    return frame


def representatives() -> np.ndarray:
    """``NB201.representative(i)`` for every index, as an int64 array."""
    return np.fromiter((NB201.representative(i) for i in range(NB201.size())), dtype=np.int64, count=NB201.size())


def check_fraction(path: Path, value: object, where: str) -> float:
    """A finite accuracy in [0, 1], or DataFormatError naming the file and the entry."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataFormatError(f"{path}: {where} is {value!r}, expected an accuracy (a number in [0, 1])")
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise DataFormatError(f"{path}: {where} is {number!r}, outside the accuracy range [0, 1]")
    return number


def parse_id(path: Path, key: object) -> int:
    """A NAS-Bench-201 index written as a str/int key, or DataFormatError."""
    try:
        index = int(key)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataFormatError(f"{path}: architecture id {key!r} is not an integer") from None
    if not 0 <= index < NB201.size() or str(index) != str(key).strip():
        raise DataFormatError(f"{path}: architecture id {key!r} is not a NAS-Bench-201 index 0..{NB201.size() - 1}")
    return index
