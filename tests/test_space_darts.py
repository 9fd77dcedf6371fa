"""The DARTS search space: genotype parsing, isomorphism, sampling, neighbours, degeneracy, the network."""
from __future__ import annotations

import csv
from collections import namedtuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from zcproxy._datasets import dataset_info
from zcproxy.errors import SpaceError
from zcproxy.space._protocol import SearchSpace, check_space
from zcproxy.space.darts import (
    DARTS, GENOTYPES_PER_CELL, INPUT_LIMITS, OPS, REPRESENTATIVES_PER_CELL, DartsSpace, to_string,
)

UNTIED = DartsSpace(tied=False)
# Row 1 of DARTS_archs_CIFAR10.csv (85.24 %): no node has two identical pairs.
CELL = (("sep_conv_5x5", 0), ("sep_conv_3x3", 0), ("avg_pool_3x3", 2), ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 3), ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_5x5", 2))
KEY = to_string(CELL, CELL)
HAND = (("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 0), ("none", 2),
        ("max_pool_3x3", 2), ("skip_connect", 3), ("sep_conv_5x5", 4), ("avg_pool_3x3", 1))
Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")


def cell_text(pairs, quote="'", sep=", "):
    return "[" + sep.join(f"({quote}{op}{quote}{sep}{i})" for op, i in pairs) + "]"


def test_constants_and_protocol():
    assert GENOTYPES_PER_CELL == (16 * 24 * 32 * 40) ** 2 == 241_591_910_400
    assert REPRESENTATIVES_PER_CELL == 136 * 300 * 528 * 820 == 17_664_768_000
    assert isinstance(DARTS, SearchSpace) and check_space(DARTS) is DARTS
    assert DARTS.name == "darts"
    assert DARTS.settings() == {"space": "darts", "C": 3, "layers": 1, "stem": False, "tied": True}
    assert DartsSpace(C=36, layers=20, stem=True, tied=False).settings()["C"] == 36
    assert DARTS.size() is None and DARTS.representatives() is None
    with pytest.raises(SpaceError, match="cannot be enumerated"):
        DARTS.archs()


@pytest.mark.parametrize("options", [{"C": 0}, {"layers": True}, {"C": 2.0}, {"stem": 1}, {"tied": "no"}])
def test_bad_options(options):
    with pytest.raises(SpaceError, match="DartsSpace option"):
        DartsSpace(**options)


def test_key_normalises_text_and_structures():
    assert KEY.startswith("Genotype(normal=[('sep_conv_5x5', 0), ('sep_conv_3x3', 0),")
    messy = (f' \n Genotype( normal = {cell_text(CELL, chr(34), " ,  ")} ,normal_concat=[ 2,3 ,4,5 ],'
             f'reduce={cell_text(CELL, sep=",")}, reduce_concat=range(2, 6),)\t')
    assert DARTS.key(messy) == KEY
    assert DARTS.key(KEY) == KEY
    assert DARTS.key(f"Genotype(reduce={cell_text(CELL)}, normal={cell_text(CELL)})") == KEY
    as_lists = [list(p) for p in CELL]
    assert DARTS.key({"normal": as_lists, "reduce": list(CELL)}) == KEY
    assert DARTS.key(Genotype(CELL, range(2, 6), CELL, [2, 3, 4, 5])) == KEY
    assert DARTS.key((CELL, [2, 3, 4, 5], CELL, (2, 3, 4, 5))) == KEY
    assert DARTS.key((CELL, CELL)) == KEY
    assert DARTS.key({"normal": [(op, np.int64(i)) for op, i in CELL], "reduce": CELL}) == KEY


BAD = [
    (KEY.replace("'sep_conv_3x3', 3", "'conv_7x7', 3"),
     r"normal pair 4 \(node 4\) has op 'conv_7x7'; the ops are none, skip_connect"),
    (KEY.replace("('avg_pool_3x3', 2)", "('avg_pool_3x3', 3)"), r"normal pair 2 \(node 3\) has input 3; .* 0\.\.2"),
    (KEY.replace("('sep_conv_5x5', 0)", "('sep_conv_5x5', -1)", 1), "normal pair 0 .* input -1"),
    (KEY.replace("[('sep_conv_5x5', 0), ", "[", 1), "the normal cell has 7 items"),
    (KEY.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4]"), "normal_concat .* only \\[2, 3, 4, 5\\]"),
    (KEY.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=range(2, 7)"), "reduce_concat"),
    (KEY.replace("reduce=", "reduced="), "unknown Genotype field 'reduced'"),
    (f"Genotype(normal={cell_text(CELL)})", "the reduce cell is missing"),
    (f"Genotype(normal={cell_text(CELL)}, normal={cell_text(CELL)})", "given twice"),
    (KEY.replace("'none'", "none").replace("'sep_conv_5x5', 0", "sep_conv_5x5, 0", 1), "bare name 'sep_conv_5x5'"),
    (KEY + ", 85", "unexpected text after the genotype"),
    (KEY + ",85.0", "unexpected character '\\.'"),
    (KEY[:-1], "at the end of the text"),
    ("__import__('os')", "not a Genotype"),
    ("__import__('os').system('true')", "unexpected character"),
    ("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", "unexpected character '\\|'"),
    ("Genotype(normal=[('none', 99999999999999)])", "too long"),
    ("[" * 50, "too deeply nested"),
    ("", "expected a value but found 'nothing'"),
    (to_string(CELL, HAND), "reduce cell differs from the normal cell.*DartsSpace\\(tied=False\\)"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_malformed_text_names_input_problem_and_choices(text, message):
    with pytest.raises(SpaceError, match=message) as info:
        DARTS.key(text)
    assert str(info.value).startswith("DARTS genotype ")


@pytest.mark.parametrize("arch, message", [
    (7, "a int is not a DARTS architecture"),
    ({"normal": CELL, "reduce": CELL, "extra": 1}, "unknown keys \\['extra'\\]"),
    ({"normal": CELL, "reduce": [(op, True) for op, _ in CELL]}, "reduce pair 0 .* input True"),
    ({"normal": CELL, "reduce": [("none", 0)] * 7 + ["none"]}, "reduce pair 7 .* each pair is \\(op, input\\)"),
    ({"normal": CELL, "reduce": CELL, "normal_concat": [2, 3, 5, 4]}, "normal_concat"),
])
def test_malformed_structures(arch, message):
    with pytest.raises(SpaceError, match=message):
        UNTIED.key(arch)


def test_untied_space_keeps_cells_apart():
    key = to_string(CELL, HAND)
    assert UNTIED.key(key) == key
    assert UNTIED.representative(key) != UNTIED.representative(to_string(HAND, CELL))


@pytest.mark.data
def test_all_real_rows_parse_and_the_degenerate_ones_are_at_chance(data_dir):
    path = data_dir / "darts" / "DARTS_archs_CIFAR10.csv"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 1000
    keys = [DARTS.key(text) for text, _ in rows]
    assert keys == [text for text, _ in rows]  # the CSV already holds canonical keys
    degenerate = [float(acc) for key, (_, acc) in zip(keys, rows) if DARTS.is_degenerate(key)]
    others = [float(acc) for key, (_, acc) in zip(keys, rows) if not DARTS.is_degenerate(key)]
    assert len(degenerate) == 2 and max(degenerate) < 11 < 60 < min(others)
    assert len({DARTS.representative(k) for k in keys}) == 1000


def swap_node(pairs, node):
    pairs = list(pairs)
    pairs[2 * node], pairs[2 * node + 1] = pairs[2 * node + 1], pairs[2 * node]
    return tuple(pairs)


def test_representative_sorts_the_pairs_of_each_node():
    rep = DARTS.representative(KEY)
    for node in range(4):
        swapped = swap_node(CELL, node)
        assert DARTS.representative(to_string(swapped, swapped)) == rep
    assert DARTS.representative(rep) == rep and DARTS.key(rep) == rep
    assert rep.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 0), ('avg_pool_3x3', 2), "
                          "('sep_conv_3x3', 0), ('avg_pool_3x3', 1), ('sep_conv_3x3', 3), ")
    other = (("sep_conv_3x3", 0),) + CELL[1:]
    assert DARTS.representative(to_string(other, other)) != rep
    moved = HAND[:3] + (("none", 0),) + HAND[4:]  # a none pair's input is irrelevant but not removed
    assert DARTS.representative(to_string(moved, moved)) != DARTS.representative(to_string(HAND, HAND))
    untied = to_string(swap_node(CELL, 1), swap_node(CELL, 3))
    assert UNTIED.representative(untied) == UNTIED.representative(to_string(CELL, CELL))


def test_sample_is_seeded_distinct_and_representative():
    for space in (DARTS, UNTIED):
        first = space.sample(50, seed=3)
        assert first == space.sample(50, seed=3) and first != space.sample(50, seed=4)
        assert len(set(first)) == 50
        assert all(space.representative(k) == k for k in first)
    tied_cells = [UNTIED.key(k).split("normal=")[1].split(", normal_concat")[0] for k in DARTS.sample(20, 0)]
    assert all(f"reduce={cell}, reduce_concat" in k for cell, k in zip(tied_cells, DARTS.sample(20, 0)))
    assert all(k.split("reduce=")[0].split("normal=")[1][:-17] != k.split("reduce=")[1][:-17]
               for k in UNTIED.sample(20, 0))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(SpaceError, match="sample size"):
            DARTS.sample(bad, 0)


def test_sample_draws_ops_and_inputs_uniformly():
    counts = np.zeros((8, len(OPS)))
    inputs = np.zeros((8, 5))
    for key in UNTIED.sample(400, seed=0):
        normal_text = key.split("normal=")[1].split("], normal_concat")[0]
        pairs = [p.strip("()[] ").split(", ") for p in normal_text.split("), (")]
        for node in range(4):  # the representative sorts within a node, so count per node
            for op, index in pairs[2 * node: 2 * node + 2]:
                counts[node, OPS.index(op.strip("'"))] += 1
                inputs[node, int(index)] += 1
    per_op = counts[:4].sum(axis=0) / counts[:4].sum()
    assert np.all(np.abs(per_op - 1 / 8) < 0.03)
    for node in range(4):
        seen = inputs[node, : INPUT_LIMITS[2 * node]] / inputs[node].sum()
        assert np.all(np.abs(seen - 1 / INPUT_LIMITS[2 * node]) < 0.09) and inputs[node].sum() == 800


def test_neighbour_counts_by_hand():
    # Per cell: 8 pairs x 7 other ops = 56, plus other inputs 2 x (1 + 2 + 3 + 4) = 20: 76 mutations,
    # all distinct representatives when no node holds two identical pairs.
    assert len(DARTS.neighbours(KEY)) == 76
    assert len(UNTIED.neighbours(KEY)) == 152
    # Node 0 with two identical pairs: mutating either gives the same multiset, so its 7 + 1 mutations
    # count once: 76 - 8 = 68.
    twin = (("sep_conv_3x3", 0), ("sep_conv_3x3", 0)) + CELL[2:]
    assert len(DARTS.neighbours(to_string(twin, twin))) == 68
    assert len(UNTIED.neighbours(to_string(twin, CELL))) == 68 + 76
    hood = UNTIED.neighbours(KEY)
    assert len(set(hood)) == len(hood) and UNTIED.representative(KEY) not in hood
    assert all(UNTIED.representative(k) == k for k in hood)
    swapped = swap_node(CELL, 2)
    assert DARTS.neighbours(to_string(swapped, swapped)) == DARTS.neighbours(KEY)


def test_build_shapes_dtype_arch_and_normalisation():
    x = torch.rand(4, 3, 32, 32)
    model = DARTS.build(KEY)
    assert model.arch == KEY and model(x).shape == (4, 10) and model(x).dtype == torch.float32
    big = DartsSpace(C=2, layers=4, stem=True, tied=False).build(to_string(CELL, HAND), num_classes=100)
    assert big(x).shape == (4, 100)
    assert torch.allclose(big.normalize.mean.flatten(), torch.tensor(dataset_info("cifar100").mean))
    assert DARTS.build(KEY, num_classes=7, dataset="cifar100").normalize.std.flatten().tolist() == \
        pytest.approx(dataset_info("cifar100").std)
    assert DARTS.build(dict(normal=CELL, reduce=CELL)).arch == KEY
    assert DARTS.build(KEY)(torch.rand(2, 3, 15, 15)).shape == (2, 10)  # odd sizes work
    with pytest.raises(SpaceError, match="num_classes"):
        DARTS.build(KEY, num_classes=0)
    with pytest.raises(SpaceError, match="unknown dataset"):
        DARTS.build(KEY, dataset="mnist")



def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_by_hand():
    # C=2, layers=1: one reduction cell with c = 4 channels per node, inputs: the 3-channel image.
    #   preprocess0, preprocess1: 1x1 conv 3->4 (12) + BN (8)           2 x 20 = 40
    #   sep_conv_3x3, stride 2: 2 x (dw 4*9 + pw 4*4 + BN 8)                  120
    #   skip_connect, stride 2 = FactorizedReduce(4, 4): 4*2 + 4*2 + BN 8      24
    #   dil_conv_5x5, stride 2: dw 4*25 + pw 16 + BN 8                        124
    #   none, max_pool, skip (stride 1), avg_pool: 0
    #   sep_conv_5x5, stride 1: 2 x (100 + 16 + 8)                            248
    #   classifier: 16 x 10 + 10                                              170   -> 726
    key = to_string(HAND, HAND)
    assert n_params(DartsSpace(C=2).build(key)) == 726
    # With the stem: conv 3->6 (162) + BN (12); preprocessing now reads 6 channels: 2 x (24 + 8) = 64.
    assert n_params(DartsSpace(C=2, stem=True).build(key)) == 726 - 40 + 174 + 64


def test_darts_v2_evaluation_network_has_the_published_size():
    # DARTS (second order) cell of Liu et al., ICLR 2019, genotypes.py; their train log: param size 3.349342 MB.
    normal = (("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
              ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2))
    reduce = (("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
              ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1))
    model = DartsSpace(C=36, layers=20, stem=True, tied=False).build(to_string(normal, reduce))
    assert n_params(model) == 3_349_342


def test_same_seed_same_network():
    torch.manual_seed(11)
    a = DARTS.build(KEY).state_dict()
    torch.manual_seed(11)
    b = DARTS.build(KEY).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], v) for k, v in DARTS.build(KEY).state_dict().items())


