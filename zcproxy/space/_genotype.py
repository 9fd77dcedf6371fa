"""NAS-Bench-201 cell genotypes: arch strings, the benchmark's index order and isomorphism classes."""
from __future__ import annotations

import random
from functools import cache

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (target node, source node) of the six edges in arch-string order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_NODES = 4
SIZE = len(OPS) ** len(EDGES)  # 15,625

Genotype = tuple[str, str, str, str, str, str]  # op on each edge, in EDGES order


def to_string(ops: Genotype) -> str:
    """Format six edge ops as ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
    nodes = []
    k = 0
    for target in range(1, NUM_NODES):
        parts = []
        for source in range(target):
            parts.append(f"{ops[k]}~{source}")
            k += 1
        nodes.append("|" + "|".join(parts) + "|")
    return "+".join(nodes)


def parse(arch: str) -> Genotype:
    """Parse an arch string; raise ValueError naming what is wrong."""
    if not isinstance(arch, str):
        raise ValueError(f"arch string must be a str, got {type(arch).__name__}")
    nodes = arch.strip().split("+")
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(
            f"arch string {arch!r} has {len(nodes)} node groups separated by '+'; NAS-Bench-201 needs 3 "
            "(format |op~0|+|op~0|op~1|+|op~0|op~1|op~2|)"
        )
    ops: list[str] = []
    for target, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise ValueError(f"arch string {arch!r}: node group {node!r} must start and end with '|'")
        edges = [e for e in node[1:-1].split("|")]
        if len(edges) != target:
            raise ValueError(
                f"arch string {arch!r}: node {target} has {len(edges)} incoming edges, expected {target} "
                f"(6 edges in total)"
            )
        for source, edge in enumerate(edges):
            op, sep, src = edge.rpartition("~")
            if not sep or src != str(source):
                raise ValueError(f"arch string {arch!r}: edge {edge!r} into node {target} must be 'op~{source}'")
            if op not in OPS:
                raise ValueError(f"arch string {arch!r}: unknown op {op!r}; valid ops are {list(OPS)}")
            ops.append(op)
    return tuple(ops)  # type: ignore[return-value]


@cache
def _order() -> tuple[Genotype, ...]:
    """All 15,625 genotypes in NAS-Bench-201's index order.

    NAS-Bench-201 enumerates cells node by node (ops varying fastest on the latest edge) and shuffles the
    list with ``random.seed(88)`` (xautodl ``generate_meta_info``); we regenerate exactly that list.
    """
    def node_choices(n_inputs: int) -> list[list[str]]:
        combos: list[list[str]] = [[op] for op in OPS]
        for _ in range(1, n_inputs):
            combos = [c + [op] for c in combos for op in OPS]
        return combos

    archs: list[list[str]] = [c for c in node_choices(1)]
    for n_inputs in range(2, NUM_NODES):
        archs = [a + c for a in archs for c in node_choices(n_inputs)]
    rng = random.Random(88)
    rng.shuffle(archs)
    return tuple(tuple(a) for a in archs)  # type: ignore[misc]


@cache
def _index_of() -> dict[Genotype, int]:
    return {g: i for i, g in enumerate(_order())}


def canonical_form(ops: Genotype) -> str:
    """Canonical expression of the cell output, equal for isomorphic cells.

    Each node is the sorted sum of its incoming terms; ``skip_connect`` passes its input's expression,
    a parametrised op wraps it as ``(expr)@op``, and ``none`` (or an input that is identically zero: a dead
    node) contributes the zero symbol ``#``. This is NAS-Bench-201's own isomorphism convention
    (``to_unique_str(consider_zero=True)``), which defines the benchmark's 6,466 classes.
    """
    exprs = {0: "0"}
    k = 0
    for target in range(1, NUM_NODES):
        terms = []
        for source in range(target):
            op = ops[k]
            k += 1
            src = exprs[source]
            if op == "none" or src == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(src)
            else:
                terms.append(f"({src})@{op}")
        exprs[target] = "+".join(sorted(terms))
    return exprs[NUM_NODES - 1]


@cache
def _representatives() -> tuple[int, ...]:
    first: dict[str, int] = {}
    reps = []
    for i, g in enumerate(_order()):
        reps.append(first.setdefault(canonical_form(g), i))
    return tuple(reps)


def check_index(i: object) -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        try:
            import numpy as np

            if isinstance(i, np.integer):
                i = int(i)
            else:
                raise TypeError
        except TypeError:
            raise ValueError(f"architecture index must be an int in [0, {SIZE - 1}], got {i!r}") from None
    if not 0 <= i < SIZE:
        raise ValueError(f"architecture index {i} is out of range; NAS-Bench-201 indices are 0..{SIZE - 1}")
    return i
