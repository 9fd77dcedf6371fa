"""Search spaces end to end: DARTS and a user space through score, correlate, rank and search (CLI and
Python), and NB201 values unchanged against stores committed under results/."""
from __future__ import annotations

import csv
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import zcproxy
from zcproxy import runner
from zcproxy.search import Budget, LiveSource, Objective
from zcproxy.search import run as run_search
from zcproxy.space import get_space
from zcproxy.store import load, pivot
from zcproxy.truth import load_truth
from zcproxy.validate import correlate

from cli_helper import run_cli as _cli

ROOT = Path(__file__).resolve().parents[1]
DARTS = get_space("darts")




@pytest.fixture(scope="module")
def darts_truth(tmp_path_factory):
    """Six sampled DARTS genotypes with a made-up accuracy, as a user's CSV with a header."""
    folder = tmp_path_factory.mktemp("darts")
    keys = DARTS.sample(6, 5)
    path = folder / "truth.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["genotype", "acc"])
        for i, key in enumerate(keys):
            writer.writerow([key, 50 + 5 * i])
    return path, keys


def test_darts_score_correlate_rank_and_search_on_the_command_line(tmp_path, capsys, darts_truth):
    truth_csv, keys = darts_truth
    store = tmp_path / "d.sqlite"
    code, out, err = _cli(capsys, "score", "--space", "darts", "--archs", "truth", "--truth", truth_csv,
                          "--truth-key", "genotype", "--proxies", "params,synflow", "--store", store, "--quiet",
                          "--stand-in", "--batch", "8")
    assert code == 0, err
    frame = load(store)
    assert set(frame["space"]) == {"darts"} and set(frame["arch"]) == set(keys)
    assert all(s["space"] == "darts" and s["C"] == 3 for s in frame["settings"])  # macro settings recorded
    code, out, err = _cli(capsys, "correlate", "--store", store, "--space", "darts", "--truth", truth_csv,
                          "--truth-key", "genotype", "--out", tmp_path / "out", "--bootstrap", "20", "--scatter", "1")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "out" / "correlation_truth_cifar10.csv")
    assert set(table["proxy"]) == {"params", "synflow"} and (table["n"] == 6).all()
    assert "n < 30" in err
    code, out, err = _cli(capsys, "rank", "--store", store, "--space", "darts", "--proxy", "params", "--top", "2")
    assert code == 0 and "archs of space darts" in out and keys[0][:20] in out or keys[1][:20] in out
    code, out, err = _cli(capsys, "search", "--space", "darts", "--strategy", "rea", "--proxy", "params",
                          "--store", store, "--live", "--budget", "4", "--population", "2", "--sample-size", "1",
                          "--truth", truth_csv, "--truth-key", "genotype", "--stand-in", "--batch", "8")
    assert code == 0, err
    assert "spent 4 proxy evaluations" in out
    assert len(load(store).query("proxy == 'params'")) >= 6  # live scores were written back


def test_darts_through_python(darts_truth):
    truth_csv, keys = darts_truth
    results = zcproxy.score(keys[0], ["params", "nwot"], space="darts", batch=(torch.rand(4, 3, 32, 32),
                                                                                torch.arange(4)))
    assert results["params"].value > 0 and results["nwot"].settings["space"] == "darts"
    objective = Objective(LiveSource("params", space="darts", batch_size=4, stand_in=True), Budget(5))
    result = run_search("rea", objective, seed=1, population=3, sample_size=2)
    assert result.evaluations == 5 and all(DARTS.key(a) == a for a in result.archs)
    truth = load_truth(truth_csv, "darts", key_column="genotype")
    scores = pd.DataFrame({"params": [zcproxy.score(k, ["params"], space="darts")["params"].value for k in keys]},
                          index=keys)
    row = correlate(scores, truth, bootstrap=0).iloc[0]
    assert row["n"] == 6


