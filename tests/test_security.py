"""Inputs that must never run code: checkpoints found in a run directory, pickles anywhere in the project."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from zcproxy.errors import ZcproxyError
from zcproxy.validate import train as T

TINY = T.TrainConfig(method="fgsm-rs", epochs=1, train_size=16, batch_size=16, C=4, N=1, seed=3)
ROOT = Path(__file__).resolve().parents[1]


class _Planted:
    """Unpickling this object creates ``path`` (stands for arbitrary code run by a planted checkpoint)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture()
def cifar_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1", 16), ("test_batch", 8)):
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                         b"labels": rng.integers(0, 10, n).tolist()}, handle)
    return tmp_path / "data"


def test_planted_checkpoint_is_refused_without_running_its_code(cifar_dir, tmp_path):
    runs = tmp_path / "runs"
    checkpoint = runs / TINY.key(0) / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    torch.save({"config": {}, "payload": _Planted(marker)}, checkpoint)
    with pytest.raises(ZcproxyError, match=r"checkpoint .*checkpoint\.pt.* refused.*delete its folder"):
        T.train(0, TINY, runs, data_dir=cifar_dir)
    assert not marker.exists()
    with pytest.raises(ZcproxyError, match="refused"):
        T.verify_arch(0, TINY, T.EvalConfig(eval_size=8, pgd_steps=1, batch_size=8), run_dir=runs,
                      data_dir=cifar_dir)
    assert not marker.exists()


def test_real_checkpoint_holds_only_tensors_and_plain_types_and_resumes(cifar_dir, tmp_path):
    first = T.train(0, TINY, tmp_path, data_dir=cifar_dir)
    state = torch.load(tmp_path / TINY.key(0) / "checkpoint.pt", weights_only=True)
    assert state["config"]["seed"] == 3 and len(state["history"]) == 1
    again = T.train(0, TINY, tmp_path, data_dir=cifar_dir)
    assert again.resumed_from == 1
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))


_UNSAFE = re.compile(r"torch\.load\((?![^)]*weights_only=True)|(?<!_)pickle\.loads?\(|numpy\.load\(.*allow_pickle=True"
                     r"|np\.load\(.*allow_pickle=True|joblib\.load\(")


def test_no_unsafe_deserialisation_in_the_library_benchmarks_or_studies():
    found = []
    for path in sorted(p for folder in ("zcproxy", "benchmarks", "studies") for p in (ROOT / folder).rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _UNSAFE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "unsafe deserialisation (use weights_only=True or a restricted unpickler):\n" + "\n".join(found)
