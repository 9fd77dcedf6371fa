"""Tests of zcproxy.space: index order, isomorphism classes, zero-output cells and the model builder."""
from __future__ import annotations

import csv
import itertools
import json

import pytest
import torch
from torch import nn

from zcproxy._datasets import dataset_info
from zcproxy.cli import main
from zcproxy.space import NB201, OPS
from zcproxy.space._cost import count_flops, count_params

# ------------------------------------------------------------------------------------- real-data oracles


@pytest.mark.data
def test_every_index_matches_the_benchmark_meta_file(data_dir):
    meta = json.loads((data_dir / "nasrobbench201" / "meta.json").read_text())["ids"]
    assert len(meta) == NB201.size()
    for i in range(NB201.size()):
        entry = meta[str(i)]
        assert NB201.arch(i) == entry["nb201-string"], i
        assert NB201.index(entry["nb201-string"]) == i
        assert NB201.representative(i) == int(entry["isomorph"]), i


@pytest.mark.data
def test_unique_equals_the_6466_benchmark_ids(data_dir):
    ids = {int(t) for t in (data_dir / "nasrobbench201" / "NasBenchID_6466_idx.txt").read_text().split()}
    unique = NB201.unique()
    assert len(unique) == 6466 == len(ids)
    assert set(unique) == ids
    assert unique == sorted(unique)


@pytest.mark.data
def test_canonical_form_equals_nas_bench_201_unique_string(data_dir):
    with open(data_dir / "nasbench201" / "nb201_200ep_test_accuracy.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == NB201.size()
    for i, row in enumerate(rows):
        assert NB201.arch(i) == row["ArchitectureString"], i
        assert NB201.canonical(i) == row["UniqueString"], i


# ------------------------------------------------------------------------------------- strings and indices


def test_round_trip_over_the_whole_space():
    strings = [NB201.arch(i) for i in range(NB201.size())]
    assert len(set(strings)) == NB201.size() == 5 ** 6
    assert all(NB201.index(s) == i for i, s in enumerate(strings))
    assert all(NB201.genotype(i) == NB201.genotype(s) for i, s in enumerate(strings[:200]))


def test_every_genotype_appears_once():
    seen = {NB201.genotype(i) for i in range(NB201.size())}
    assert seen == set(itertools.product(OPS, repeat=6))


def test_representative_is_idempotent_and_minimal_in_its_class():
    classes: dict[str, list[int]] = {}
    for i in range(NB201.size()):
        classes.setdefault(NB201.canonical(i), []).append(i)
    assert len(classes) == 6466
    for members in classes.values():
        rep = min(members)
        for i in members:
            assert NB201.representative(i) == rep
            assert NB201.representative(rep) == rep


@pytest.mark.parametrize("first, second", [
    # node 1 is a skip of the input, so node 2's two inputs are the same tensor: its ops commute
    ("|skip_connect~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|none~0|none~1|skip_connect~2|",
     "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"),
    # same for the output node's edges from the input and from node 1
    ("|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|",
     "|skip_connect~0|+|none~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|"),
])
def test_hand_made_isomorphic_pairs_share_a_representative(first, second):
    assert NB201.index(first) != NB201.index(second)
    assert NB201.representative(first) == NB201.representative(second)
    assert NB201.canonical(first) == NB201.canonical(second)


@pytest.mark.parametrize("first, second", [
    # conv then pool is not pool then conv
    ("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|",
     "|avg_pool_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"),
    # a 3x3 conv is not a 1x1 conv
    ("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|skip_connect~1|none~2|",
     "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|skip_connect~1|none~2|"),
])
def test_hand_made_different_cells_have_different_representatives(first, second):
    assert NB201.representative(first) != NB201.representative(second)


def _zero_output_by_paths(ops: tuple[str, ...]) -> bool:
    """Brute force: the output is zero iff no input-to-output path avoids 'none' (edges in arch-string order)."""
    edge = {(1, 0): ops[0], (2, 0): ops[1], (2, 1): ops[2], (3, 0): ops[3], (3, 1): ops[4], (3, 2): ops[5]}
    paths = [[(3, 0)], [(1, 0), (3, 1)], [(2, 0), (3, 2)], [(1, 0), (2, 1), (3, 2)]]
    return not any(all(edge[e] != "none" for e in path) for path in paths)


def test_zero_output_agrees_with_path_enumeration_everywhere():
    flags = [NB201.is_zero_output(i) for i in range(NB201.size())]
    assert flags == [_zero_output_by_paths(NB201.genotype(i)) for i in range(NB201.size())]
    assert sum(flags) == 341


@pytest.mark.parametrize("arch, expected", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|none~2|", True),
    ("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|", True),
    ("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", False),
])
def test_zero_output_by_hand(arch, expected):
    assert NB201.is_zero_output(arch) is expected


