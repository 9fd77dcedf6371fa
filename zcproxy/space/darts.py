"""The DARTS CNN search space (Liu et al., ICLR 2019) with the SWAP-NAS scoring network as its default.

An architecture is a DARTS genotype: a *normal* and a *reduce* cell of eight (op, input) pairs each. Pair k
feeds intermediate node 2 + k // 2 and reads state 0..k // 2 + 1 (0, 1: the outputs of the two previous
cells; 2..: earlier intermediate nodes); the cell outputs the concatenation of nodes 2, 3, 4, 5 (the only
concat accepted). Ops: ``none, skip_connect, max_pool_3x3, avg_pool_3x3, sep_conv_3x3, sep_conv_5x5,
dil_conv_3x3, dil_conv_5x5``. The canonical key is the DARTS ``Genotype(...)`` repr with normalised spacing
and single quotes, the form of ``DARTS_archs_CIFAR10.csv``; strings are parsed as data by a small tokenizer,
never evaluated.

Isomorphism (partial): a node sums its two inputs, so the two pairs of one node are unordered;
:meth:`DartsSpace.representative` sorts them (by op order, then input) in both cells. Other symmetries
(e.g. permuting intermediate nodes, or a ``none`` pair's input) are not removed. Two identical pairs on one
node are allowed (the data has them).

Counts, per cell: ``(16 * 24 * 32 * 40) ** 2`` = 241,591,910,400 genotypes and ``136 * 300 * 528 * 820`` =
17,664,768,000 representatives (a node of ``m = 8 * (inputs)`` pair choices has ``m (m + 1) / 2`` unordered
pairs). The tied space (reduce = normal) has these counts, the untied one their squares (about 5.8e22
genotypes, 3.1e20 representatives); :meth:`size` is None either way.

Defaults reproduce the network SWAP-NAS (Peng et al., ICLR 2024) scored the 1,000 shipped architectures
with (reference code pym1024/SWAP: ``correlation.py`` builds ``Network(3, 10, 1, genotype)`` from
``src/search_space/networks.py`` with the ops of ``src/search_space/operations.py``, batch 16 CIFAR-10
training images of 32 x 32 normalised by the CIFAR-10 mean/std):

- ``C=3, layers=1``: one cell, and since DARTS puts reduction cells at ``layers // 3`` and
  ``2 * layers // 3`` (both 0 here) that cell is a *reduction* cell with 2C = 6 channels per node
  (24 output channels at 16 x 16). Only the reduce genotype is built.
- ``stem=False``: SWAP's network has no stem, both inputs of the first cell are the image. (DARTS's
  NetworkCIFAR has a 3 x 3 conv to 3C + BN stem; ``stem=True`` adds it. The DARTS CIFAR-10 evaluation
  network is ``DartsSpace(C=36, layers=20, stem=True, tied=False)`` minus auxiliary head and drop path.)
  Without a stem the first cell reads 3 image channels; SWAP wires C channels there, the same at C=3.
- ``tied=True``: reduce = normal. All 1,000 shipped architectures are tied, so the space they were sampled
  uniformly from is the tied one; and at ``layers=1`` only the reduce cell is built, so an untied space
  would let half of every key (and of every mutation) leave the network unchanged. ``key`` of an untied
  genotype raises; use ``DartsSpace(tied=False)`` for independent cells.
- Ops and BN (affine everywhere, no BN after pools), Zero at stride 2, FactorizedReduce with padded shift:
  as the SWAP/NAS-Bench-201 op definitions, which equal DARTS's evaluation ops on even sizes. Check:
  ``DartsSpace(C=36, layers=20, stem=True, tied=False)`` builds DARTS-V2 with 3,349,342 parameters, the
  size DARTS reports for it (auxiliary head excluded).

The 1,000 shipped architectures have 310 to 2,692 parameters (median 1,210) in the default network; two
are degenerate (all paths pass ``none``) and are exactly the two trained to chance accuracy (10.2 %).

Deviations: the network returns the classifier's logits (SWAP's forward returns the pooled 24 features and
leaves its classifier unused; SWAP hooks ReLUs only, so its score is unchanged, and the parameter count
includes the classifier in both); the first layer is ``Normalize`` with zcproxy's CIFAR-10 constants
(NAS-Bench-201's, within 3e-4 of SWAP's torchvision constants); weights use PyTorch's default init from
the global RNG (SWAP re-initialises every conv/linear weight from N(0, 1), BN to 1/0, before each of its 32
repeats, which is the proxy's business, not the space's).
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from .._datasets import dataset_for_classes, dataset_info
from ..errors import SpaceError
from ._darts_model import Cell, DartsNetwork, reduction_layers
from .graph import CellGraph

__all__ = ["OPS", "DartsSpace", "DARTS"]

OPS = ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3",
       "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
PAIRS = 8
CONCAT = (2, 3, 4, 5)
CELLS = ("normal", "reduce")
INPUT_LIMITS = tuple(k // 2 + 2 for k in range(PAIRS))
"""Number of allowed inputs of pair k (inputs 0..limit - 1)."""
GENOTYPES_PER_CELL = math.prod(len(OPS) * n for n in INPUT_LIMITS)
REPRESENTATIVES_PER_CELL = math.prod(
    (len(OPS) * INPUT_LIMITS[2 * node]) * (len(OPS) * INPUT_LIMITS[2 * node] + 1) // 2 for node in range(4)
)
_OP_RANK = {op: i for i, op in enumerate(OPS)}
_PARAMETRIC = frozenset(op for op in OPS if "conv" in op)
_FORM = ("a DARTS genotype: Genotype(normal=[(op, input), ... 8 pairs], normal_concat=[2, 3, 4, 5], "
         "reduce=[... 8 pairs], reduce_concat=[2, 3, 4, 5]), or a dict/namedtuple with normal and reduce")


def _show(arch: Any) -> str:
    text = repr(arch)
    return text if len(text) <= 160 else text[:150] + "...(" + str(len(text)) + " chars)"


def _fail(arch: Any, problem: str) -> SpaceError:
    return SpaceError(f"DARTS genotype {_show(arch)}: {problem}")


# ---- the tokenizer and parser: the genotype string as data ------------------------------------------

_TOKEN = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<int>-?[0-9]+)"
                    r"""|'(?P<sq>[^'\\\n]*)'|"(?P<dq>[^"\\\n]*)"|(?P<punct>[()\[\],=])""")
