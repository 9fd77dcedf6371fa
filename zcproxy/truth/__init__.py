"""Ground truth for validating proxies: NAS-RobBench-201 (adversarial training) and NAS-Bench-201 (clean).

Both loaders return a fresh DataFrame (nothing is cached) indexed by NAS-Bench-201 ``index`` 0..15624 with
``(dataset, metric)`` columns and an int column ``("arch", "representative")``:

>>> from zcproxy.truth import load_nasrobbench201          # doctest: +SKIP
>>> robust = load_nasrobbench201()                          # doctest: +SKIP
>>> robust[("cifar10", "pgd_8")].max()                      # doctest: +SKIP
0.4811...
"""
from __future__ import annotations

from ._frame import DATASETS, REPRESENTATIVE, ROBUST_METRICS
from ._nb201 import NB201_FILE, load_nb201
from ._robbench import FULL_FILE, HTML_FILE, load_nasrobbench201

__all__ = ["load_nasrobbench201", "load_nb201", "DATASETS", "ROBUST_METRICS", "REPRESENTATIVE",
           "HTML_FILE", "FULL_FILE", "NB201_FILE"]