@pytest.mark.parametrize("bad, words", [
    ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_5x5'"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 has 1 incoming edges"),
    ("|none~0|+|none~0|none~1|", "2 node groups"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must be 'op~0'"),
])
def test_bad_arch_strings_raise_clear_errors(bad, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        NB201.index(bad)


@pytest.mark.parametrize("bad", [15625, -1, 10 ** 9])
def test_index_out_of_range(bad):
    with pytest.raises(ValueError, match="out of range"):
        NB201.arch(bad)


@pytest.mark.parametrize("bad", [1.5, "3", None, True])
def test_non_int_index(bad):
    with pytest.raises(ValueError, match="must be an int"):
        NB201.arch(bad)


# ------------------------------------------------------------------------------------------------- build


def _expected_params(arch: str, num_classes: int = 10, C: int = 16, N: int = 5) -> int:
    """Parameter count from the NAS-Bench-201 macro skeleton, written out by hand."""
    ops = NB201.genotype(arch)

    def cell(c: int) -> int:
        per_op = {"nor_conv_3x3": 9 * c * c + 2 * c, "nor_conv_1x1": c * c + 2 * c}
        return sum(per_op.get(op, 0) for op in ops)

    def reduction(c_in: int, c_out: int) -> int:
        return (9 * c_in * c_out + 2 * c_out) + (9 * c_out * c_out + 2 * c_out) + c_in * c_out

    stem = 3 * C * 9 + 2 * C
    cells = N * (cell(C) + cell(2 * C) + cell(4 * C))
    head = 2 * 4 * C + 4 * C * num_classes + num_classes
    return stem + cells + reduction(C, 2 * C) + reduction(2 * C, 4 * C) + head


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_param_count_of_13714():
    assert _params(NB201.build(13714)) == 1_073_466 == _expected_params(NB201.arch(13714))


@pytest.mark.parametrize("arch", [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|avg_pool_3x3~0|none~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
])
def test_param_counts_match_the_hand_formula(arch):
    assert _params(NB201.build(arch)) == _expected_params(arch)


def test_param_free_cells_leave_only_skeleton_params():
    free = _params(NB201.build("|skip_connect~0|+|avg_pool_3x3~0|none~1|+|avg_pool_3x3~0|none~1|skip_connect~2|"))
    # stem 464 + reduction blocks 14,464 and 57,600 + last BN 128 + classifier 650
    assert free == 464 + 14_464 + 57_600 + 128 + 650


@pytest.mark.parametrize("num_classes, size, dataset", [(10, 32, "cifar10"), (100, 32, "cifar100"),
                                                       (120, 16, "ImageNet16-120")])
def test_output_shape_and_dataset(num_classes, size, dataset):
    model = NB201.build(13714, num_classes=num_classes)
    assert model.dataset == dataset
    assert model.index == 13714
    assert model(torch.rand(2, 3, size, size)).shape == (2, num_classes)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, num_classes)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "ImageNet16-120"])
def test_first_module_normalises_with_the_dataset_constants(dataset):
    info = dataset_info(dataset)
    model = NB201.build(13714, num_classes=info.num_classes, dataset=dataset).eval()
    first = next(iter(model.children()))
    x = torch.rand(2, 3, 8, 8)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    torch.testing.assert_close(first(x), (x - mean) / std)
    # the whole network equals the same network fed pre-normalised pixels with the first layer skipped
    with torch.no_grad():
        direct = model(x)
        rest = model.classifier(model.global_pooling(model.lastact(model.cells(model.stem((x - mean) / std))))
                                .flatten(1))
    torch.testing.assert_close(direct, rest)


def test_no_in_place_operations():
    model = NB201.build("|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|skip_connect~2|")
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and all(not m.inplace for m in relus)
    assert all(not getattr(m, "inplace", False) for m in model.modules())


@pytest.mark.parametrize("train", [True, False])
def test_zero_output_arch_ignores_its_input(train):
    model = NB201.build("|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|none~2|").train(train)
    with torch.no_grad():
        a = model(torch.rand(4, 3, 32, 32))
        b = model(torch.rand(4, 3, 32, 32))
    torch.testing.assert_close(a, b)
    assert torch.allclose(a, a[:1].expand_as(a))


def test_non_zero_output_arch_depends_on_its_input():
    model = NB201.build(13714).eval()
    with torch.no_grad():
        assert not torch.allclose(model(torch.rand(2, 3, 32, 32)), model(torch.rand(2, 3, 32, 32)))


# ------------------------------------------------------------------------------------------ cost counting


