"""NAS-RobBench-201 (Wu et al., ICLR 2024, arXiv 2403.13134): adversarially trained accuracies of NAS-Bench-201.

Two file layouts are read:

* ``NAS-RobBench-201_html.json`` (the project page table): JavaScript ``acc={...}``; ``acc[""]`` holds 18
  labels ``{cifar10,cifar100,imagenet}#{val_acc,val_fgsm_3_acc,val_pgd_3_acc,val_fgsm_8_acc,val_pgd_8_acc,
  autoattack}``; ``acc["<id>"]`` is the list of 18 accuracies of a representative or the id (a str) of the
  representative whose results apply.
* ``NAS-RobBench-201_all.json`` (the authors' full release): ``res[dataset][id][metric][seed]`` with seeds
  ``"1"``, ``"2"``, ``"3"`` and ``"threeseed"``; metric keys as the training code logs them
  (``val_acc``, ``val_fgsm_3.0_acc``, ``val_pgd_8.0_acc``, ...). The ``"threeseed"`` entry is used; a metric
  without it (AutoAttack was run once) uses the mean of the seeds present. AutoAttack columns absent from
  the whole file become NaN with a warning; any other absent metric is an error. Assumption: dataset keys are
  ``cifar10``, ``cifar100`` and ``imagenet`` (or ``ImageNet16-120``); ids that are not isomorphism
  representatives are ignored because the authors' loader maps every id to its representative first.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._paths import find_data
from ..errors import DataFormatError, DataNotFoundError
from ..space import get_space

NB201 = get_space("nb201")  # this module reads a NAS-Bench-201 benchmark: its keys are NB201 indices
from ._frame import DATASETS, ROBUST_METRICS, build_frame, check_fraction, parse_id, representatives

HTML_FILE = "nasrobbench201/NAS-RobBench-201_html.json"
FULL_FILE = "nasrobbench201/NAS-RobBench-201_all.json"
LAYOUTS = ("auto", "html", "full")

_DATASET_KEYS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "ImageNet16-120",
                 "imagenet16-120": "ImageNet16-120", "imagenet16": "ImageNet16-120"}
_HTML_METRICS = {"val_acc": "clean", "val_fgsm_3_acc": "fgsm_3", "val_pgd_3_acc": "pgd_3",
                 "val_fgsm_8_acc": "fgsm_8", "val_pgd_8_acc": "pgd_8", "autoattack": "autoattack"}
_FULL_METRICS: dict[str, tuple[str, ...]] = {
    "clean": ("val_acc",),
    "fgsm_3": ("val_fgsm_3.0_acc", "val_fgsm_3_acc"),
    "pgd_3": ("val_pgd_3.0_acc", "val_pgd_3_acc"),
    "fgsm_8": ("val_fgsm_8.0_acc", "val_fgsm_8_acc"),
    "pgd_8": ("val_pgd_8.0_acc", "val_pgd_8_acc"),
    "autoattack": ("autoattack", "val_autoattack_8.0_acc", "val_autoattack_8_acc", "val_autoattack_acc"),
}
_SEEDS = ("1", "2", "3")


def load_nasrobbench201(data_dir: str | os.PathLike | None = None, layout: str = "auto") -> pd.DataFrame:
    """NAS-RobBench-201 accuracies of all 15,625 NAS-Bench-201 indices (isomorphs copy their representative).

    Returns a DataFrame indexed by ``index`` (0..15624) with columns ``(dataset, metric)`` for datasets
    ``cifar10``, ``cifar100``, ``ImageNet16-120`` (the file's ``imagenet``) and metrics ``clean`` (val_acc),
    ``fgsm_3``, ``pgd_3``, ``fgsm_8``, ``pgd_8`` (FGSM / PGD-20 at eps 3/255 and 8/255, three-seed means) and
    ``autoattack`` (one run), all fractions in [0, 1]; plus the int column ``("arch", "representative")``.
    Select e.g. ``df[("cifar10", "pgd_8")]``; ``df.drop(columns="arch", level="dataset")`` leaves only
    accuracies.

    ``layout="auto"`` reads the project-page file when present, else the authors' full file.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout in ("auto", "html"):
        try:
            return _load_html(find_data(HTML_FILE, data_dir, what="NAS-RobBench-201 table"))
        except DataNotFoundError:
            if layout == "html":
                raise
    try:
        return _load_full(find_data(FULL_FILE, data_dir, what="NAS-RobBench-201 full results"))
    except DataNotFoundError as exc:
        if layout == "full":
            raise
        raise DataNotFoundError(
            f"NAS-RobBench-201 not found: neither {HTML_FILE} nor {FULL_FILE} exists. {exc}"
        ) from None


# ------------------------------------------------------------------------------------------------ html


def _read_js_object(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path} is not UTF-8 text ({exc}); download it again") from None
    head, sep, body = text.partition("=")
    if not sep or head.strip() != "acc":
        raise DataFormatError(f"{path} does not start with 'acc=' (the project-page JavaScript layout)")
    try:
        return json.loads(body.strip().rstrip(";"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"{path}: the text after 'acc=' is not valid JSON ({exc}); the file is truncated or corrupt - "
            "download it again with `zcproxy fetch --only nasrobbench201 --force`"
        ) from None


def _html_columns(path: Path, labels: object) -> list[tuple[str, str]]:
    if not isinstance(labels, list) or len(labels) != 18:
        raise DataFormatError(f"{path}: acc[\"\"] must list 18 column labels, got {labels!r:.200}")
    columns = []
    for label in labels:
        dataset, _, metric = str(label).partition("#")
        if dataset not in _DATASET_KEYS or metric not in _HTML_METRICS:
            raise DataFormatError(
                f"{path}: column label {label!r} is not '<cifar10|cifar100|imagenet>#<metric>' with metric one of "
                f"{sorted(_HTML_METRICS)}"
            )
        columns.append((_DATASET_KEYS[dataset], _HTML_METRICS[metric]))
    if len(set(columns)) != 18:
        raise DataFormatError(f"{path}: the 18 column labels repeat a dataset/metric pair: {labels}")
    return columns


def _load_html(path: Path) -> pd.DataFrame:
    table = _read_js_object(path)
    if not isinstance(table, dict) or "" not in table:
        raise DataFormatError(f"{path}: expected an object with the column labels under the key \"\"")
    columns = _html_columns(path, table[""])
    rows: dict[int, list[float]] = {}
    pointers: dict[int, int] = {}
    for key, entry in table.items():
        if key == "":
            continue
        index = parse_id(path, key)
        if isinstance(entry, list):
            if len(entry) != 18:
                raise DataFormatError(f"{path}: id {index} has {len(entry)} accuracies, expected 18")
            if not all(type(v) in (int, float) for v in entry):
                bad = next(k for k, v in enumerate(entry) if type(v) not in (int, float))
                check_fraction(path, entry[bad], f"id {index} column {columns[bad]}")
            rows[index] = entry
        elif isinstance(entry, str):
            pointers[index] = parse_id(path, entry)
        else:
            raise DataFormatError(f"{path}: id {index} maps to {type(entry).__name__}, expected a list or an id")
    _check_ids(path, rows, pointers)
    reps = np.fromiter(rows, dtype=np.int64, count=len(rows))
    table_values = np.array([rows[i] for i in reps.tolist()], dtype=np.float64)
    bad = ~(np.isfinite(table_values) & (table_values >= 0.0) & (table_values <= 1.0))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        check_fraction(path, float(table_values[row, col]), f"id {reps[row]} column {columns[col]}")
    position = {int(i): k for k, i in enumerate(reps)}
    values = table_values[[position[rep] for rep in representatives().tolist()]]
    return _ordered(build_frame({col: values[:, k] for k, col in enumerate(columns)}))


def _check_ids(path: Path, rows: dict[int, list[float]], pointers: dict[int, int]) -> None:
    missing = [i for i in range(NB201.size()) if i not in rows and i not in pointers]
    if missing:
        raise DataFormatError(
            f"{path}: {len(missing)} of the {NB201.size()} architecture ids are missing (first: {missing[:5]}); "
            "the file is incomplete - download it again"
        )
    for index in rows:
        if NB201.representative(index) != index:
            raise DataFormatError(
                f"{path}: id {index} has its own results but NAS-Bench-201 isomorphism makes "
                f"{NB201.representative(index)} its representative; the file does not match this search space"
            )
    for index, target in pointers.items():
        if target != NB201.representative(index):
            raise DataFormatError(
                f"{path}: id {index} points to {target}, but its isomorphism representative is "
                f"{NB201.representative(index)}"
            )


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    order = [(d, m) for d in DATASETS for m in ROBUST_METRICS] + [("arch", "representative")]
    return frame[order]


# ------------------------------------------------------------------------------------------------ full


def _load_full(path: Path) -> pd.DataFrame:
    try:
        with open(path, encoding="utf-8") as handle:
            res = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path} is not valid JSON ({exc}); the file is truncated or corrupt") from None
    if not isinstance(res, dict):
        raise DataFormatError(f"{path}: expected an object res[dataset][id][metric][seed]")
    by_dataset = {}
    for key, content in res.items():
        name = _DATASET_KEYS.get(str(key).lower())
        if name is None:
            raise DataFormatError(f"{path}: unknown dataset key {key!r}; expected cifar10, cifar100, imagenet")
        if not isinstance(content, dict):
            raise DataFormatError(f"{path}: res[{key!r}] must map architecture ids to results")
        by_dataset[name] = content
    absent = [d for d in DATASETS if d not in by_dataset]
    if absent:
        raise DataFormatError(f"{path}: datasets {absent} are missing (has {sorted(res)})")
    reps = NB201.unique()
    rep_of = representatives()
    values: dict[tuple[str, str], np.ndarray] = {}
    absent_metrics = []
    for dataset in DATASETS:
        entries = {parse_id(path, k): v for k, v in by_dataset[dataset].items()}
        lost = [i for i in reps if i not in entries]
        if lost:
            raise DataFormatError(
                f"{path}: {dataset} lacks {len(lost)} of the 6,466 representative ids (first: {lost[:5]})"
            )
        for metric, keys in _FULL_METRICS.items():
            column = _full_column(path, dataset, metric, keys, entries, reps)
            if np.isnan(column[reps]).all():
                what = f"{dataset} {metric!r} (looked for {', '.join(keys)})"
                if metric != "autoattack":
                    raise DataFormatError(f"{path} has no results for {what}; is this the NAS-RobBench-201 file?")
                absent_metrics.append(what)
            values[(dataset, metric)] = column[rep_of]
    if absent_metrics:
        warnings.warn(f"{path} has no results for {'; '.join(absent_metrics)}; those columns are NaN",
                      stacklevel=3)
    return _ordered(build_frame(values))


def _full_column(path: Path, dataset: str, metric: str, keys: tuple[str, ...], entries: dict, reps: list[int]
                 ) -> np.ndarray:
    column = np.full(NB201.size(), np.nan)
    found = 0
    for index in reps:
        entry = entries[index]
        if not isinstance(entry, dict):
            raise DataFormatError(f"{path}: res[{dataset!r}][{index}] must map metric names to seeds")
        key = next((k for k in keys if k in entry), None)
        if key is None:
            continue
        column[index] = _seed_value(path, entry[key], f"res[{dataset!r}][{index}][{key!r}]")
        found += 1
    if 0 < found < len(reps):
        raise DataFormatError(
            f"{path}: {dataset} '{metric}' is present for {found} of the {len(reps)} representatives; "
            "the file is incomplete"
        )
    return column


def _seed_value(path: Path, seeds: object, where: str) -> float:
    if not isinstance(seeds, dict):
        return check_fraction(path, seeds, where)
    if "threeseed" in seeds:
        return check_fraction(path, seeds["threeseed"], f"{where}['threeseed']")
    runs = [check_fraction(path, seeds[s], f"{where}[{s!r}]") for s in _SEEDS if s in seeds]
    if not runs:
        raise DataFormatError(f"{path}: {where} has neither 'threeseed' nor seeds {_SEEDS} (has {sorted(seeds)})")
    return float(np.mean(runs))