_SPACE = re.compile(r"\s*")
_MAX_DEPTH = 5
_MAX_DIGITS = 6


class _Name(str):
    """A bare identifier (only valid as a call name or a keyword)."""


class _Call:
    def __init__(self, name: str, args: list[tuple[str | None, Any]]):
        self.name, self.args = name, args

    def __repr__(self) -> str:
        return f"{self.name}(...)"


def _tokens(text: str, arch: Any) -> list[tuple[str, Any, int]]:
    out: list[tuple[str, Any, int]] = []
    pos = _SPACE.match(text).end()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _fail(arch, f"unexpected character {text[pos]!r} at position {pos}; expected {_FORM}")
        kind = m.lastgroup
        if kind == "int":
            digits = m.group("int").lstrip("-")
            if len(digits) > _MAX_DIGITS:
                raise _fail(arch, f"number {m.group('int')[:20]!r} at position {pos} is too long; "
                                  f"inputs are small integers (0..5)")
            out.append(("int", int(m.group("int")), pos))
        elif kind in ("sq", "dq"):
            out.append(("str", m.group(kind), pos))
        elif kind == "name":
            out.append(("name", _Name(m.group("name")), pos))
        else:
            out.append((m.group("punct"), None, pos))
        pos = _SPACE.match(text, m.end()).end()
    return out


