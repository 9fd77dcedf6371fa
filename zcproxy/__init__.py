"""zcproxy: rank neural architectures without training them.

>>> import zcproxy
>>> results = zcproxy.score(13714, ["synflow", "ntk_robust"])   # doctest: +SKIP
>>> results["ntk_robust"].value                                   # doctest: +SKIP
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["score", "ProxyResult", "__version__"]


def __getattr__(name: str):
    # Keep `import zcproxy` light: torch-heavy modules load on first use.
    if name in ("score", "ProxyResult"):
        from . import scoring

        return getattr(scoring, name)
    raise AttributeError(f"module 'zcproxy' has no attribute {name!r}")
