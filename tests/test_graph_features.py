"""Graph features (zcproxy.space.graph) and the ``graph`` proxy: hand-computed cells, a brute-force oracle
over NAS-Bench-201 node sequences, DARTS cells, invariants and errors."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from zcproxy import scoring
from zcproxy.errors import SpaceError
from zcproxy.space import NB201, get_space, graph_features
from zcproxy.space.darts import DARTS, DartsSpace, to_string
from zcproxy.space.graph import CellGraph, cell_features, op_sets

LIVE = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGE = {(1, 0): 0, (2, 0): 1, (2, 1): 2, (3, 0): 3, (3, 1): 4, (3, 2): 5}  # (target, source) -> op position
DARTS_V2 = (("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2))


def brute_force(ops: tuple[str, ...]) -> dict[str, float]:
    """paths, maxon and minlen of an NB201 cell from its four node sequences 0 -> ... -> 3."""
    routes = []
    for middle in ((), (1,), (2,), (1, 2)):
        nodes = (0, *middle, 3)
        route = [ops[EDGE[(b, a)]] for a, b in zip(nodes, nodes[1:])]
        if "none" not in route:
            routes.append(route)
    out = {"paths": float(len(routes))}
    for r in range(1, 5):
        for subset in itertools.combinations(LIVE, r):
            name = "+".join(subset)
            out[f"maxon:{name}"] = float(max((sum(o in subset for o in rt) for rt in routes), default=0))
            out[f"minlen:{name}"] = float(min((len(rt) for rt in routes if all(o in subset for o in rt)), default=4))
    return out


def test_op_sets_cover_all_subsets_of_four_and_pairs_beyond():
    sets = op_sets(LIVE)
    assert len(sets) == 15 and len(set(sets)) == 15 and all(s == tuple(o for o in LIVE if o in s) for s in sets)
    seven = tuple("abcdefg")
    many = op_sets(seven, frozenset("abc"))
    assert len(many) == 7 + 21 + 2 and many[-2] == ("a", "b", "c") and many[-1] == seven


def test_hand_computed_nb201_cell():
    # index 0: |avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|
    f = graph_features([0]).loc[0]
    # routes: 0-3 conv1; 0-1-3 pool,skip; 0-2-3 conv1,skip; 0-1-2-3 pool,skip,skip
    assert f["paths"] == 4 and f["n:skip_connect"] == 3 and f["n:none"] == 0
    assert f["maxon:skip_connect"] == 2 and f["maxon:nor_conv_1x1"] == 1 and f["maxon:avg_pool_3x3"] == 1
    assert f["minlen:nor_conv_1x1"] == 1 and f["minlen:skip_connect"] == 4  # no skip-only route: sentinel
    assert f["minlen:skip_connect+avg_pool_3x3"] == 2
    assert f["frominput:nor_conv_1x1"] == 2 and f["intooutput:skip_connect"] == 2
    assert f["intooutput:skip_connect+nor_conv_1x1"] == 3  # sets are named in the space's op order
    assert "intooutput:nor_conv_1x1+skip_connect" not in f.index


def test_brute_force_oracle_on_sampled_nb201_cells():
    rng = np.random.default_rng(0)
    indices = sorted(set(rng.integers(0, 15_625, 400).tolist()) | {0, 1462, 2581, 13714})
    table = graph_features(indices)
    assert table.shape == (len(indices), 70) and table.index.tolist() == indices  # README: 70 columns for NB201
    assert "70 columns for NB201" in (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for i in indices:
        expected = brute_force(NB201.genotype(i))
        got = table.loc[i, list(expected)].to_dict()
        assert got == expected, i
        row = table.loc[i]
        assert all(row[f"onpath:{o}"] <= row[f"n:{o}"] for o in LIVE)
        assert sum(row[f"n:{o}"] for o in NB201.ops) == 6
        assert (row["paths"] == 0) == NB201.is_degenerate(str(i))


def test_dead_edges_count_but_never_lie_on_a_path():
    # node 1 is fed by none: its outgoing conv is live but reaches the output only from a dead node
    ops = ("none", "skip_connect", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect")
    f = graph_features([NB201.index("|" + "|+|".join(["none~0", "skip_connect~0|nor_conv_3x3~1",
                                                       "nor_conv_3x3~0|nor_conv_3x3~1|skip_connect~2"]) + "|")])
    row = f.iloc[0]
    assert row["n:nor_conv_3x3"] == 3 and row["onpath:nor_conv_3x3"] == 1  # only 0-3 acts
    assert row.to_dict() | brute_force(ops) == row.to_dict()


def test_darts_v2_cell_by_hand_and_isomorphism_invariance():
    key = to_string(DARTS_V2, DARTS_V2)
    f = graph_features([key], "darts").iloc[0]
    # nodes 2..5 all feed the output: 2 routes each into 2, 3, 4; node 5: from 0 directly and via node 2 (2)
    assert f["paths"] == 9 and f["n:sep_conv_3x3"] == 5 and f["onpath:sep_conv_3x3"] == 5
    assert f["maxon:sep_conv_3x3"] == 1 and f["minlen:skip_connect"] == 1
    assert f["frominput:skip_connect"] == 2 and f["intooutput:skip_connect"] == 3
    swapped = tuple(itertools.chain.from_iterable((b, a) for a, b in zip(DARTS_V2[::2], DARTS_V2[1::2])))
    g = graph_features([to_string(swapped, swapped)], "darts").iloc[0]
    assert g.to_dict() == f.to_dict()  # a node's two pairs in either order: same graph
    untied = graph_features([key], DartsSpace(tied=False)).iloc[0]
    assert untied["normal.paths"] == untied["reduce.paths"] == 9 and len(untied) == 2 * len(f)


def test_parallel_pairs_are_two_routes():
    cell = CellGraph(nodes=3, edges=((0, 2, "a"), (0, 2, "a"), (1, 2, "none")), inputs=(0, 1), outputs=(2,),
                     ops=("none", "a"))
    f = cell_features(cell)
    assert f["paths"] == 2 and f["onpath:a"] == 2 and f["n:none"] == 1 and f["minlen:a"] == 1


def test_bad_cells_and_spaces_are_named_errors():
    with pytest.raises(SpaceError, match="run forward"):
        CellGraph(nodes=2, edges=((1, 0, "a"),), inputs=(0,), outputs=(1,), ops=("a",))
    with pytest.raises(SpaceError, match="not one of"):
        CellGraph(nodes=2, edges=((0, 1, "b"),), inputs=(0,), outputs=(1,), ops=("a",))
    with pytest.raises(SpaceError, match="outputs"):
        CellGraph(nodes=2, edges=(), inputs=(0,), outputs=(5,), ops=("a",))

    class NoGraph:  # NAS-Bench-201 without its graph method
        name = "nograph"

        def __getattr__(self, attr):
            if attr == "graph":
                raise AttributeError(attr)
            return getattr(NB201, attr)

    with pytest.raises(SpaceError, match="'nograph' has no graph"):
        graph_features(["1"], NoGraph())
    failed = scoring.score(1, ["graph"], space=NoGraph())["graph_paths"]
    assert "failed" in failed.flags and "no graph(key) method" in failed.error


def test_graph_proxy_matches_the_feature_table_and_refuses_bare_models():
    for index in (0, 6418, 13714, 1462):
        got = {k: r.value for k, r in scoring.score(index, ["graph"]).items()}
        row = graph_features([index]).iloc[0]
        conv = "nor_conv_1x1+nor_conv_3x3"
        assert got == {"graph_paths": row["paths"], "graph_depth": row[f"maxon:{conv}"],
                       "graph_convs": row["onpath:nor_conv_1x1"] + row["onpath:nor_conv_3x3"]}
    built = NB201.build("13714")
    assert scoring.score(built, ["graph"])["graph_depth"].value == 3.0
    bare = scoring.score(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10)), ["graph"])
    assert "failed" in bare["graph_paths"].flags and "not a bare model" in bare["graph_paths"].error
    darts = scoring.score(to_string(DARTS_V2, DARTS_V2), ["graph"], space="darts")
    assert {k: r.value for k, r in darts.items()} == {"graph_paths": 9.0, "graph_depth": 1.0, "graph_convs": 5.0}
    assert get_space("darts") is DARTS
