"""Ground truth for validating proxies: NAS-RobBench-201 (adversarial training), NAS-Bench-201 (clean),
the SWAP-NAS DARTS table (``darts1000``) and any CSV a user brings (:func:`load_truth_csv`).

Every loader returns a fresh DataFrame (nothing is cached) indexed by architecture label (NB201: the index
0..15624) with ``(dataset, metric)`` columns and the column ``("arch", "representative")`` (the label of
each architecture's isomorphism representative). :func:`load_truth` takes a built-in name or a CSV path:

>>> from zcproxy.truth import load_nasrobbench201          # doctest: +SKIP
>>> robust = load_nasrobbench201()                          # doctest: +SKIP
>>> robust[("cifar10", "pgd_8")].max()                      # doctest: +SKIP
0.4811...
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from ..errors import TruthError
from ..space import SearchSpace
from ._csv import DARTS1000_FILE, load_darts1000, load_truth_csv
from ._frame import DATASETS, REPRESENTATIVE, ROBUST_METRICS
from ._nb201 import NB201_FILE, load_nb201
from ._robbench import FULL_FILE, HTML_FILE, load_nasrobbench201

__all__ = ["load_truth", "load_truth_csv", "load_nasrobbench201", "load_nb201", "load_darts1000", "BUILTIN",
           "DATASETS", "ROBUST_METRICS", "REPRESENTATIVE", "HTML_FILE", "FULL_FILE", "NB201_FILE", "DARTS1000_FILE"]

BUILTIN: dict[str, tuple[str, Callable[..., pd.DataFrame]]] = {
    "nasrobbench201": ("nb201", load_nasrobbench201),
    "nb201": ("nb201", load_nb201),
    "darts1000": ("darts", load_darts1000),
}
"""Built-in ground truth: name -> (search space it is keyed in, loader taking ``data_dir``)."""


def load_truth(truth: str | os.PathLike, space: "str | SearchSpace" = "nb201", *, data_dir: str | os.PathLike | None = None,
               key_column: str = "arch", metrics: Sequence[str] | None = None,
               dataset: str = "cifar10") -> pd.DataFrame:
    """A built-in table by name (:data:`BUILTIN`) or a CSV file keyed in ``space`` (see :func:`load_truth_csv`).

    A built-in table of another space than ``space`` is refused, naming both.
    """
    name = str(truth)
    if name in BUILTIN:
        own, loader = BUILTIN[name]
        space_name = space if isinstance(space, str) else getattr(space, "name", space)
        if str(space_name).lower() != own:
            raise TruthError(f"ground truth {name!r} is keyed in search space {own!r}, not {space_name!r}; pass "
                             f"--space {own} or a truth of your space")
        return loader(data_dir)
    path = Path(name).expanduser()
    if not path.suffix and not path.exists():
        raise TruthError(f"unknown ground truth {name!r}; use one of {', '.join(BUILTIN)} or a CSV file path")
    return load_truth_csv(path, space, key_column=key_column, metrics=metrics, dataset=dataset)