def output_ignores_input(space, key):
    model = space.build(key).eval()
    with torch.no_grad():
        return torch.equal(model(torch.rand(2, 3, 16, 16)), model(torch.rand(2, 3, 16, 16)))


def none_heavy_cells(rng, count):
    for _ in range(count):
        yield tuple(("none" if rng.random() < 0.6 else OPS[rng.integers(1, 8)], int(rng.integers(0, n)))
                    for n in INPUT_LIMITS)


def test_degenerate_matches_brute_force():
    all_none = tuple(("none", i % 2) for i in range(8))
    via_s0 = (("skip_connect", 0), ("none", 1)) + all_none[2:]  # live only through input 0 (two cells back)
    via_s1 = (("none", 0), ("none", 1), ("none", 2), ("none", 0), ("none", 2), ("none", 3),
              ("none", 4), ("max_pool_3x3", 1))
    deep = DartsSpace(C=2, layers=4, stem=True, tied=False)  # cells: normal, reduce, reduce, normal
    assert DARTS.is_degenerate(to_string(all_none, all_none))
    assert not DARTS.is_degenerate(to_string(via_s1, via_s1))
    assert not deep.is_degenerate(to_string(via_s0, CELL))  # a "last state only" rule would say True
    assert deep.is_degenerate(to_string(all_none, CELL))
    assert UNTIED.is_degenerate(to_string(CELL, all_none)) and not UNTIED.is_degenerate(to_string(all_none, CELL))
    rng = np.random.default_rng(0)
    cells = [all_none, via_s0, via_s1, CELL] + list(none_heavy_cells(rng, 40))
    cases = [(DartsSpace(C=2), to_string(c, c)) for c in cells[:24]]
    cases += [(deep, to_string(a, b)) for a, b in zip(cells, cells[4:] + cells[:4])]
    cases += [(DartsSpace(C=2, layers=2, tied=False), to_string(b, a)) for a, b in zip(cells[::2], cells[1::2])]
    verdicts = [space.is_degenerate(key) for space, key in cases]
    assert verdicts == [output_ignores_input(space, key) for space, key in cases]
    assert 5 <= sum(verdicts) <= len(verdicts) - 5


