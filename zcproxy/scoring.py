"""``zcproxy.score``: score one architecture with any set of proxies in one call."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from . import proxies as _proxies
from ._datasets import dataset_info
from .errors import ProxyError
from .space import DEFAULT_SPACE, SearchSpace, get_space
from .space import label as _key_label


@dataclass(frozen=True)
class ProxyResult:
    """One proxy value with the time it took, every setting that produced it, and flags.

    A proxy that failed gives ``value`` NaN, the flag ``failed`` and its message in ``error``.
    """

    value: float
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    higher_is_better: bool = True
    error: str | None = None

    @property
    def degenerate(self) -> bool:
        return "degenerate" in self.flags

    @property
    def failed(self) -> bool:
        return "failed" in self.flags


def resolve_proxies(proxies: str | Iterable[str]) -> list[_proxies.ProxySpec]:
    """'all', one name, or a list of names -> specs (unknown names raise KeyError listing valid ones)."""
    if isinstance(proxies, str):
        names = _proxies.available() if proxies == "all" else [p.strip() for p in proxies.split(",") if p.strip()]
    else:
        names = list(proxies)
    if not names:
        raise ValueError("no proxies selected; pass 'all' or names from zcproxy.proxies.available()")
    return [_proxies.spec(n) for n in dict.fromkeys(names)]


def build_model(arch: int | str, dataset: str, seed: int, space: str | SearchSpace = DEFAULT_SPACE) -> nn.Module:
    """The network of ``arch`` in ``space`` for ``dataset``, initialised from ``seed`` without touching the
    global RNG."""
    info = dataset_info(dataset)
    sp = get_space(space)
    key = sp.key(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return sp.build(key, num_classes=info.num_classes, dataset=info.name)


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


def _arch_of(model_or_arch: Any, space: SearchSpace) -> tuple[nn.Module | None, str | None]:
    """(the model when one was given, else None; the canonical key in ``space``, or the model's own name)."""
    if isinstance(model_or_arch, nn.Module):
        index = getattr(model_or_arch, "index", None)
        return model_or_arch, index if isinstance(index, int) else getattr(model_or_arch, "arch", None)
    if isinstance(model_or_arch, bool) or model_or_arch is None:
        raise ValueError(f"model_or_arch must be an nn.Module or an architecture of search space {space.name!r}, "
                         f"got {model_or_arch!r}")
    return None, space.key(model_or_arch)


def _degenerate_model(model: nn.Module, space: SearchSpace) -> bool:
    """Whether a given model is a degenerate architecture of ``space``: models built by a space carry their
    architecture in ``.arch``; any other model (or one of another space) is not flagged."""
    arch = getattr(model, "arch", None)
    if not isinstance(arch, str):
        return False
    try:
        return bool(space.is_degenerate(space.key(arch)))
    except (ValueError, TypeError, KeyError):
        return False


def planned_settings(proxy: str, *, dataset: str = "cifar10", seed: int = 0, batch_size: int | None = 64,
                     stand_in: bool = False, space_settings: Mapping[str, Any] | None = None,
                     **options: Any) -> dict[str, Any]:
    """The settings ``score()`` records for ``proxy``: everything that changes its value.

    Proxies that read no data record ``batch_size=None`` and ``stand_in=False``. Options the proxy does
    not take are ignored; missing ones take the proxy's defaults. ``space_settings`` (the search space's
    ``settings()``: its name and macro options; NB201 records none) are added. The device is not part
    of the settings. ``torch_threads`` (``torch.get_num_threads()`` now) is recorded but left out of the
    settings hash (:data:`zcproxy.store.UNHASHED_SETTINGS`): it changes float rounding only.
    """
    s = _proxies.spec(proxy)
    uses_data = bool(s.needs)
    out: dict[str, Any] = {
        "proxy": s.name, "dataset": dataset_info(dataset).name, "seed": int(seed),
        "batch_size": int(batch_size) if uses_data and batch_size is not None else None,
        "stand_in": bool(stand_in) if uses_data else False,
        "bn": s.bn, "dtype": str(s.dtype).replace("torch.", ""), "torch_threads": torch.get_num_threads(),
    }
    out.update({k: options.get(k, v) for k, v in s.defaults.items()})
    clash = sorted(set(space_settings or {}) & set(out))
    if clash:
        raise ValueError(f"search-space settings {clash} clash with proxy settings of the same name; rename them "
                         "in the space's settings()")
    out.update(dict(space_settings or {}))
    return out


def score(model_or_arch: nn.Module | int | str, proxies: str | Sequence[str] = "all", batch: Any = None,
          dataset: str = "cifar10", seed: int = 0, device: str | torch.device = "cpu", *,
          batch_size: int = 64, stand_in: bool = False, data_dir: str | None = None, strict: bool = False,
          space: str | SearchSpace = DEFAULT_SPACE, **options: Any) -> dict[str, ProxyResult]:
    """Score an architecture with zero-cost proxies.

    ``model_or_arch`` is a model (never modified) or an architecture of ``space`` in any form the space
    resolves (NB201: index or arch string; DARTS: genotype string), built for ``dataset`` with weights
    initialised from ``seed``; the space's ``settings()`` are recorded in every result. ``batch`` defaults to ``batch_size`` seeded images of
    ``dataset`` (``stand_in=True`` uses CIFAR-10 images where the dataset's own are absent).
    ``options`` override proxy defaults (e.g. ``eps=3/255``, ``beta=0.5``); unknown or retired options raise.
    Returns one :class:`ProxyResult` per proxy output, keyed by output name. A proxy that fails (an
    exception, a NaN value, or a model whose output on the batch is NaN or inf) gives results flagged
    ``failed`` with NaN values and the message in ``error``; the other proxies are still returned.
    ``strict=True`` raises :class:`ProxyError` on the first failure instead.
    The process's memory allocator is left as it is; ``MALLOC_MMAP_THRESHOLD_=131072`` in the environment
    (or the CLI's ``--low-memory``) lowers the peak memory at a longer run time (results/perf/allocator.md).
    """
    device = torch.device(device)
    info = dataset_info(dataset)
    specs = resolve_proxies(proxies)
    _proxies.check_options(specs, options)
    sp = get_space(space)
    model, key = _arch_of(model_or_arch, sp)
    space_settings: dict[str, Any] = {}
    zero_output = False
    arch = key
    if model is None:
        model = build_model(key, info.name, seed, sp)
        space_settings = dict(sp.settings())
        zero_output = bool(sp.is_degenerate(key))
        arch = _key_label(key)
    else:
        zero_output = _degenerate_model(model, sp)

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
                                dataset=info.name, arch=arch, zero_output=zero_output, cache=cache,
                                space=sp)
    n = int(x.shape[0]) if x is not None else None
    stand = bool(batch_meta.get("stand_in", stand_in)) if x is not None else False
    label = None if arch is not None else type(model).__name__
    nonfinite = _nonfinite_output(model, x, info.image_size, device, seed)
    results: dict[str, ProxyResult] = {}
    for s in specs:
        ctx._begin(s, options)
        start = time.perf_counter()
        try:
            if nonfinite and s.cost != "static":
                raise ProxyError(s.name, arch, f"the model's output on the proxy batch is {nonfinite}; its "
                                 "weights or forward are broken, so no proxy value means anything", model=label)
            values = _run_proxy(s, ctx, seed, arch, label)
        except Exception as exc:  # noqa: BLE001 - every failure is named, then raised or recorded
            error = _named(exc, s.name, arch, label)
            if strict:
                if error is exc:
                    raise
                raise error from exc
            values = {o: math.nan for o in s.outputs}
        else:
            error = None
        seconds = time.perf_counter() - start
        flags = set(ctx.flags) | ({"failed"} if error is not None else set())
        if zero_output:
            flags.add("degenerate")
        if nonfinite:
            flags.add("nonfinite_output")
        settings = planned_settings(s.name, dataset=info.name, seed=seed, batch_size=n, stand_in=stand,
                                    space_settings=space_settings, **ctx.options)
        for name in s.outputs:
            results[name] = ProxyResult(values[name], seconds, dict(settings), frozenset(flags), s.orientation[name],
                                        None if error is None else str(error))
    return results


