"""Empirical neural tangent kernels: parameter Jacobians of a network at its current weights, their Gram
blocks and the spectrum summaries (lambda_min, lambda_max, trace, condition number) NTK proxies use.

The empirical NTK of a network f with parameters theta on inputs X is K(X, X') = J(X) J(X')^T with
J(X) = d f(X) / d theta (Jacot et al., NeurIPS 2018). TE-NAS (Chen et al., ICLR 2021) scores the
condition number of K on the summed output g(x) = sum_c f_c(x); Wu et al., ICLR 2024 (NAS-RobBench-201)
score lambda_min of the clean, adversarial and joint kernels.

Two BatchNorm conventions (``bn``):

- ``"frozen"``: every BatchNorm layer normalises with the mean and biased variance of the whole batch,
  computed once and then held constant. Samples are independent, so each Jacobian row is an ordinary
  per-sample gradient and all rows come from one ``vmap(grad)`` (``vmap(jacrev)`` per class) pass:
  cost linear in N.
- ``"batch"``: the exact Jacobian of the batched map X -> f(X) with train-mode BatchNorm coupling the
  samples (row i = d sum_c f_c(X)_i / d theta, gradients flowing through the batch statistics). This is
  the kernel the per-sample autograd loop of TE-NAS computes; it costs one forward and N backward passes
  of the batch (N*C for ``"full"``/``"trace"``), one row each by default, or ``chunk_size`` rows vectorised
  per pass (on CPU at N = 64 one row per pass measured 2.6-4.3x faster than 8 or all 64 rows per pass,
  and the channels-last layout used on CPU 1.2-2.0x faster than NCHW, results/perf/ntk_batch_rows.md).

Neither mode touches the caller's model: both work on a private deep copy.
"""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vjp, vmap

__all__ = ["Jacobian", "Spectrum", "jacobian", "gram", "mix", "spectrum", "OUTPUTS", "BN_MODES", "PARAMS"]

OUTPUTS = ("sum", "trace", "full")
BN_MODES = ("frozen", "batch")
PARAMS = ("all", "weights")

# Columns of the Jacobian cast to float64 at a time inside gram(): bounds the float64 working copy.
_GRAM_BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True, eq=False)
class Jacobian:
    """Rows of d f / d theta at the current weights, parameters concatenated in ``names`` order.

    ``rows`` is N x P for ``output="sum"`` (row n = gradient of sum_c f_c(x_n)) and N x C x P for
    ``"trace"`` and ``"full"`` (entry [n, c] = gradient of f_c(x_n)). ``output`` tells :func:`gram` which
    kernel to form; ``names`` / ``sizes`` locate each parameter's columns.
    """

    rows: torch.Tensor
    output: str
    names: tuple[str, ...]
    sizes: tuple[int, ...]

    @property
    def num_samples(self) -> int:
        return int(self.rows.shape[0])

    @property
    def num_params(self) -> int:
        return int(self.rows.shape[-1])


@dataclass(frozen=True)
class Spectrum:
    """Eigen-summary of a PSD kernel.

    ``degenerate`` is True when the kernel is numerically singular (lambda_max <= 0, or lambda_min <=
    n * eps_float64 * lambda_max): then ``lambda_min`` is reported as exactly 0.0 and ``cond`` as inf.
    Otherwise ``lambda_min`` > 0 and ``cond = lambda_max / lambda_min`` is finite.
    """

    lambda_min: float
    lambda_max: float
    trace: float
    cond: float
    degenerate: bool


