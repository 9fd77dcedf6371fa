"""Forward-hook helpers shared by the feature-based proxies; every hook is removed on exit."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

HookFn = Callable[[nn.Module, tuple, object], None]


@contextmanager
def forward_hooks(modules: Iterable[nn.Module], hook: HookFn) -> Iterator[None]:
    """Register ``hook`` as a forward hook on every module; all handles are removed on exit."""
    handles = []
    try:
        for m in modules:
            handles.append(m.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


def backbone(model: nn.Module) -> nn.Sequential | None:
    """The largest ``nn.Sequential`` in ``model`` (most children; first found on ties), or None.

    Used to find the block sequence of a network generically: for an NB201 ``TinyNetwork`` this is
    ``model.cells`` (every cell and reduction block); for a plain ``nn.Sequential`` it is the model.
    """
    best: nn.Sequential | None = None
    for m in model.modules():
        if isinstance(m, nn.Sequential) and (best is None or len(m) > len(best)):
            best = m
    return best


def replace_batchnorm(model: nn.Module) -> int:
    """Swap every BatchNorm layer of ``model`` (in place) for an identity; returns how many were swapped."""
    count = 0
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())
                count += 1
    return count


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every Conv2d / Linear layer, in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def check_batch(x: torch.Tensor | None, proxy: str, minimum: int = 1) -> torch.Tensor:
    """The proxy batch, or a ValueError naming the proxy when it is missing or too small."""
    if x is None:
        raise ValueError(f"proxy {proxy!r} needs an image batch; pass batch=(x, y) or let score() load one")
    if x.shape[0] < minimum:
        raise ValueError(f"proxy {proxy!r} needs at least {minimum} images, got a batch of {x.shape[0]}; "
                         f"use batch_size >= {minimum}")
    return x
