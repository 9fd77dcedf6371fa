"""``zcproxy.score``: score one architecture with any set of proxies in one call."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from . import proxies as _proxies
from ._datasets import dataset_info
from .errors import ProxyError
from .space import NB201


@dataclass(frozen=True)
class ProxyResult:
    """One proxy value with the time it took, every setting that produced it, and flags."""

    value: float
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    higher_is_better: bool = True

    @property
    def degenerate(self) -> bool:
        return "degenerate" in self.flags


def resolve_proxies(proxies: str | Iterable[str]) -> list[_proxies.ProxySpec]:
    """'all', one name, or a list of names -> specs (unknown names raise KeyError listing valid ones)."""
    if isinstance(proxies, str):
        names = _proxies.available() if proxies == "all" else [p.strip() for p in proxies.split(",") if p.strip()]
    else:
        names = list(proxies)
    if not names:
        raise ValueError("no proxies selected; pass 'all' or names from zcproxy.proxies.available()")
    return [_proxies.spec(n) for n in dict.fromkeys(names)]


def build_model(arch: int | str, dataset: str, seed: int) -> nn.Module:
    """NB201 network for ``dataset`` initialised from ``seed`` without touching the global RNG."""
    info = dataset_info(dataset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return NB201.build(arch, num_classes=info.num_classes, dataset=info.name)


def _as_batch(batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    if hasattr(batch, "x") and hasattr(batch, "y"):
        x, y, meta = batch.x, batch.y, dict(getattr(batch, "meta", {}) or {})
    elif isinstance(batch, (tuple, list)) and len(batch) == 2:
        x, y, meta = batch[0], batch[1], {}
    elif isinstance(batch, torch.Tensor):
        x, y, meta = batch, None, {}
    else:
        raise ValueError("batch must be a zcproxy.data.Batch, an (x, y) pair or an image tensor, "
                         f"got {type(batch).__name__}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"batch images must be a tensor N x 3 x H x W, got {getattr(x, 'shape', type(x))}")
    if not torch.isfinite(x).all():
        raise ValueError("batch images contain NaN or inf")
    meta.setdefault("n", int(x.shape[0]))
    return x.to(device=device, dtype=torch.float32), (None if y is None else y.to(device=device, dtype=torch.long)), meta


def _arch_of(model_or_arch: Any) -> tuple[nn.Module | None, int | str | None]:
    if isinstance(model_or_arch, nn.Module):
        index = getattr(model_or_arch, "index", None)
        return model_or_arch, index if isinstance(index, int) else getattr(model_or_arch, "arch", None)
    if isinstance(model_or_arch, (int, str)) and not isinstance(model_or_arch, bool):
        return None, NB201.resolve(model_or_arch)
    raise ValueError(f"model_or_arch must be an nn.Module, an NB201 index or an arch string, got {model_or_arch!r}")


def planned_settings(proxy: str, *, dataset: str = "cifar10", seed: int = 0, batch_size: int | None = 64,
                     stand_in: bool = False, **options: Any) -> dict[str, Any]:
    """The settings ``score()`` records for ``proxy``: everything that changes its value.

    Proxies that read no data record ``batch_size=None`` and ``stand_in=False``. Options the proxy does
    not take are ignored; missing ones take the proxy's defaults. The device is not part of the settings.
    """
    s = _proxies.spec(proxy)
    uses_data = bool(s.needs)
    out: dict[str, Any] = {
        "proxy": s.name, "dataset": dataset_info(dataset).name, "seed": int(seed),
        "batch_size": int(batch_size) if uses_data and batch_size is not None else None,
        "stand_in": bool(stand_in) if uses_data else False,
        "bn": s.bn, "dtype": str(s.dtype).replace("torch.", ""),
    }
    out.update({k: options.get(k, v) for k, v in s.defaults.items()})
    return out


def score(model_or_arch: nn.Module | int | str, proxies: str | Sequence[str] = "all", batch: Any = None,
          dataset: str = "cifar10", seed: int = 0, device: str | torch.device = "cpu", *,
          batch_size: int = 64, stand_in: bool = False, data_dir: str | None = None,
          **options: Any) -> dict[str, ProxyResult]:
    """Score an architecture with zero-cost proxies.

    ``model_or_arch`` is a model (never modified) or an NB201 index / arch string (built for ``dataset``
    with weights initialised from ``seed``). ``batch`` defaults to ``batch_size`` seeded images of
    ``dataset`` (``stand_in=True`` uses CIFAR-10 images where the dataset's own are absent).
    ``options`` override proxy defaults (e.g. ``eps=3/255``, ``beta=0.5``); unknown options raise.
    Returns one :class:`ProxyResult` per proxy output, keyed by output name.
    """
    device = torch.device(device)
    info = dataset_info(dataset)
    specs = resolve_proxies(proxies)
    known = {k for s in specs for k in s.defaults}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for proxies {[s.name for s in specs]}; "
                         f"known options: {sorted(known) or 'none'}")
    model, arch = _arch_of(model_or_arch)
    if model is None:
        model = build_model(arch, info.name, seed)
    zero_output = isinstance(arch, int) and NB201.is_zero_output(arch)

    x = y = None
    batch_meta: dict[str, Any] = {}
    if any(s.needs for s in specs):
        if batch is None:
            from .data import proxy_batch

            batch = proxy_batch(info.name, n=batch_size, seed=seed, stand_in=stand_in, data_dir=data_dir)
        x, y, batch_meta = _as_batch(batch, device)
        if y is None and any("labels" in s.needs or "loss" in s.needs for s in specs):
            raise ValueError("these proxies need labels: "
                             f"{[s.name for s in specs if s.needs & {'labels', 'loss'}]}; pass batch=(x, y)")

    cache: dict = {}
    ctx = _proxies.ProxyContext(model, x=x, y=y, num_classes=info.num_classes, device=device, seed=seed,
                                dataset=info.name, arch=arch, zero_output=zero_output, cache=cache)
    n = int(x.shape[0]) if x is not None else None
    stand = bool(batch_meta.get("stand_in", stand_in)) if x is not None else False
    results: dict[str, ProxyResult] = {}
    for s in specs:
        ctx._begin(s, options)
        start = time.perf_counter()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                raw = s.fn(ctx)
        except ProxyError:
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised with proxy and arch named
            raise ProxyError(s.name, arch, f"{type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - start
        values = raw if isinstance(raw, dict) else {s.name: raw}
        if set(values) != set(s.outputs):
            raise ProxyError(s.name, arch, f"returned outputs {sorted(values)}, expected {list(s.outputs)}")
        flags = set(ctx.flags)
        if zero_output:
            flags.add("degenerate")
        settings = planned_settings(s.name, dataset=info.name, seed=seed, batch_size=n, stand_in=stand,
                                    **ctx.options)
        for name in s.outputs:
            v = values[name]
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ProxyError(s.name, arch, f"output {name!r} is not a number: {v!r}") from None
            if math.isnan(v):
                raise ProxyError(s.name, arch, f"output {name!r} is NaN")
            results[name] = ProxyResult(v, seconds, dict(settings), frozenset(flags), s.orientation[name])
    return results