def _expected_flops(arch: str, num_classes: int = 10, C: int = 16, N: int = 5, size: int = 32) -> int:
    """Multiply-adds of every conv and the classifier, written out by hand."""
    ops = NB201.genotype(arch)

    def cell(c: int, hw: int) -> int:
        per_op = {"nor_conv_3x3": hw * hw * c * c * 9, "nor_conv_1x1": hw * hw * c * c}
        return sum(per_op.get(op, 0) for op in ops)

    def reduction(c_in: int, c_out: int, hw_out: int) -> int:
        return hw_out * hw_out * (c_out * c_in * 9 + c_out * c_out * 9 + c_out * c_in)

    stem = size * size * C * 3 * 9
    cells = N * (cell(C, size) + cell(2 * C, size // 2) + cell(4 * C, size // 4))
    head = 4 * C * num_classes + num_classes
    return stem + cells + reduction(C, 2 * C, size // 2) + reduction(2 * C, 4 * C, size // 4) + head


def test_flops_of_13714_match_nas_bench_201():
    flops = count_flops(NB201.build(13714), (1, 3, 32, 32))
    assert abs(flops / 1e6 - 153.27) < 0.01
    assert flops == _expected_flops(NB201.arch(13714))


@pytest.mark.parametrize("arch, num_classes, size", [
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", 10, 32),
    ("|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|", 100, 32),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|", 120, 16),
])
def test_flops_match_the_hand_formula(arch, num_classes, size):
    model = NB201.build(arch, num_classes=num_classes)
    assert count_flops(model, (1, 3, size, size)) == _expected_flops(arch, num_classes, size=size)
    assert count_flops(model, (3, 3, size, size)) == _expected_flops(arch, num_classes, size=size)


@pytest.mark.parametrize("train", [True, False])
def test_flop_counting_restores_modes_and_removes_hooks(train):
    model = NB201.build(13714).train(train)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model)
    assert all(m.training is train for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # BN running stats untouched


def test_count_params_and_bad_input_size():
    model = NB201.build(13714)
    assert count_params(model) == 1_073_466
    with pytest.raises(ValueError, match="input_size must be"):
        count_flops(model, (3, 32, 32))


# ------------------------------------------------------------------------------------------ zcproxy arch


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    monkeypatch.delenv("ZCPROXY_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_cli_arch_without_data(no_data, capsys):
    assert main(["arch", "13714"]) == 0
    out = capsys.readouterr().out
    assert NB201.arch(13714) in out and "1,073,466" in out and "153.27 M" in out
    assert "NAS-RobBench-201, adversarially trained: not available" in out


def test_cli_arch_by_string_shows_its_class(no_data, capsys):
    arch = NB201.arch(25)
    members = [i for i in range(NB201.size()) if NB201.canonical(i) == NB201.canonical(25)]
    assert main(["arch", arch]) == 0
    out = capsys.readouterr().out
    assert f"representative          {min(members)}" in out
    assert len(members) > 12  # the listing shows the first 12 members
    assert f"{len(members)} architecture(s): {', '.join(map(str, members[:12]))}, ..." in out


@pytest.mark.parametrize("bad, words", [("15625", "out of range"), ("foo", "is not a NAS-Bench-201 architecture"),
                                        ("|none~0|+|none~0|", "node groups")])
def test_cli_arch_bad_input(no_data, capsys, bad, words):
    assert main(["arch", bad]) == 2
    assert words in capsys.readouterr().err


def test_cli_arch_of_a_darts_genotype(no_data, capsys):
    from zcproxy.space.darts import DARTS

    key = DARTS.sample(1, seed=3)[0]
    assert main(["arch", "--space", "darts", key]) == 0
    out = capsys.readouterr().out
    assert f"key                     {key}" in out and "graph features" in out
    assert "darts1000, SWAP-NAS's DARTS architectures, standard training: not available" in out
    assert "NAS-RobBench-201" not in out  # only the tables keyed in the space
    assert main(["arch", "--space", "darts", "--truth", "nb201", key]) == 2
    assert "keyed in search space 'nb201', not 'darts'" in capsys.readouterr().err
    assert main(["arch", "--space", "darts", "Genotype(normal=[])"]) == 2
    assert "DARTS genotype" in capsys.readouterr().err


@pytest.mark.data
def test_cli_arch_with_truth(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("ZCPROXY_DATA", str(data_dir))
    from zcproxy.truth import load_nasrobbench201, load_nb201

    robust, clean = load_nasrobbench201(data_dir), load_nb201(data_dir)
    assert main(["arch", "13714"]) == 0
    out = capsys.readouterr().out
    assert f"{robust.loc[13714, ('cifar10', 'pgd_8')] * 100:.2f}" in out
    assert f"{robust.loc[13714, ('ImageNet16-120', 'autoattack')] * 100:.2f}" in out
    assert f"{clean.loc[13714, ('cifar100', 'clean')] * 100:.2f}" in out
