"""Model size proxies: trainable parameter count (in millions)."""
from __future__ import annotations

from ._registry import ProxyContext, proxy


@proxy("params", reference="parameter count; NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022)",
       cost="static", bn="eval", higher_is_better=True)
def params(ctx: ProxyContext) -> float:
    """Number of parameters of the model, in millions (NB201 index 13714: 1.073466)."""
    return sum(p.numel() for p in ctx.model.parameters()) / 1e6
