"""Shared pieces of the NAS-Bench-Suite-Zero proxies: input-normalisation stripping, the cross-entropy
weight gradients (snip / grad_norm / plain), the summed-output input gradient (jacov / epe_nas) and the
row-correlation matrix they both use.

The reference implementations (zero-cost-nas "foresight", NASLib) feed *normalised* images to networks
that contain no normalisation layer. zcproxy networks normalise [0, 1] pixels in their first layer, so
proxies that feed synthetic inputs (synflow's ones, Zen's Gaussians) or differentiate with respect to
the input (jacov, epe_nas) first strip that layer from their private copy to see the same tensors as the
references.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..space._model import Normalize
from ._registry import ProxyContext


def strip_input_normalization(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Replace every ``Normalize`` layer of ``model`` (a private copy, edited in place) with an identity.

    Returns the removed transform (the layers applied in registration order; the identity when the
    model has none), so ``model(transform(x))`` equals the original model on ``x``.
    """
    removed: list[nn.Module] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Normalize):
                setattr(parent, name, nn.Identity())
                removed.append(child)

    def transform(x: torch.Tensor) -> torch.Tensor:
        for layer in removed:
            x = layer(x)
        return x

    return transform


def ce_weight_gradients(ctx: ProxyContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(W, dL/dW)`` for every Conv2d / Linear weight, L = mean cross-entropy of the batch.

    The cross-entropy backward of the call's shared train-mode float32 forward
    (:func:`zcproxy.proxies._passes.train_pass`; snip, grad_norm, plain, fisher and grasp share that
    forward). Weights the loss does not reach get a zero gradient.
    """
    from ._passes import train_pass

    return train_pass(ctx).ce()


def summed_output_input_gradient(ctx: ProxyContext) -> tuple[torch.Tensor, int]:
    """Rows ``d(sum_n sum_c f_c(x_n)) / d x_n`` (N x D), taken with respect to the normalised images, and
    the number of network outputs C.

    As in the jacov / EPE-NAS references: one backward pass of the summed logits through a train-mode
    float32 copy, so BatchNorm batch statistics couple the samples exactly as they do there. Taken from
    the call's shared train-mode forward (:func:`zcproxy.proxies._passes.train_pass`).
    """
    from ._passes import train_pass

    return train_pass(ctx).input_gradient()


def row_correlations(rows: torch.Tensor) -> torch.Tensor | None:
    """Pearson correlation matrix of the rows of ``rows`` in float64 (as ``numpy.corrcoef``), entries
    clipped to [-1, 1]; None when a row is constant (its correlation is undefined)."""
    r = rows.to(torch.float64)
    centred = r - r.mean(dim=1, keepdim=True)
    norms = torch.linalg.vector_norm(centred, dim=1)
    if r.shape[1] < 2 or bool((norms == 0).any()):
        return None
    unit = centred / norms[:, None]
    return (unit @ unit.T).clamp(-1.0, 1.0)
