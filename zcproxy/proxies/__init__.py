"""The proxy registry: every zero-cost proxy, one short module per proxy or family.

``available()`` lists proxy names; ``spec(name)`` gives a proxy's metadata (needs, BN mode, dtype,
orientation, reference, cost). Modules are discovered lazily on first use; importing this package
registers nothing.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import MappingProxyType
from typing import Mapping

from ._registry import ADDED_OPTIONS, RENAMED_OPTIONS, ProxyContext, ProxySpec, check_options, proxy

__all__ = ["available", "spec", "specs", "outputs", "ProxySpec", "ProxyContext", "proxy", "check_options",
           "RENAMED_OPTIONS", "ADDED_OPTIONS"]


@cache
def _specs() -> Mapping[str, ProxySpec]:
    found: dict[str, ProxySpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            s = getattr(obj, "__proxy_spec__", None)
            if isinstance(s, ProxySpec) and getattr(obj, "__module__", None) == module.__name__:
                if s.name in found and found[s.name] is not s:
                    raise RuntimeError(f"proxy name {s.name!r} is defined twice")
                found[s.name] = s
    return MappingProxyType(dict(sorted(found.items())))


def available() -> list[str]:
    """Names of all registered proxies, sorted."""
    return list(_specs())


def specs() -> Mapping[str, ProxySpec]:
    """Read-only mapping name -> ProxySpec."""
    return _specs()


def spec(name: str) -> ProxySpec:
    """Metadata of one proxy; unknown names raise KeyError listing the valid ones."""
    try:
        return _specs()[name]
    except KeyError:
        raise KeyError(f"unknown proxy {name!r}; available proxies: {', '.join(available())}") from None


def outputs() -> dict[str, tuple[str, bool]]:
    """Every result name -> (proxy that produces it, higher_is_better)."""
    out: dict[str, tuple[str, bool]] = {}
    for s in _specs().values():
        for o in s.outputs:
            out[o] = (s.name, s.orientation[o])
    return out