_USER_SPACE = '''
"""A tiny user space: a one-conv network whose key is its width (1..4); widths 3 and 4 are isomorphic."""
import numpy as np
import torch
from torch import nn
from zcproxy.errors import SpaceError
from zcproxy.space import uniform_sample


class Widths:
    name = "widths"

    def key(self, arch):
        text = str(arch).strip()
        if text not in ("1", "2", "3", "4"):
            raise SpaceError(f"{arch!r} is not a width 1..4")
        return text

    def build(self, key, num_classes=10, dataset=None):
        width = int(key)
        return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(width, num_classes))

    def settings(self):
        return {"space": "widths"}

    def size(self):
        return 4

    def archs(self):
        return iter(["1", "2", "3", "4"])

    def representative(self, key):
        return "3" if key == "4" else key

    def representatives(self):
        return ["1", "2", "3"]

    def sample(self, n, seed):
        return uniform_sample(self.representatives(), n, seed, self.name)

    def neighbours(self, key):
        return [k for k in self.representatives() if k != self.representative(key)]

    def is_degenerate(self, key):
        return False


SPACE = Widths()
'''


def test_a_user_space_plugs_in_by_module_path(tmp_path, capsys, monkeypatch):
    (tmp_path / "my_widths.py").write_text(textwrap.dedent(_USER_SPACE))
    monkeypatch.syspath_prepend(str(tmp_path))
    store = tmp_path / "w.sqlite"
    code, out, err = _cli(capsys, "score", "--space", "my_widths:SPACE", "--archs", "unique", "--proxies", "params",
                          "--store", store, "--quiet")
    assert code == 0, err
    wide = pivot(load(store), space="widths")
    assert wide.index.tolist() == [1, 2, 3]  # integer keys show as ints
    assert wide["params"].tolist() == pytest.approx([(3 * 9 * w + w + 10 * w + 10) / 1e6 for w in (1, 2, 3)])
    truth = tmp_path / "t.csv"
    truth.write_text("arch,acc\n1,10\n2,20\n3,30\n4,30\n")
    code, out, err = _cli(capsys, "search", "--space", "my_widths:SPACE", "--strategy", "random", "--oracle",
                          "--truth", truth, "--budget", "3")
    assert code == 0, err
    assert "over all 3 representatives of widths" in out
    code, out, err = _cli(capsys, "score", "--space", "my_widths:NOPE", "--archs", "1", "--store", store)
    assert code == 2 and "has no attribute 'NOPE'" in err
    del sys.modules["my_widths"]


@pytest.mark.data
def test_nb201_values_in_committed_stores_are_reproduced(data_dir):
    """A few stored CIFAR-100 study values, rescored now, are unchanged (same settings hash)."""
    stored = load(ROOT / "results" / "correlation" / "stores" / "study_cifar100.sqlite")
    rows = stored[stored["proxy"].isin(["params", "synflow", "meco", "nwot"])]
    archs = sorted(rows["arch"].unique())[:2]
    for arch in archs:
        mine = rows[rows["arch"] == arch]
        batch = None
        names = sorted(mine["proxy"].unique())
        settings = mine.iloc[0]["settings"]
        fresh = zcproxy.score(int(arch), names, dataset="cifar100", seed=settings["seed"], stand_in=True,
                              data_dir=data_dir, batch=batch)
        for _, row in mine.iterrows():
            result = fresh[row["proxy"]]
            from zcproxy.store import settings_hash

            assert settings_hash(result.settings) == row["settings_hash"], row["proxy"]
            assert result.value == pytest.approx(row["value"], rel=1e-5), (arch, row["proxy"])


def test_correlating_archs_outside_the_truth_is_a_named_error(tmp_path, capsys, darts_truth):
    truth_csv, keys = darts_truth
    store = tmp_path / "d.sqlite"
    outside = [k for k in DARTS.sample(3, 99) if k not in keys]
    assert _cli(capsys, "score", "--space", "darts", "--archs", ",".join(outside), "--proxies", "params",
                "--store", store, "--quiet")[0] == 0
    code, _, err = _cli(capsys, "correlate", "--store", store, "--space", "darts", "--truth", truth_csv,
                        "--truth-key", "genotype", "--out", tmp_path / "out")
    assert code == 2 and "none of the 3 scored architectures is in the ground truth" in err and "--archs truth" in err
    assert not (tmp_path / "out").exists()