def _named(exc: Exception, proxy: str, arch: int | str | None, label: str | None) -> ProxyError:
    """``exc`` as a ProxyError naming the proxy and the architecture (or the model's class)."""
    if not isinstance(exc, ProxyError):
        return ProxyError(proxy, arch, f"{type(exc).__name__}: {exc}", model=label)
    if exc.arch is None and exc.model is None and label:
        return ProxyError(exc.proxy, None, exc.cause, model=label)
    return exc


def _run_proxy(s: _proxies.ProxySpec, ctx: _proxies.ProxyContext, seed: int, arch: int | str | None,
               label: str | None) -> dict[str, float]:
    """Run one proxy under its own seed; its outputs as floats (a missing output or NaN raises ProxyError)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        raw = s.fn(ctx)
    values = raw if isinstance(raw, dict) else {s.name: raw}
    if set(values) != set(s.outputs):
        raise ProxyError(s.name, arch, f"returned outputs {sorted(values)}, expected {list(s.outputs)}", model=label)
    out: dict[str, float] = {}
    for name in s.outputs:
        try:
            out[name] = float(values[name])
        except (TypeError, ValueError):
            raise ProxyError(s.name, arch, f"output {name!r} is not a number: {values[name]!r}", model=label) from None
        if math.isnan(out[name]):
            raise ProxyError(s.name, arch, f"output {name!r} is NaN", model=label)
    return out


_PROBE_IMAGES = 8


def _nonfinite_output(model: nn.Module, x: torch.Tensor | None, image_size: int, device: torch.device,
                      seed: int) -> str | None:
    """'NaN' or 'inf' when a train-mode copy of ``model`` gives a non-finite output on the first
    ``_PROBE_IMAGES`` images of ``x``, else None.

    Broken weights or a broken forward show on any images, so the probe costs an eighth of a forward of a
    64-image batch; a proxy whose own pass meets a non-finite value on other images still fails by itself
    (a NaN value raises). Without a batch, two seeded uniform images of the dataset's size are used. A
    forward that raises returns None: the proxies then report the error themselves.
    """
    if x is None:
        x = torch.rand((2, 3, image_size, image_size), generator=torch.Generator().manual_seed(seed)).to(device)
    x = x[:_PROBE_IMAGES]
    modes = {m: m.training for m in model.modules()}
    state = {name: t.detach().to(device=device, dtype=torch.float32 if t.is_floating_point() else t.dtype, copy=True)
             for name, t in (*model.named_parameters(), *model.named_buffers())}
    try:  # a train-mode forward on copies of the weights and buffers (BatchNorm updates the copies)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.train()
            out = torch.func.functional_call(model, state, (x,), tie_weights=False, strict=False)
    except Exception:  # noqa: BLE001 - the proxies report a failing forward with their own context
        return None
    finally:
        for module, training in modes.items():
            module.training = training
    if not isinstance(out, torch.Tensor) or out.is_complex():
        return None
    if torch.isnan(out).any():
        return "NaN"
    return "inf" if torch.isinf(out).any() else None
