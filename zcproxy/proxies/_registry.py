"""Proxy metadata and the context every proxy receives.

A proxy is a plain function ``fn(ctx: ProxyContext) -> float | dict[str, float]`` decorated with
:func:`proxy`, which only attaches a frozen :class:`ProxySpec` to it. The scorer owns copying, device,
dtype, BatchNorm mode and seeding (through the context), so proxy bodies stay pure.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Hashable, Mapping, TypeVar

import torch
from torch import nn

NEEDS = frozenset({"data", "labels", "loss"})
BN_MODES = ("train", "eval")
COSTS = ("static", "forward", "backward", "jacobian", "attack")

RENAMED_OPTIONS: Mapping[str, Mapping[str, str]] = {"croze": {"eps": "croze_eps"}}
"""Retired option names, per proxy: old -> new. ``eps`` is the NTK attack radius only; CRoZe's perturbation
is ``croze_eps``. Stores are migrated (:mod:`zcproxy.store`), and passing an old name is an error naming the
new one."""

ADDED_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    name: {"attack_dtype": "float32"} for name in ("ntk_robust", "ntk_joint_clean", "ntk_joint_robust")}
"""Options added after results were stored, per proxy: option -> the value that reproduces rows stored without
it. The NTK attack precision became an option (default float64) after float32 attacks had been stored; stores
are migrated (:mod:`zcproxy.store`) so those rows say ``attack_dtype="float32"`` and never match float64 runs."""

T = TypeVar("T")


def check_options(specs: "list[ProxySpec] | tuple[ProxySpec, ...]", options: Mapping[str, Any]) -> None:
    """ValueError for options no selected proxy takes, naming the new name of a retired one."""
    known = {k for s in specs for k in s.defaults}
    unknown = sorted(set(options) - known)
    if not unknown:
        return
    renamed = [f"{old!r} of {proxy} is now {new!r}" for s in specs for proxy, table in RENAMED_OPTIONS.items()
               if s.name == proxy for old, new in table.items() if old in unknown]
    raise ValueError(f"unknown option(s) {unknown} for proxies {[s.name for s in specs]}"
                     + (f" ({'; '.join(renamed)})" if renamed else "")
                     + f"; known options: {sorted(known) or 'none'}")
ProxyFn = Callable[["ProxyContext"], "float | dict[str, float]"]


@dataclass(frozen=True)
class ProxySpec:
    """What a proxy needs and how to read it."""

    name: str
    fn: ProxyFn = field(repr=False, compare=False)
    needs: frozenset[str]
    bn: str
    dtype: torch.dtype
    higher_is_better: bool
    reference: str
    cost: str
    outputs: tuple[str, ...]
    defaults: Mapping[str, Any]
    orientation: Mapping[str, bool]  # per output: higher is better

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "needs": ",".join(sorted(self.needs)) or "-", "bn": self.bn,
            "dtype": str(self.dtype).replace("torch.", ""), "higher_is_better": self.higher_is_better,
            "cost": self.cost, "outputs": ",".join(self.outputs), "reference": self.reference,
        }


def proxy(name: str, *, reference: str, cost: str, needs: tuple[str, ...] = (), bn: str = "train",
          dtype: torch.dtype = torch.float32, higher_is_better: bool = True,
          outputs: tuple[str, ...] | None = None, defaults: Mapping[str, Any] | None = None,
          orientation: Mapping[str, bool] | None = None) -> Callable[[ProxyFn], ProxyFn]:
    """Mark ``fn`` as the proxy ``name`` (attaches ``fn.__proxy_spec__``; registers nothing globally).

    ``orientation`` overrides ``higher_is_better`` per output of a multi-output proxy.
    """
    bad = set(needs) - NEEDS
    if bad:
        raise ValueError(f"proxy {name!r}: unknown needs {sorted(bad)}; valid: {sorted(NEEDS)}")
    if bn not in BN_MODES:
        raise ValueError(f"proxy {name!r}: bn must be one of {BN_MODES}, got {bn!r}")
    if cost not in COSTS:
        raise ValueError(f"proxy {name!r}: cost must be one of {COSTS}, got {cost!r}")
    outs = tuple(outputs) if outputs else (name,)
    orient = {o: higher_is_better for o in outs}
    orient.update(orientation or {})

    def attach(fn: ProxyFn) -> ProxyFn:
        fn.__proxy_spec__ = ProxySpec(  # type: ignore[attr-defined]
            name=name, fn=fn, needs=frozenset(needs), bn=bn, dtype=dtype,
            higher_is_better=higher_is_better, reference=reference, cost=cost, outputs=outs,
            defaults=dict(defaults or {}), orientation=orient,
        )
        return fn

    return attach


class ProxyContext:
    """Everything a proxy may use. Never mutate ``model``: take :meth:`model_copy`."""

    def __init__(self, model: nn.Module, *, x: torch.Tensor | None, y: torch.Tensor | None,
                 num_classes: int, device: torch.device, seed: int, dataset: str,
                 arch: int | str | None, zero_output: bool, cache: dict, space: Any = None):
        self.model = model
        self.x = x
        self.y = y
        self.num_classes = num_classes
        self.device = device
        self.seed = seed
        self.dataset = dataset
        self.arch = arch
        self.space = space  # the SearchSpace ``arch`` belongs to (None when unknown)
        self.zero_output = zero_output
        self._cache = cache
        self.spec: ProxySpec | None = None
        self.options: dict[str, Any] = {}
        self.call_options: Mapping[str, Any] = MappingProxyType({})
        self.flags: set[str] = set()

    def _begin(self, spec: ProxySpec, options: Mapping[str, Any]) -> None:
        self.spec = spec
        self.options = {k: options.get(k, v) for k, v in spec.defaults.items()}
        self.call_options = MappingProxyType(dict(options))  # every option of the score() call, as given
        self.flags = set()

    def model_copy(self, bn: str | None = None, dtype: torch.dtype | None = None) -> nn.Module:
        """A fresh deep copy on ``device`` in the spec's (or given) BN mode and dtype, grads cleared."""
        mode = bn or (self.spec.bn if self.spec else "train")
        if mode not in BN_MODES:
            raise ValueError(f"bn must be one of {BN_MODES}, got {mode!r}")
        target = dtype or (self.spec.dtype if self.spec else torch.float32)
        m = copy.deepcopy(self.model).to(device=self.device, dtype=target)
        m.train(mode == "train")
        for p in m.parameters():
            p.requires_grad_(True)
            p.grad = None
        return m

    def shared(self, key: Hashable, compute: Callable[[], T], *, keep: bool = True) -> T:
        """Memoise ``compute()`` under ``key`` for the duration of one score() call. ``keep=False`` returns
        the memoised value when there is one but does not store a new one (large intermediates used once)."""
        if key in self._cache:
            return self._cache[key]
        value = compute()
        if keep:
            self._cache[key] = value
        return value

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from (seed, offset); proxies never touch the global RNG."""
        g = torch.Generator(device="cpu")
        g.manual_seed((int(self.seed) * 1_000_003 + int(offset)) % (2**63 - 1))
        return g

    def flag(self, name: str) -> None:
        self.flags.add(name)