# ---- hypothesis: only SpaceError escapes, and valid keys round-trip ----------------------------------

cells = st.tuples(*(st.tuples(st.sampled_from(OPS), st.integers(0, n - 1)) for n in INPUT_LIMITS))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_space_error(text):
    with pytest.raises(SpaceError):
        UNTIED.key(text)


@settings(max_examples=300, deadline=None)
@given(normal=cells, reduce=cells, edits=st.lists(
    st.tuples(st.integers(0, 10_000), st.sampled_from(["delete", "insert", "replace"]),
              st.sampled_from(list("()[],='\" 0123456789-_aznoe") + ["\n", "none", "range(", "Genotype"])),
    min_size=1, max_size=4))
def test_mutated_genotypes_raise_only_space_error(normal, reduce, edits):
    text = to_string(normal, reduce)
    for position, action, piece in edits:
        i = position % (len(text) + 1)
        if action == "delete":
            text = text[:i] + text[i + 1:]
        elif action == "insert":
            text = text[:i] + piece + text[i:]
        else:
            text = text[:i] + piece + text[i + 1:]
    try:
        key = UNTIED.key(text)
    except SpaceError as error:
        assert "DARTS genotype" in str(error)
    else:
        assert UNTIED.key(key) == key


@settings(max_examples=150, deadline=None)
@given(normal=cells, reduce=cells, quote=st.sampled_from(["'", '"']),
       sep=st.sampled_from([",", ", ", " ,\n ", ",\t"]))
def test_valid_genotypes_round_trip(normal, reduce, quote, sep):
    key = to_string(normal, reduce)
    text = f"Genotype(normal={cell_text(normal, quote, sep)}{sep}reduce={cell_text(reduce, quote, sep)})"
    assert UNTIED.key(text) == key == UNTIED.key(key) == UNTIED.key({"normal": normal, "reduce": reduce})
    rep = UNTIED.representative(key)
    assert UNTIED.representative(rep) == rep
    for node in range(4):
        assert UNTIED.representative(to_string(swap_node(normal, node), swap_node(reduce, 3 - node))) == rep


structures = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 9) | st.floats() | st.sampled_from(OPS + ("x", "normal")),
    lambda inner: st.lists(inner, max_size=9) | st.lists(inner, max_size=9).map(tuple)
    | st.dictionaries(st.sampled_from(["normal", "reduce", "normal_concat", "reduce_concat", "other"]), inner),
    max_leaves=40,
)


@settings(max_examples=150, deadline=None)
@given(structures)
def test_random_structures_raise_only_space_error(arch):
    try:
        key = UNTIED.key(arch)
    except SpaceError as error:
        assert "DARTS genotype" in str(error)
    else:
        assert UNTIED.key(key) == key
