"""Shared pytest fixtures: the real-data folder (skipped when absent) and a fixed seed per test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Files whose presence marks a usable ZCPROXY_DATA folder (see the layout in ../shared/data/README.md).
_REQUIRED = (
    "nasrobbench201/meta.json",
    "nasrobbench201/NAS-RobBench-201_html.json",
    "nasrobbench201/NasBenchID_6466_idx.txt",
    "nasbench201/nb201_200ep_test_accuracy.csv",
    "cifar-10-batches-py/test_batch",
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder from $ZCPROXY_DATA; skips the test when it is unset or incomplete."""
    value = os.environ.get("ZCPROXY_DATA")
    if not value:
        pytest.skip("needs the real data: set ZCPROXY_DATA (CI sets it to ../shared/data)")
    root = Path(value).expanduser()
    missing = [rel for rel in _REQUIRED if not (root / rel).exists()]
    if missing:
        pytest.skip(f"ZCPROXY_DATA={root} lacks {', '.join(missing)}; run `zcproxy fetch --dest {root}`")
    return root


@pytest.fixture(autouse=True)
def _fixed_seed() -> None:
    """Every test starts from the same global torch RNG state."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> None:
    """One torch thread: the tests run many tiny ops, where thread hand-offs cost more than they save
    (and a shared CI machine is often busy)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def benchmark_script():
    """Loader of a benchmarks/<name>.py or studies/<name>.py script as a module (scripts are not part of the
    package)."""
    import importlib.util
    import sys

    loaded: list[str] = []
    root = Path(__file__).resolve().parents[1]
    folders = [root / "benchmarks", root / "studies"]
    for folder in folders:  # as when run as a script: benchmarks import their shared benchmarks/_report.py
        sys.path.insert(0, str(folder))

    def load(name: str):
        path = next(f / f"{name}.py" for f in folders if (f / f"{name}.py").exists())
        spec = importlib.util.spec_from_file_location(f"{name}_under_test", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        loaded.append(spec.name)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)
    sys.modules.pop("_report", None)
    for folder in folders:
        sys.path.remove(str(folder))
