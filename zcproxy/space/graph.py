"""Graph features of a cell: zero-cost descriptors computed from the architecture alone (no weights, no data).

After the neural graph features of Kadlecová et al., ICML 2024 ("Surprisingly strong performance prediction
with neural graph features", GRAF). A space describes each cell of an architecture as a :class:`CellGraph`
(its ``graph(key)`` method); :func:`cell_features` turns a cell into named numbers and :func:`graph_features`
tabulates them for many architectures.

Definitions (ours; GRAF's families, stated exactly). An edge is *live* when its op is not the space's
``none`` op. A *path* is a route of live edges from a cell input to a node whose state the cell outputs (the
output concatenates the states of ``outputs``; a route to any of them is a path to the output), so in NB201
a path ends at node 3 and in DARTS at any intermediate node. For every op ``o`` of the space and every op set
``S`` of :func:`op_sets`:

* ``n:<o>`` -- edges carrying ``o`` (live or not; GRAF's op counts);
* ``onpath:<o>`` -- edges carrying ``o`` that lie on at least one path (``o`` live);
* ``paths`` -- number of paths;
* ``minlen:<S>`` -- edges on the shortest path that uses ops in ``S`` only; ``nodes`` (longer than any
  path) when there is none (GRAF's min path length; their sentinel is a constant too);
* ``maxon:<S>`` -- the most ``S``-edges on any one path; 0 without a path (GRAF's "max number on path");
* ``frominput:<S>`` / ``intooutput:<S>`` -- live ``S``-edges leaving an input node / entering an output node
  (GRAF's input out-degree and output in-degree).

Op sets are named by their ops joined with ``+`` in the space's op order. Deviation from GRAF: GRAF counts
paths on the graph with zero edges included and uses per-space feature lists; here one definition serves every
space, and dead edges never count as routes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from itertools import combinations
from typing import TYPE_CHECKING, Iterable, Mapping

from ..errors import SpaceError

if TYPE_CHECKING:
    import pandas as pd

    from ._protocol import SearchSpace

__all__ = ["CellGraph", "cell_features", "graph_features", "op_sets"]


@dataclass(frozen=True)
class CellGraph:
    """One cell as a DAG with ops on its edges.

    ``nodes``: node count (nodes are 0..nodes-1); ``edges``: ``(source, target, op)`` with source < target;
    ``inputs``: the cell's input nodes; ``outputs``: the nodes whose states the cell outputs; ``ops``: every op
    of the space in its own order (feature names follow it); ``none``: the op that carries nothing (or None);
    ``parametric``: ops with weights (convolutions), which :func:`op_sets` groups.
    """

    nodes: int
    edges: tuple[tuple[int, int, str], ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    ops: tuple[str, ...]
    none: str | None = "none"
    parametric: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for source, target, op in self.edges:
            if not 0 <= source < target < self.nodes:
                raise SpaceError(f"cell edge {(source, target, op)!r} must run forward between nodes 0..{self.nodes - 1}")
            if op not in self.ops:
                raise SpaceError(f"cell edge {(source, target, op)!r} has op {op!r}, not one of {list(self.ops)}")
        for role, nodes in (("inputs", self.inputs), ("outputs", self.outputs)):
            if not nodes or any(not 0 <= n < self.nodes for n in nodes):
                raise SpaceError(f"cell {role} {nodes!r} must name nodes 0..{self.nodes - 1}")

    @property
    def live_ops(self) -> tuple[str, ...]:
        return tuple(o for o in self.ops if o != self.none)


@cache
def op_sets(ops: tuple[str, ...], parametric: frozenset[str] = frozenset()) -> tuple[tuple[str, ...], ...]:
    """The op sets of the ``minlen`` / ``maxon`` / degree features for live ops ``ops``: every non-empty subset
    when there are at most 4 ops (15 for NAS-Bench-201); otherwise every single op and pair, the parametric
    ops together, and all ops together. Each set keeps the order of ``ops``."""
    if len(ops) <= 4:
        chosen = [c for r in range(1, len(ops) + 1) for c in combinations(ops, r)]
    else:
        chosen = [c for r in (1, 2) for c in combinations(ops, r)]
        chosen += [tuple(o for o in ops if o in parametric), ops]
    seen: dict[tuple[str, ...], None] = {}
    for c in chosen:
        if c:
            seen.setdefault(c, None)
    return tuple(seen)


def _paths(cell: CellGraph, allowed: frozenset[str]) -> list[list[int]]:
    """Every path, as a list of edge positions in ``cell.edges``, from an input to an output node along live
    edges whose op is in ``allowed`` (parallel edges are distinct routes)."""
    out_edges: dict[int, list[int]] = {}
    for k, (source, _, op) in enumerate(cell.edges):
        if op in allowed and op != cell.none:
            out_edges.setdefault(source, []).append(k)
    outputs = set(cell.outputs)
    found: list[list[int]] = []

    def walk(node: int, route: list[int]) -> None:
        if node in outputs and route:
            found.append(list(route))
        for k in out_edges.get(node, ()):
            route.append(k)
            walk(cell.edges[k][1], route)
            route.pop()

    for start in cell.inputs:
        walk(start, [])
    return found


def cell_features(cell: CellGraph) -> dict[str, float]:
    """Every graph feature of one cell, by name (see the module docstring for the definitions)."""
    live = cell.live_ops
    paths = _paths(cell, frozenset(live))
    on_path = {k for route in paths for k in route}
    op_of = [e[2] for e in cell.edges]
    features: dict[str, float] = {f"n:{o}": float(op_of.count(o)) for o in cell.ops}
    features.update({f"onpath:{o}": float(sum(op_of[k] == o for k in on_path)) for o in live})
    features["paths"] = float(len(paths))
    inputs, outputs = set(cell.inputs), set(cell.outputs)
    for ops in op_sets(live, cell.parametric):
        name, allowed = "+".join(ops), frozenset(ops)
        restricted = _paths(cell, allowed)
        features[f"minlen:{name}"] = float(min((len(r) for r in restricted), default=cell.nodes))
        features[f"maxon:{name}"] = float(max((sum(op_of[k] in allowed for k in r) for r in paths), default=0))
        features[f"frominput:{name}"] = float(sum(op in allowed and s in inputs for s, _, op in cell.edges))
        features[f"intooutput:{name}"] = float(sum(op in allowed and t in outputs for _, t, op in cell.edges))
    return features


def arch_features(cells: Mapping[str, CellGraph]) -> dict[str, float]:
    """Features of an architecture from its named cells: a single cell's names as they are, several cells'
    prefixed with the cell name and a dot (``normal.paths``)."""
    if len(cells) == 1:
        return cell_features(next(iter(cells.values())))
    return {f"{name}.{k}": v for name, cell in cells.items() for k, v in cell_features(cell).items()}


def graph_features(archs: Iterable[object], space: "str | SearchSpace" = "nb201") -> "pd.DataFrame":
    """One row of graph features per architecture of ``space`` (any form the space resolves), indexed by
    label (NB201: the int index), one float column per feature. Needs the space's ``graph(key)``."""
    import pandas as pd

    from . import get_space
    from ._protocol import label

    sp = get_space(space)
    describe = getattr(sp, "graph", None)
    if not callable(describe):
        raise SpaceError(f"search space {sp.name!r} has no graph(key) method, so it has no graph features; "
                         "implement graph(key) -> {cell name: zcproxy.space.graph.CellGraph} on the space")
    rows: dict[object, dict[str, float]] = {}
    for arch in archs:
        key = sp.key(arch)
        rows[label(key)] = arch_features(describe(key))
    frame = pd.DataFrame.from_dict(rows, orient="index", dtype=float)
    frame.index.name = "arch"
    return frame
