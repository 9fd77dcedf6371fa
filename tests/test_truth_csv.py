"""Ground truth from user CSV files and the built-in DARTS table: shape, key resolution, and named errors."""
from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcproxy.errors import TruthError, ZcproxyError
from zcproxy.space import NB201, get_space
from zcproxy.truth import REPRESENTATIVE, load_truth, load_truth_csv


def _write(tmp_path, text, name="truth.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_keys_resolve_in_the_space_and_isomorphs_share_a_representative(tmp_path):
    rep, twin = next((NB201.representative(i), i) for i in range(NB201.size()) if NB201.representative(i) != i)
    path = _write(tmp_path, f"arch,acc,robust\n{NB201.arch(twin)},91.5,40\n13714,93.0,\n{rep},90,41.5\n")
    truth = load_truth_csv(path, "nb201")
    assert truth.index.tolist() == [twin, 13714, rep]
    assert truth[("cifar10", "acc")].tolist() == [91.5, 93.0, 90.0]
    assert np.isnan(truth.loc[13714, ("cifar10", "robust")])  # empty cell = missing
    assert truth[REPRESENTATIVE].tolist() == [rep, 13714, rep]
    only = load_truth_csv(path, "nb201", metrics=["robust"], dataset="mine")
    assert list(only.columns) == [("mine", "robust"), REPRESENTATIVE]


@pytest.mark.parametrize("text, message", [
    ("index,acc\n1,2\n", "no key column 'arch'.*columns: \\['index', 'acc'\\]"),
    ("arch,acc\n1,90\n99999,80\n", "row 3, column 'arch': '99999' is not an architecture of search space 'nb201'"),
    ("arch,acc\n1,90\n2,high\n", "row 3, column 'acc': 'high' is not a number"),
    ("arch,acc\n1,90\n2,inf\n", "row 3, column 'acc': 'inf' is not a finite number"),
    ("arch,acc\n1,90\n1,91\n", "rows 2 and 3 name the same architecture"),
    ("arch\n1\n", "lacks metric column"),
    ("", "is empty"),
])
def test_bad_csv_gets_an_error_naming_file_row_and_column(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(TruthError, match=message) as info:
        load_truth_csv(path, "nb201")
    assert str(path) in str(info.value)


def test_builtin_truth_of_another_space_is_refused():
    with pytest.raises(TruthError, match="keyed in search space 'darts', not 'nb201'"):
        load_truth("darts1000", "nb201")
    with pytest.raises(TruthError, match="unknown ground truth 'nope'"):
        load_truth("nope", "nb201")


@pytest.mark.data
def test_darts1000_has_every_row_as_a_fraction(data_dir):
    truth = load_truth("darts1000", "darts", data_dir=data_dir)
    darts = get_space("darts")
    assert len(truth) == 1000 and truth.index.is_unique
    acc = truth[("cifar10", "clean")]
    assert 0.10 < acc.min() < 0.11 and 0.86 < acc.max() < 0.87
    first = truth.index[0]
    assert darts.key(first) == first and truth.loc[first, REPRESENTATIVE] == darts.representative(first)


_cells = st.text(alphabet=string.printable, max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_cells, _cells), max_size=5), header=st.sampled_from(["arch,acc", "acc,arch", "x,y"]))
def test_arbitrary_csv_text_gives_a_table_or_a_library_error(tmp_path, rows, header):
    body = "\n".join(",".join(f'"{c}"' if "," in c or '"' in c or "\n" in c else c for c in row) for row in rows)
    path = _write(tmp_path, header + "\n" + body + "\n", name="fuzz.csv")
    try:
        truth = load_truth_csv(path, "nb201")
    except ZcproxyError:
        return
    assert truth.index.is_unique and REPRESENTATIVE in truth
