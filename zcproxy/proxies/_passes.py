"""Passes several proxies share within one ``score()`` call (memoised through ``ctx.shared``).

- :func:`train_pass`: ONE forward pass of a train-mode float32 copy on the proxy batch, from which, lazily,
  the cross-entropy backward (``(W, dL/dW)`` for snip / grad_norm / plain and fisher's activation
  saliency), the summed-output input gradient (jacov / epe_nas) and GraSP's Hessian-gradient product are
  taken. Each backward runs at most once per call; the graph is released once all three have run. GraSP's
  second backward frees the graph as it runs (its peak memory is then ~20 % lower); a cross-entropy or input
  gradient asked for after it rebuilds the same forward from a fresh copy (one extra forward, same bits).
- :func:`feature_pass`: ONE no-grad forward pass of a train-mode float32 copy on the proxy batch that
  records what NASWOT (binary ReLU codes) and MeCo (every 4-D module output of the first image) read.

Zen (Gaussian weights and inputs), linear regions (a thin copy on random patches), AZ-NAS (re-drawn
Kaiming weights), ZiCo (mini-batches) and CRoZe (no BatchNorm, absolute weights, float64) run networks or
inputs no other proxy uses, so they keep their own passes.

Values are bit-identical to each proxy's own pass: the forward is the same arithmetic (the input
normalisation layer is applied to the batch before the stripped copy, exactly the operation the layer
performs), hooks only read tensors, and ``torch.autograd.grad`` computes each requested gradient with the
same kernels whatever else is requested (checked by ``tests/test_shared_passes.py``). All hooks are removed
before a pass returns.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import check_batch, forward_hooks, weighted_layers
from ._registry import ProxyContext

__all__ = ["TrainPass", "train_pass", "FeaturePass", "feature_pass", "nwot_kernel"]

_FLOAT32_EXACT_UNITS = 2**24  # a float32 sum of at most this many 0/1 products is an exact integer


class TrainPass:
    """A train-mode float32 copy's forward on the proxy batch, with lazily computed backward passes."""

    def __init__(self, ctx: ProxyContext):
        name = ctx.spec.name if ctx.spec else "proxy"
        self._x = check_batch(ctx.x, name)
        self._labels = ctx.y
        self._copy = lambda: ctx.model_copy(bn="train", dtype=torch.float32)
        self._results: dict[str, Any] = {}
        self._fisher_acts: list[torch.Tensor] | None = None
        self._act_grads: tuple | None = None
        self._forward()

    def _forward(self) -> None:
        """(Re)build the differentiable forward: a fresh copy, the same arithmetic, the same bits."""
        from ._common import strip_input_normalization

        model = self._copy()
        normalize = strip_input_normalization(model)
        layers = [m for _, m in weighted_layers(model)]
        self.weights = [m.weight for m in layers]
        with torch.no_grad():
            inputs = normalize(self._x).detach()
        inputs.requires_grad_(True)
        activations: list[torch.Tensor] = []
        fan_in: list[int] = []

        def keep(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            activations.append(output)
            fan_in.append(module.weight[0].numel())

        with forward_hooks(layers, keep):
            output = model(inputs)
        self._model: nn.Module | None = model
        self._inputs: torch.Tensor | None = inputs
        self._output: torch.Tensor | None = output
        self._activations: list[torch.Tensor] | None = activations
        if "ce" not in self._results:  # fisher reads the activations its cross-entropy backward saw
            self._fisher_acts = activations
            self._act_grads = None
        self.fan_in = fan_in
        self.num_outputs = int(output.shape[-1])
        self._loss: torch.Tensor | None = None

    def _graph(self) -> None:
        """Make sure a forward graph is alive (GraSP's second backward consumes it)."""
        if self._output is None:
            self._forward()

    # ---------------------------------------------------------------------------------------- backward passes
    def _cross_entropy(self) -> torch.Tensor:
        if self._labels is None:
            raise ValueError("this proxy needs labels; pass batch=(x, y)")
        if self._loss is None:
            self._loss = F.cross_entropy(self._output, self._labels)
        return self._loss

    def _done(self, key: str, value: Any) -> Any:
        self._results[key] = value
        if {"ce", "input", "grasp"} <= set(self._results):  # every backward done: free the graph
            self._release()
        return value

    def _release(self) -> None:
        self._model = self._inputs = self._output = self._activations = self._loss = None
        if "fisher" in self._results or "ce" not in self._results:  # used, or replaced when the forward is rebuilt
            self._fisher_acts = self._act_grads = None

    def ce(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(W, dL/dW) per Conv2d / Linear weight (zeros where unused), L = mean cross-entropy. The same
        backward also yields dL/da for every weighted layer's output a (kept for :meth:`fisher`: autograd
        computes them on the way to the weights anyway)."""
        if "ce" in self._results:
            return self._results["ce"]
        if not self.weights:
            raise ValueError("the model has no Conv2d or Linear layer to score")
        self._graph()
        loss = self._cross_entropy()
        grads = torch.autograd.grad(loss, [*self.weights, *self._activations], retain_graph=True,
                                    allow_unused=True)
        weight_grads, self._act_grads = grads[:len(self.weights)], grads[len(self.weights):]
        pairs = [(w.detach(), torch.zeros_like(w) if g is None else g.detach())
                 for w, g in zip(self.weights, weight_grads)]
        return self._done("ce", pairs)

    def fisher(self) -> float:
        """sum over weighted-layer calls of m_l * sum_k 1/2 mean_n (sum_hw a * dL/da)^2 (float64)."""
        if "fisher" in self._results:
            return self._results["fisher"]
        self.ce()
        total = 0.0
        for act, grad, m in zip(self._fisher_acts, self._act_grads, self.fan_in):
            if grad is None:
                continue
            product = (act.detach() * grad).double()
            per_channel = product.sum(dim=tuple(range(2, product.dim()))) if product.dim() > 2 else product
            total += float(per_channel.pow(2).mean(0).mul(0.5).sum()) * m
        self._act_grads = self._fisher_acts = None
        return self._done("fisher", total)

    def input_gradient(self) -> tuple[torch.Tensor, int]:
        """Rows d(sum_n sum_c f_c(x_n)) / d x_n (N x D) w.r.t. the normalised images, and C."""
        if "input" in self._results:
            return self._results["input"]
        self._graph()
        (grad,) = torch.autograd.grad(self._output.sum(), self._inputs, retain_graph=True)
        return self._done("input", (grad.detach().reshape(grad.shape[0], -1), self.num_outputs))

    def grasp(self) -> float:
        """sum_l sum -W_l * (H g)_l in float64 (GraSP; see :mod:`zcproxy.proxies.grasp`)."""
        if "grasp" in self._results:
            return self._results["grasp"]
        if not self.weights:
            raise ValueError("grasp needs at least one Conv2d or Linear layer; the model has none")
        self._graph()
        loss = self._cross_entropy()
        grads = torch.autograd.grad(loss, self.weights, create_graph=True, allow_unused=True)
        pairs = [(w, g) for w, g in zip(self.weights, grads) if g is not None]
        inner = sum((g.detach() * g).sum() for _, g in pairs)
        value = 0.0
        if isinstance(inner, torch.Tensor) and inner.requires_grad:
            # the second backward frees the graph as it goes (~300 MB less peak on a 1M-parameter network
            # at N = 64); a later cross-entropy or input gradient rebuilds the forward
            hessian_grads = torch.autograd.grad(inner, [w for w, _ in pairs], allow_unused=True)
            value = float(sum((-(w.detach().double()) * hg.double()).sum()
                              for (w, _), hg in zip(pairs, hessian_grads) if hg is not None))
        del grads, pairs, inner
        self._release()
        return self._done("grasp", value)


def train_pass(ctx: ProxyContext) -> TrainPass:
    """The call's shared :class:`TrainPass` (built by the first proxy that needs it)."""
    return ctx.shared(("pass.train", "train", torch.float32), lambda: TrainPass(ctx))


class FeaturePass:
    """``codes``: (input > 0) of every ``nn.ReLU`` call (bool, N x D_r); ``maps``: image 0 of every 4-D
    module output (C x H x W, detached), in the order the modules finish."""

    def __init__(self, ctx: ProxyContext):
        x = check_batch(ctx.x, ctx.spec.name if ctx.spec else "proxy")
        model = ctx.model_copy(bn="train", dtype=torch.float32)
        n = x.shape[0]
        self.relus = sum(isinstance(m, nn.ReLU) for m in model.modules())
        self.codes: list[torch.Tensor] = []
        self.maps: list[torch.Tensor] = []

        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(module, nn.ReLU):
                self.codes.append(inputs[0].detach().reshape(n, -1) > 0)
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                self.maps.append(output[0].detach().clone())  # a copy: a view would keep the whole batch

        with forward_hooks(list(model.modules()), hook), torch.no_grad():
            model(x.to(torch.float32))


def feature_pass(ctx: ProxyContext) -> FeaturePass:
    """The call's shared :class:`FeaturePass`."""
    return ctx.shared(("pass.features", "train", torch.float32), lambda: FeaturePass(ctx))


def nwot_kernel(codes: list[torch.Tensor], n: int, device: torch.device) -> torch.Tensor:
    """sum_r c_r c_r^T + (1 - c_r)(1 - c_r)^T in float64, exactly.

    Per ReLU, with s = row sums of c (D_r units): c c^T + (1-c)(1-c)^T = D_r - s_i - s_j + 2 c c^T. Every
    entry is an integer, so one float32 product (exact while D_r < 2^24, else float64) and float64
    accumulation give the same bits as the two float64 products, at a quarter of the cost.
    """
    kernel = torch.zeros(n, n, dtype=torch.float64, device=device)
    for c in codes:
        d = c.shape[1]
        dtype = torch.float32 if d < _FLOAT32_EXACT_UNITS else torch.float64
        cf = c.to(dtype)
        agree = (cf @ cf.T).to(torch.float64)
        s = c.sum(dim=1).to(torch.float64)
        kernel = kernel + (float(d) - s[:, None] - s[None, :] + 2.0 * agree)
    return kernel