def jacobian(model: nn.Module, x: torch.Tensor, *, output: str = "sum", bn: str = "frozen",
             chunk_size: int | None = None, params: str = "all", dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu") -> Jacobian:
    """Jacobian of ``model`` at its current weights on the batch ``x`` (see the module docstring).

    ``params="all"`` differentiates every parameter (conv, linear and BatchNorm affine weights and biases,
    as the NTK is defined over all trainable parameters); ``"weights"`` keeps only Conv/Linear weights.
    (TE-NAS itself keeps parameters whose name contains "weight", i.e. also BatchNorm gamma.)
    ``chunk_size`` bounds how many samples (``"frozen"``, default all) or output rows (``"batch"``, default
    one) are differentiated at once. The computation runs in ``dtype`` on ``device`` on a deep copy of
    ``model``; the model itself (weights, BatchNorm buffers, train/eval mode, requires_grad flags) is left
    exactly as it was.
    """
    _check_choice("output", output, OUTPUTS)
    _check_choice("bn", bn, BN_MODES)
    _check_choice("params", params, PARAMS)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    device = torch.device(device)
    x = _check_images(x, "x").to(device=device, dtype=dtype)
    net = _private_copy(model, device, dtype)
    names = _selected_parameters(net, params)
    if not names:
        raise ValueError(f"params={params!r} selects no parameter of {type(model).__name__}; "
                         "use params='all' or pass a model with Conv/Linear layers")
    theta = {n: p.detach() for n, p in net.named_parameters() if n in names}
    frozen = {n: p.detach() for n, p in net.named_parameters() if n not in names}
    if bn == "frozen":
        _freeze_batch_statistics(net, x)
        net.eval()
        rows = _per_sample_rows(net, theta, frozen, x, output, chunk_size)
    else:
        _drop_running_statistics(net)
        net.train()
        rows = _batched_rows(net, theta, frozen, x, output, chunk_size)
    ordered = tuple(theta)
    return Jacobian(rows=rows, output=output, names=ordered, sizes=tuple(theta[n].numel() for n in ordered))


def mix(j1: Jacobian, j2: Jacobian, beta: float) -> Jacobian:
    """J_beta = (1 - beta) J1 + beta J2, so gram(J_beta) = (1-b)^2 K11 + b(1-b)(K12 + K12^T) + b^2 K22."""
    _check_compatible(j1, j2)
    beta = _check_beta(beta)
    if beta == 0.0:
        return j1
    if beta == 1.0:
        return j2
    return Jacobian(rows=torch.lerp(j1.rows, j2.rows, beta), output=j1.output, names=j1.names, sizes=j1.sizes)


def gram(j1: Jacobian, j2: Jacobian | None = None) -> torch.Tensor:
    """Kernel block K = J1 J2^T in float64 (J2 defaults to J1).

    ``"sum"``: K[n, m] = <g'(x_n), g'(x'_m)> (N x M). ``"trace"``: K = sum_c J1_c J2_c^T (N x M), the NTK
    summed over classes. ``"full"``: the (N*C) x (M*C) NTK with rows ordered sample-major (n * C + c).
    Products are accumulated in float64 over column blocks, so float32 Jacobians lose no precision here.
    """
    j2 = j1 if j2 is None else j2
    _check_compatible(j1, j2)
    a, b = j1.rows, j2.rows
    if j1.output == "full":
        a = a.reshape(-1, a.shape[-1])
        b = b.reshape(-1, b.shape[-1])
    lead_a, lead_b = a.shape[:-1], b.shape[:-1]
    width = a.shape[-1]
    per_column = (math.prod(lead_a) + math.prod(lead_b)) * 8
    step = max(1, _GRAM_BLOCK_BYTES // max(per_column, 1))
    if a.dim() == 2:
        out = torch.zeros(lead_a[0], lead_b[0], dtype=torch.float64, device=a.device)
        for start in range(0, width, step):
            block_a = a[:, start:start + step].to(torch.float64)
            block_b = block_a if b is a else b[:, start:start + step].to(torch.float64)
            out.addmm_(block_a, block_b.T)
        return out
    out = torch.zeros(lead_a[0], lead_b[0], dtype=torch.float64, device=a.device)
    for start in range(0, width, step):
        block_a = a[..., start:start + step].to(torch.float64)
        block_b = block_a if b is a else b[..., start:start + step].to(torch.float64)
        out += torch.einsum("ncp,mcp->nm", block_a, block_b)
    return out


def spectrum(kernel: torch.Tensor) -> Spectrum:
    """lambda_min, lambda_max, trace and cond = lambda_max / lambda_min of a symmetric PSD kernel.

    Eigenvalues come from ``torch.linalg.eigvalsh`` in float64 on the symmetrised kernel. A Gram matrix is
    PSD, so a lambda_min at or below the round-off level n * eps * lambda_max (possibly slightly negative)
    means "singular": it is reported as 0.0 with cond = inf and ``degenerate=True`` (the all-zero kernel
    of a constant-output network gives lambda_min = lambda_max = trace = 0). Never returns NaN: a kernel
    with NaN or inf entries raises ValueError.
    """
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel must be a square 2-D tensor, got {getattr(kernel, 'shape', type(kernel))}")
    if kernel.shape[0] == 0:
        raise ValueError("kernel is empty (0 x 0); the Jacobian needs at least one sample")
    k = kernel.detach().to(torch.float64)
    if not torch.isfinite(k).all():
        raise ValueError("kernel contains NaN or inf (the network output or its Jacobian overflowed); "
                         "compute the Jacobian with dtype=torch.float64 or check the model's initialisation")
    k = 0.5 * (k + k.T)
    eig = torch.linalg.eigvalsh(k)
    lam_min, lam_max = float(eig[0]), float(eig[-1])
    trace = float(torch.diagonal(k).sum())
    tolerance = k.shape[0] * torch.finfo(torch.float64).eps * max(lam_max, 0.0)
    if lam_max <= 0.0 or lam_min <= tolerance:
        return Spectrum(0.0, max(lam_max, 0.0), max(trace, 0.0), math.inf, True)
    return Spectrum(lam_min, lam_max, trace, lam_max / lam_min, False)


# --------------------------------------------------------------------------------------------- helpers
def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_beta(beta: float) -> float:
    try:
        value = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"beta must be a number in [0, 1], got {beta!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta!r}")
    return value


def _check_images(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(f"{name} must be a batched tensor N x ..., got {getattr(x, 'shape', type(x).__name__)}")
    if x.shape[0] < 1:
        raise ValueError(f"{name} is an empty batch; pass at least one sample")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x.detach()


def _check_compatible(j1: Jacobian, j2: Jacobian) -> None:
    if not isinstance(j1, Jacobian) or not isinstance(j2, Jacobian):
        raise ValueError("gram/mix take zcproxy.ntk.Jacobian objects returned by jacobian()")
    if j1.output != j2.output:
        raise ValueError(f"Jacobians have different outputs ({j1.output!r} vs {j2.output!r}); "
                         "compute both with the same output=")
    if j1.names != j2.names or j1.rows.shape[1:] != j2.rows.shape[1:]:
        raise ValueError("Jacobians differ in parameters or classes; compute both from the same model with "
                         "the same params=")


def _private_copy(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    net = copy.deepcopy(model).to(device=device, dtype=dtype)
    for p in net.parameters():
        p.requires_grad_(False)
        p.grad = None
    return net


def _selected_parameters(net: nn.Module, params: str) -> set[str]:
    if params == "all":
        return {n for n, _ in net.named_parameters()}
    keep: set[str] = set()
    for module_name, module in net.named_modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) and module.weight is not None:
            keep.add(f"{module_name}.weight" if module_name else "weight")
    return keep


def _batchnorms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def _capture_batch_statistics(layers: list[nn.Module]) -> Iterator[dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]]:
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(module: nn.Module, inputs: tuple, _output: object) -> None:
        h = inputs[0]
        dims = [d for d in range(h.dim()) if d != 1]
        stats[module] = (h.mean(dim=dims), h.var(dim=dims, unbiased=False))

    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        yield stats
    finally:
        for handle in handles:
            handle.remove()


def _freeze_batch_statistics(net: nn.Module, x: torch.Tensor) -> None:
    """Make every BatchNorm of the private copy normalise with the batch mean / biased variance of ``x``.

    One train-mode pass records each layer's batch statistics (the same ones train-mode BatchNorm
    normalises with); they become the layer's running statistics, used by the eval-mode passes that follow.
    """
    layers = _batchnorms(net)
    if not layers:
        return
    net.train()
    with torch.no_grad(), _capture_batch_statistics(layers) as stats:
        net(x)
    for layer in layers:
        if layer not in stats:
            continue
        mean, var = stats[layer]
        layer.track_running_stats = True
        layer.running_mean = mean.detach().clone()
        layer.running_var = var.detach().clone()


def _drop_running_statistics(net: nn.Module) -> None:
    """Train-mode BatchNorm on the private copy without running-statistics updates."""
    for layer in _batchnorms(net):
        layer.track_running_stats = False
        layer.running_mean = None
        layer.running_var = None
        layer.num_batches_tracked = None


def _channels_last(theta: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor],
                   x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    def layout(t: torch.Tensor) -> torch.Tensor:
        return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t

    return ({n: layout(t) for n, t in theta.items()}, {n: layout(t) for n, t in frozen.items()}, layout(x))


def _flatten(grads: dict[str, torch.Tensor], order: tuple[str, ...], lead: int) -> torch.Tensor:
    """Concatenate ``grads`` (in ``order``) along a last axis after the ``lead`` leading dims.

    Each entry is copied into a preallocated result and then dropped from ``grads``, so the rows are held
    about once instead of twice (``torch.cat`` would keep every per-parameter block alive until it returns);
    the values are the same copies ``torch.cat`` makes."""
    shape = grads[order[0]].shape[:lead]
    count = math.prod(shape)
    widths = [grads[n].numel() // count for n in order]
    first = grads[order[0]]
    out = torch.empty(*shape, sum(widths), dtype=first.dtype, device=first.device)
    del first
    offset = 0
    for name, width in zip(order, widths):
        out[..., offset:offset + width] = grads.pop(name).reshape(*shape, width)
        offset += width
    return out


def _per_sample_rows(net: nn.Module, theta: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor],
                     x: torch.Tensor, output: str, chunk_size: int | None) -> torch.Tensor:
    buffers = dict(net.named_buffers())
    order = tuple(theta)

    def single(p: dict[str, torch.Tensor], sample: torch.Tensor) -> torch.Tensor:
        return functional_call(net, ({**p, **frozen}, buffers), (sample.unsqueeze(0),)).squeeze(0)

    if output == "sum":
        per_sample = vmap(grad(lambda p, s: single(p, s).sum()), in_dims=(None, 0))
        lead = 1
    else:
        per_sample = vmap(jacrev(single), in_dims=(None, 0))
        lead = 2
    step = chunk_size or x.shape[0]
    if step >= x.shape[0]:
        return _flatten(per_sample(theta, x), order, lead=lead)
    rows = None
    for start in range(0, x.shape[0], step):
        part = _flatten(per_sample(theta, x[start:start + step]), order, lead=lead)
        if rows is None:  # filled chunk by chunk: the rows are never held twice
            rows = part.new_empty((x.shape[0], *part.shape[1:]))
        rows[start:start + part.shape[0]] = part
        del part
    return rows


def _batched_rows(net: nn.Module, theta: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor],
                  x: torch.Tensor, output: str, chunk_size: int | None) -> torch.Tensor:
    """Rows of the batched map's Jacobian from one forward pass and one backward pass per ``chunk_size``
    outputs (default 1: a plain loop, which on CPU beats vectorising the N-fold batched backward).

    On CPU, images and 4-d weights go channels-last first: the N backward passes dominate, and they run
    faster in that layout (results/perf/ntk_batch_rows.md). Rows keep the logical parameter order.
    """
    buffers = dict(net.named_buffers())
    order = tuple(theta)
    if x.device.type == "cpu":
        theta, frozen, x = _channels_last(theta, frozen, x)

    def batched(p: dict[str, torch.Tensor]) -> torch.Tensor:
        out = functional_call(net, ({**p, **frozen}, buffers), (x,))
        return out.sum(dim=1) if output == "sum" else out

    out, pullback = vjp(batched, theta)
    count, step = out.numel(), chunk_size or 1
    rows = []
    for start in range(0, count, step):
        picked = torch.arange(start, min(start + step, count), device=out.device)
        # one-hot cotangents of this chunk only (a full N*C identity would be quadratic in memory)
        cotangents = torch.zeros(len(picked), count, dtype=out.dtype, device=out.device)
        cotangents[torch.arange(len(picked), device=out.device), picked] = 1
        if len(cotangents) == 1:
            (grads,) = pullback(cotangents[0].reshape(out.shape))
            rows.append(_flatten(grads, order, lead=0).unsqueeze(0))
        else:
            (grads,) = vmap(pullback)(cotangents.reshape(-1, *out.shape))
            rows.append(_flatten(grads, order, lead=1))
    flat = torch.cat(rows)
    return flat if output == "sum" else flat.reshape(*out.shape, -1)
