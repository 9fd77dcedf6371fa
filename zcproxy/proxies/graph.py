"""Graph proxies: three zero-cost numbers read from the architecture's cell graph (no weights, no data)."""
from __future__ import annotations

from ..space.graph import cell_features
from ._registry import ProxyContext, proxy

REFERENCE = ("Kadlecová et al., ICML 2024 (neural graph features, GRAF); definitions in "
             "zcproxy.space.graph")


@proxy("graph", reference=REFERENCE, cost="static", bn="eval", higher_is_better=True,
       outputs=("graph_paths", "graph_depth", "graph_convs"))
def graph(ctx: ProxyContext) -> dict[str, float]:
    """Three graph features of the scored architecture, from its space's ``graph(key)``:

    * ``graph_paths``: input-to-output paths along live (non-``none``) edges;
    * ``graph_depth``: the most parametric (convolution) edges on one such path (GRAF's max number on path
      for the parametric ops);
    * ``graph_convs``: parametric edges lying on at least one path (the convolutions that can act).

    Summed over the cells of a multi-cell architecture (untied DARTS: normal + reduce). Higher is better is
    our prior (more routes, deeper and more acting convolutions), not a fitted orientation. The full
    feature table (op counts, path lengths per op set, degrees) is :func:`zcproxy.space.graph_features`,
    which the few-shot predictor uses. Needs an architecture of a space with ``graph(key)`` (NB201, DARTS);
    a bare model raises.
    """
    space = ctx.space
    if ctx.arch is None or space is None:
        raise ValueError("graph proxies read the architecture's cell graph; score an architecture of a search "
                         "space (or a model built by one), not a bare model")
    describe = getattr(space, "graph", None)
    if not callable(describe):
        raise ValueError(f"search space {space.name!r} has no graph(key) method, so graph proxies cannot be "
                         "computed for it")
    cells = describe(space.key(ctx.arch)).values()
    total = {"graph_paths": 0.0, "graph_depth": 0.0, "graph_convs": 0.0}
    for cell in cells:
        features = cell_features(cell)
        conv = "+".join(o for o in cell.live_ops if o in cell.parametric)
        total["graph_paths"] += features["paths"]
        total["graph_depth"] += features[f"maxon:{conv}"] if conv else 0.0
        total["graph_convs"] += sum(features[f"onpath:{o}"] for o in cell.parametric)
    return total