class _Parser:
    """Recursive descent over: value := str | int | [values] | (values) | name(args); args := [name=]value."""

    def __init__(self, text: str, arch: Any):
        self.arch = arch
        self.tokens = _tokens(text, arch)
        self.i = 0

    def error(self, problem: str) -> SpaceError:
        if self.i < len(self.tokens):
            where = f"at position {self.tokens[self.i][2]}"
        else:
            where = "at the end of the text"
        return _fail(self.arch, f"{problem} {where}; expected {_FORM}")

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self, kind: str) -> Any:
        if self.peek() != kind:
            found = self.peek() or "nothing"
            raise self.error(f"expected {kind!r} but found {found!r}")
        value = self.tokens[self.i][1]
        self.i += 1
        return value

    def parse(self) -> Any:
        value = self.value(0)
        if self.i != len(self.tokens):
            raise self.error("unexpected text after the genotype")
        return value

    def sequence(self, close: str, depth: int, keywords: bool) -> list[tuple[str | None, Any]]:
        items: list[tuple[str | None, Any]] = []
        while self.peek() != close:
            keyword = None
            if keywords and self.peek() == "name" and self.i + 1 < len(self.tokens) \
                    and self.tokens[self.i + 1][0] == "=":
                keyword = str(self.take("name"))
                self.take("=")
            items.append((keyword, self.value(depth + 1)))
            if self.peek() != ",":
                break
            self.take(",")
        self.take(close)
        return items

    def value(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise self.error("too deeply nested")
        kind = self.peek()
        if kind in ("str", "int"):
            return self.take(kind)
        if kind == "[":
            self.take("[")
            return [v for _, v in self.sequence("]", depth, keywords=False)]
        if kind == "(":
            self.take("(")
            return tuple(v for _, v in self.sequence(")", depth, keywords=False))
        if kind == "name":
            name = self.take("name")
            if self.peek() != "(":
                raise self.error(f"bare name {str(name)!r} (op names are quoted strings)")
            self.take("(")
            return _Call(str(name), self.sequence(")", depth, keywords=True))
        raise self.error(f"expected a value but found {kind or 'nothing'!r}")


def _concat_value(value: Any, field: str, arch: Any) -> Any:
    """``range(a, b)`` calls become lists; anything else is checked by :func:`_check_concat`."""
    if isinstance(value, _Call):
        args = [v for _, v in value.args]
        if value.name != "range" or any(k is not None for k, _ in value.args) or not 1 <= len(args) <= 2 \
                or not all(isinstance(a, int) for a in args):
            raise _fail(arch, f"{field} must be [2, 3, 4, 5] or range(2, 6), got a call to {value.name}(...)")
        return list(range(*args))
    return value


def _from_text(text: str, arch: Any) -> dict[str, Any]:
    tree = _Parser(text, arch).parse()
    if not isinstance(tree, _Call) or tree.name != "Genotype":
        raise _fail(arch, f"the text is not a Genotype(...) call; expected {_FORM}")
    fields: dict[str, Any] = {}
    for keyword, value in tree.args:
        if keyword is None:
            raise _fail(arch, "Genotype(...) arguments must be named (normal=..., normal_concat=..., "
                              "reduce=..., reduce_concat=...)")
        if keyword not in ("normal", "normal_concat", "reduce", "reduce_concat"):
            raise _fail(arch, f"unknown Genotype field {keyword!r}; the fields are normal, normal_concat, "
                              "reduce, reduce_concat")
        if keyword in fields:
            raise _fail(arch, f"Genotype field {keyword!r} is given twice")
        fields[keyword] = _concat_value(value, keyword, arch) if keyword.endswith("_concat") else value
    return fields


# ---- validation shared by text and Python structures -----------------------------------------------

def _from_structure(arch: Any) -> dict[str, Any]:
    if isinstance(arch, Mapping):
        unknown = sorted(str(k) for k in arch if k not in ("normal", "normal_concat", "reduce", "reduce_concat"))
        if unknown:
            raise _fail(arch, f"unknown keys {unknown}; the keys are normal, reduce and optionally "
                              "normal_concat, reduce_concat")
        return dict(arch)
    if hasattr(arch, "normal") and hasattr(arch, "reduce"):
        fields = {"normal": arch.normal, "reduce": arch.reduce}
        for name in ("normal_concat", "reduce_concat"):
            if hasattr(arch, name):
                fields[name] = getattr(arch, name)
        return fields
    if isinstance(arch, (tuple, list)) and len(arch) == 4:
        return dict(zip(("normal", "normal_concat", "reduce", "reduce_concat"), arch))
    if isinstance(arch, (tuple, list)) and len(arch) == 2:
        return dict(zip(("normal", "reduce"), arch))
    raise _fail(arch, f"a {type(arch).__name__} is not a DARTS architecture; expected {_FORM} "
                      "(a tuple is (normal, normal_concat, reduce, reduce_concat) or (normal, reduce))")


def _check_concat(value: Any, field: str, arch: Any) -> None:
    if isinstance(value, range):
        value = list(value)
    ok = isinstance(value, (list, tuple)) and len(value) == len(CONCAT) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and int(v) == c for v, c in zip(value, CONCAT)
    )
    if not ok:
        raise _fail(arch, f"{field} is {_show(value)}; only [2, 3, 4, 5] (all four intermediate nodes, in "
                          "order) is supported")


