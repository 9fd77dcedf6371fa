"""Ground truth from any CSV file, and the built-in DARTS table (``darts1000``).

A truth CSV has a header row, one key column naming the architecture in its search space (any form the
space resolves: an NB201 index or arch string, a DARTS genotype, ...) and one or more numeric metric
columns. The result has the shape of every truth table: index = architecture labels, columns
``(dataset, metric)`` plus ``("arch", "representative")``.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._paths import find_data
from ..errors import TruthError
from ..space import SearchSpace, get_space, labels
from ._frame import REPRESENTATIVE

DARTS1000_FILE = "darts/DARTS_archs_CIFAR10.csv"


def load_truth_csv(path: str | os.PathLike, space: str | SearchSpace, *, key_column: str = "arch",
                   metrics: Sequence[str] | None = None, dataset: str = "cifar10") -> pd.DataFrame:
    """Read ``path`` (header row; ``key_column`` + numeric ``metrics``, default every other column).

    Every key is resolved with ``space.key``; metric cells must be finite numbers (an empty cell is a
    missing value, NaN). A missing column, a key the space does not resolve, the same architecture on
    two rows, or a non-numeric cell raises :class:`~zcproxy.errors.TruthError` naming the file, row and
    column. Metric values are kept as written (percent or fraction).
    """
    file = Path(path).expanduser()
    sp = get_space(space)
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise TruthError(f"truth file {file} does not exist; pass an existing CSV or a built-in name") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TruthError(f"truth file {file} cannot be read as CSV: {exc}") from None
    if not rows:
        raise TruthError(f"truth file {file} is empty; it needs a header row with {key_column!r} and metric columns")
    header = [h.strip() for h in rows[0]]
    if key_column not in header:
        raise TruthError(f"truth file {file} has no key column {key_column!r} (columns: {header}); name the "
                         "architecture column with --truth-key (Python: key_column=)")
    key_at = header.index(key_column)
    wanted = [h for h in header if h != key_column] if metrics is None else list(metrics)
    absent = [m for m in wanted if m not in header]
    if absent or not wanted:
        raise TruthError(f"truth file {file} lacks metric column(s) {absent or '(none left besides the key)'}; "
                         f"its columns are {header}")
    positions = [header.index(m) for m in wanted]
    return _frame(file, sp, [(n, r[key_at] if key_at < len(r) else "", [r[p] if p < len(r) else "" for p in positions])
                             for n, r in enumerate(rows[1:], start=2) if any(c.strip() for c in r)],
                  key_column, wanted, dataset)


def load_darts1000(data_dir: str | os.PathLike | None = None, space: str | SearchSpace = "darts") -> pd.DataFrame:
    """The 1,000 DARTS architectures of SWAP-NAS with their CIFAR-10 accuracy after 200 epochs.

    ``darts/DARTS_archs_CIFAR10.csv`` has no header: genotype, accuracy in percent. Returned as
    ``("cifar10", "clean")`` fractions in [0, 1], indexed by canonical DARTS keys.
    """
    file = find_data(DARTS1000_FILE, data_dir, what="DARTS 1,000-architecture table (SWAP-NAS)")
    with open(file, newline="", encoding="utf-8") as handle:
        rows = [(n, r[0] if r else "", r[1:2]) for n, r in enumerate(csv.reader(handle), start=1)
                if any(c.strip() for c in r)]
    frame = _frame(file, get_space(space), rows, "column 1", ["clean"], "cifar10")
    values = frame[("cifar10", "clean")]
    outside = values[(values < 0) | (values > 100)]
    if len(outside):
        raise TruthError(f"{file}: accuracy {outside.iloc[0]!r} of {outside.index[0]!r} is outside 0..100 percent")
    frame[("cifar10", "clean")] = values / 100.0
    return frame


def _frame(file: Path, space: SearchSpace, rows: list[tuple[int, str, list[str]]], key_column: str,
           metrics: list[str], dataset: str) -> pd.DataFrame:
    keys: list[str] = []
    first_row: dict[str, int] = {}
    values = np.full((len(rows), len(metrics)), np.nan)
    for i, (row_number, text, cells) in enumerate(rows):
        try:
            key = space.key(text.strip())
        except (ValueError, TypeError, KeyError) as exc:
            raise TruthError(f"{file} row {row_number}, column {key_column!r}: {text!r} is not an architecture of "
                             f"search space {space.name!r} ({exc})") from None
        if key in first_row:
            raise TruthError(f"{file} rows {first_row[key]} and {row_number} name the same architecture {key!r}; "
                             "keep one row per architecture")
        first_row[key] = row_number
        keys.append(key)
        for j, (metric, cell) in enumerate(zip(metrics, cells)):
            values[i, j] = _number(file, row_number, metric, cell)
    index = pd.Index(labels(keys), name="arch")
    data: dict[tuple[str, str], Any] = {(dataset, m): values[:, j] for j, m in enumerate(metrics)}
    data[REPRESENTATIVE] = labels([space.representative(k) for k in keys])
    frame = pd.DataFrame(data, index=index)
    frame.columns = pd.MultiIndex.from_tuples(list(data), names=["dataset", "metric"])
    return frame


def _number(file: Path, row: int, column: str, cell: str) -> float:
    text = cell.strip()
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise TruthError(f"{file} row {row}, column {column!r}: {cell!r} is not a number; metric cells must be "
                         "numbers (leave a cell empty for a missing value)") from None
    if not math.isfinite(value):
        raise TruthError(f"{file} row {row}, column {column!r}: {cell!r} is not a finite number")
    return value
