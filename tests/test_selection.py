"""The one --archs grammar (zcproxy.space.selection) on NB201, DARTS and a tiny user space."""
from __future__ import annotations

import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcproxy.errors import SpaceError, ZcproxyError
from zcproxy.space import NB201, get_space
from zcproxy.space.selection import select_archs, split_items

DARTS = get_space("darts")


def test_nb201_forms_match_the_space():
    assert select_archs("13714", NB201) == ["13714"]
    assert select_archs(f"{NB201.arch(5)}, 5, 7", NB201) == ["5", "7"]  # deduplicated, order kept
    assert select_archs("sample:3", NB201, seed=0) == NB201.sample(3, 0)
    assert len(select_archs("unique", NB201)) == 6466 and len(select_archs("all", NB201)) == 15625


def test_darts_genotypes_with_commas_are_one_item_each():
    a, b = DARTS.sample(2, 0)
    assert split_items(f"{a}, {b}") == [a, b]
    assert select_archs(f"{a},{b},{a}", DARTS) == [a, b]
    with pytest.raises(SpaceError, match="cannot be enumerated"):
        select_archs("all", DARTS)


def test_files_hold_one_architecture_per_line_or_several_indices(tmp_path):
    a, b = DARTS.sample(2, 1)
    darts_file = tmp_path / "d.txt"
    darts_file.write_text(f"# two genotypes\n{a}\n\n{b}  # the second\n")
    assert select_archs(str(darts_file), DARTS) == [a, b]
    nb_file = tmp_path / "n.txt"
    nb_file.write_text("1 2,3\n13714\n")
    assert select_archs(str(nb_file), NB201) == ["1", "2", "3", "13714"]
    nb_file.write_text("1 2 99999\n")
    with pytest.raises(SpaceError, match="line 1: '99999'"):
        select_archs(str(nb_file), NB201)


def test_quantiles_and_truth_need_a_truth_series():
    reps = NB201.unique()
    truth = pd.Series(np.linspace(0, 1, len(reps)), index=reps)
    picked = select_archs("quantiles:4", NB201, truth=truth)
    values = truth.loc[[int(k) for k in picked]].to_numpy()
    assert len(picked) == 4 and np.all(np.diff(values) > 0)
    assert np.allclose(values, [0.125, 0.375, 0.625, 0.875], atol=1e-3)
    assert select_archs("truth", NB201, truth=truth.iloc[:3]) == [str(r) for r in reps[:3]]
    with pytest.raises(SpaceError, match="need a ground-truth metric"):
        select_archs("quantiles:4", NB201)


class _Tiny:
    """A user space of five integer-keyed architectures (two isomorphic)."""

    name = "tiny"

    def key(self, arch):
        text = str(arch).strip()
        if text not in {"1", "2", "3", "4", "5"}:
            raise SpaceError(f"{arch!r} is not a tiny architecture (1..5)")
        return text

    def build(self, key, num_classes=10, dataset=None):
        raise NotImplementedError

    def settings(self):
        return {"space": "tiny"}

    def size(self):
        return 5

    def archs(self):
        return iter(["1", "2", "3", "4", "5"])

    def representative(self, key):
        return "1" if key == "2" else key

    def representatives(self):
        return ["1", "3", "4", "5"]

    def sample(self, n, seed):
        from zcproxy.space import uniform_sample

        return uniform_sample(self.representatives(), n, seed, self.name)

    def neighbours(self, key):
        return [k for k in self.representatives() if k != key]

    def is_degenerate(self, key):
        return False


def test_a_user_space_uses_the_same_grammar():
    tiny = _Tiny()
    assert select_archs("unique", tiny) == ["1", "3", "4", "5"]
    assert select_archs("2,sample:2", tiny, seed=3)[0] == "2"
    with pytest.raises(SpaceError, match="'9' is not an architecture of search space 'tiny'"):
        select_archs("9", tiny)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable + "|~+", max_size=40))
def test_any_text_selects_keys_or_raises_a_library_error(spec):
    try:
        keys = select_archs(spec, NB201)
    except ZcproxyError:
        return
    assert keys and all(NB201.key(k) == k for k in keys)