def _check_cell(value: Any, cell: str, arch: Any) -> Cell:
    if not isinstance(value, (list, tuple)) or len(value) != PAIRS:
        got = f"{len(value)} items" if isinstance(value, (list, tuple)) else f"a {type(value).__name__}"
        raise _fail(arch, f"the {cell} cell has {got}; it must be a list of {PAIRS} (op, input) pairs, "
                          "two per intermediate node 2..5")
    pairs = []
    for k, pair in enumerate(value):
        node = 2 + k // 2
        where = f"{cell} pair {k} (node {node})"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _fail(arch, f"{where} is {_show(pair)}; each pair is (op, input), e.g. ('sep_conv_3x3', 0)")
        op, index = pair
        if not isinstance(op, str) or op not in _OP_RANK:
            raise _fail(arch, f"{where} has op {_show(op)}; the ops are {', '.join(OPS)}")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                or not 0 <= int(index) < INPUT_LIMITS[k]:
            raise _fail(arch, f"{where} has input {_show(index)}; a pair of node {node} reads an input in "
                              f"0..{INPUT_LIMITS[k] - 1} (0, 1: the two previous cells, 2..: earlier nodes)")
        pairs.append((str(op), int(index)))
    return tuple(pairs)


def parse(arch: Any) -> tuple[Cell, Cell]:
    """(normal, reduce) of a genotype string or structure; a SpaceError naming the input otherwise."""
    if isinstance(arch, str):
        fields = _from_text(arch, arch)
    else:
        fields = _from_structure(arch)
    for cell in CELLS:
        if cell not in fields:
            raise _fail(arch, f"the {cell} cell is missing; expected {_FORM}")
    for field in ("normal_concat", "reduce_concat"):
        _check_concat(fields.get(field, list(CONCAT)), field, arch)
    return _check_cell(fields["normal"], "normal", arch), _check_cell(fields["reduce"], "reduce", arch)


def to_string(normal: Cell, reduce: Cell) -> str:
    """The canonical key: the DARTS Genotype repr with single quotes and ", " separators."""
    def cell(pairs: Cell) -> str:
        return "[" + ", ".join(f"('{op}', {index})" for op, index in pairs) + "]"

    concat = "[" + ", ".join(str(c) for c in CONCAT) + "]"
    return (f"Genotype(normal={cell(normal)}, normal_concat={concat}, "
            f"reduce={cell(reduce)}, reduce_concat={concat})")


def _sorted_nodes(pairs: Cell) -> Cell:
    out: list[tuple[str, int]] = []
    for node in range(PAIRS // 2):
        a, b = pairs[2 * node], pairs[2 * node + 1]
        out.extend(sorted((a, b), key=lambda p: (_OP_RANK[p[0]], p[1])))
    return tuple(out)


def _cell_live(pairs: Cell, live0: bool, live1: bool) -> bool:
    """Whether a cell's output can depend on the network input, given whether its two inputs can. Every
    op but ``none`` keeps a dependence; a node depends when one of its non-``none`` pairs reads a
    dependent state; the output (nodes 2..5 concatenated) depends when any node does."""
    live = [live0, live1]
    for node in range(PAIRS // 2):
        live.append(any(op != "none" and live[index] for op, index in pairs[2 * node: 2 * node + 2]))
    return any(live[2:])


class DartsSpace:
    """The DARTS CNN space with explicit macro settings; see the module docstring for the defaults.

    ``C``: channels per node of the first cells (doubled at each reduction cell); ``layers``: number of
    cells (reductions at ``layers // 3`` and ``2 * layers // 3``); ``stem``: add DARTS's 3 x 3 conv stem to
    3C channels; ``tied``: the reduce cell equals the normal cell (keys, samples and neighbours).
    """

    name = "darts"

    def __init__(self, C: int = 3, layers: int = 1, stem: bool = False, tied: bool = True):
        for option, value in (("C", C), ("layers", layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpaceError(f"DartsSpace option {option} must be a positive int, got {value!r}")
        for option, value in (("stem", stem), ("tied", tied)):
            if not isinstance(value, bool):
                raise SpaceError(f"DartsSpace option {option} must be True or False, got {value!r}")
        self.C, self.layers, self.stem, self.tied = C, layers, stem, tied

    def __repr__(self) -> str:
        return f"DartsSpace(C={self.C}, layers={self.layers}, stem={self.stem}, tied={self.tied})"

    def settings(self) -> dict[str, Any]:
        return {"space": self.name, "C": self.C, "layers": self.layers, "stem": self.stem, "tied": self.tied}

    def _cells(self, arch: Any) -> tuple[Cell, Cell]:
        normal, reduce = parse(arch)
        if self.tied and normal != reduce:
            raise _fail(arch, f"the reduce cell differs from the normal cell, but {self!r} is tied (every "
                              "architecture uses one cell genotype for both); use DartsSpace(tied=False) "
                              "for independent cells")
        return normal, reduce

    def key(self, arch: Any) -> str:
        """Canonical key of a genotype string (any spacing, either quote), key or structure."""
        return to_string(*self._cells(arch))

    def representative(self, key: Any) -> str:
        """The key with the two pairs of every node sorted (by op order, then input), in both cells."""
        normal, reduce = self._cells(key)
        return to_string(_sorted_nodes(normal), _sorted_nodes(reduce))

    def size(self) -> int | None:
        """None: the space is far too large to enumerate (counts in the module docstring)."""
        return None

    def archs(self) -> Iterator[str]:
        raise SpaceError(f"{self!r} cannot be enumerated ({GENOTYPES_PER_CELL:,} genotypes per cell); "
                         "use sample(n, seed) or neighbours(key) instead")

    def representatives(self) -> None:
        return None

    def _draw_cell(self, rng: np.random.Generator) -> Cell:
        ops = rng.integers(0, len(OPS), size=PAIRS)
        inputs = rng.integers(0, INPUT_LIMITS)
        return tuple((OPS[int(o)], int(i)) for o, i in zip(ops, inputs))

    def sample(self, n: int, seed: int) -> list[str]:
        """``n`` distinct representatives, in draw order. Each draw picks every pair's op uniformly from the
        8 ops and its input uniformly from the allowed ones (normal then reduce; one cell when tied), i.e.
        genotypes uniformly (so a representative's chance is proportional to its class size, 1 or 2 per
        node); draws repeating an earlier representative are skipped."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SpaceError(f"sample size must be a positive int for space {self.name!r}, got {n!r}")
        rng = np.random.default_rng(seed)
        seen: dict[str, None] = {}
        while len(seen) < n:
            normal = self._draw_cell(rng)
            reduce = normal if self.tied else self._draw_cell(rng)
            seen.setdefault(to_string(_sorted_nodes(normal), _sorted_nodes(reduce)), None)
        return list(seen)

    def neighbours(self, key: Any) -> list[str]:
        """Representatives one mutation away: one pair's op replaced by another op, or its input by another
        allowed input, in either cell (in both at once when tied); in mutation order of the representative
        of ``key``, so isomorphic keys have the same list."""
        normal, reduce = (_sorted_nodes(cell) for cell in self._cells(key))
        here = to_string(normal, reduce)
        cells = ((normal, reduce),) if self.tied else ((normal, None), (None, reduce))
        found: dict[str, None] = {}
        for which, (n_cell, r_cell) in enumerate(cells):
            pairs = n_cell if n_cell is not None else r_cell
            for k, (op, index) in enumerate(pairs):
                options = [(o, index) for o in OPS if o != op]
                options += [(op, i) for i in range(INPUT_LIMITS[k]) if i != index]
                for pair in options:
                    mutated = pairs[:k] + (pair,) + pairs[k + 1:]
                    if self.tied:
                        new = (mutated, mutated)
                    elif which == 0:
                        new = (mutated, reduce)
                    else:
                        new = (normal, mutated)
                    rep = to_string(_sorted_nodes(new[0]), _sorted_nodes(new[1]))
                    if rep != here:
                        found.setdefault(rep, None)
        return list(found)

    def graph(self, key: Any) -> dict[str, CellGraph]:
        """Each cell as a DAG (for :func:`~zcproxy.space.graph.graph_features`): nodes 0, 1 are the cell's
        inputs, 2..5 its intermediate nodes, all four concatenated into the output; pair k is the edge
        (its input, node 2 + k // 2). One cell ``"cell"`` when tied, else ``"normal"`` and ``"reduce"``."""
        normal, reduce = self._cells(key)

        def cell(pairs: Cell) -> CellGraph:
            return CellGraph(nodes=2 + PAIRS // 2, edges=tuple((index, 2 + k // 2, op) for k, (op, index)
                                                               in enumerate(pairs)),
                             inputs=(0, 1), outputs=CONCAT, ops=OPS, none="none", parametric=_PARAMETRIC)

        return {"cell": cell(normal)} if self.tied else {"normal": cell(normal), "reduce": cell(reduce)}

    def is_degenerate(self, key: Any) -> bool:
        """True when the network output cannot depend on its input: following the cells of this space's
        macro structure (each reads the previous two states), the last cell's output is input-free."""
        normal, reduce = self._cells(key)
        reductions = reduction_layers(self.layers)
        live_prev_prev = live_prev = True
        for i in range(self.layers):
            pairs = reduce if i in reductions else normal
            live_prev_prev, live_prev = live_prev, _cell_live(pairs, live_prev_prev, live_prev)
        return not live_prev

    def build(self, key: Any, num_classes: int = 10, dataset: str | None = None) -> torch.nn.Module:
        """A freshly initialised DARTS network for ``key`` (any accepted form) taking [0, 1] images; its
        first layer normalises with ``dataset``'s constants (default: the dataset with ``num_classes``
        classes, else CIFAR-10). ``model.arch`` is the canonical key."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise SpaceError(f"num_classes must be a positive int, got {num_classes!r}")
        normal, reduce = self._cells(key)
        try:
            info = dataset_info(dataset) if dataset is not None else dataset_for_classes(num_classes)
        except ValueError as error:
            raise SpaceError(str(error)) from None
        return DartsNetwork(normal, reduce, to_string(normal, reduce), num_classes, self.C, self.layers,
                            self.stem, info)


DARTS = DartsSpace()
"""The SWAP-NAS scoring configuration: C=3, one (reduction) cell, no stem, reduce = normal."""
