"""VKDNW: entropy of the Fisher-information spectrum at initialisation (Tybl & Neumann, CVPR 2025)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call

from ._common import strip_input_normalization
from ._hooks import check_batch
from ._registry import ProxyContext, proxy
from ._reinit import kaiming_normal_fan_in_init, rows_identical

if TYPE_CHECKING:
    import pandas as pd

ALPHA = 0.05  # label smoothing of the softmax in the reference's Fisher
_CHUNK = 16  # samples per Jacobian pass (bounds memory; the Fisher is a sum over samples)


def _check(tensors: object, init: object) -> tuple[int, str]:
    if isinstance(tensors, bool) or not isinstance(tensors, int) or tensors < 1:
        raise ValueError(f"vkdnw_tensors must be a positive int, got {tensors!r}")
    if init not in ("kaiming", "none"):
        raise ValueError(f"vkdnw_init must be 'kaiming' or 'none', got {init!r}")
    return tensors, str(init)


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    return (model.get_submodule(path) if path else model), attr


def _entry0_tangent(module: nn.Module, attr: str, inputs: tuple) -> tuple[tuple, torch.Tensor] | None:
    """d output / d theta[0] for the common layers, in closed form: (index of the one output channel it
    touches, its value there); None for any other module (the caller falls back to ``jvp``).

    Conv2d weight[0, 0, 0, 0]: input channel 0 (zero-padded) read at the kernel's first tap of every
    output position; Linear weight[0, 0]: input feature 0; BatchNorm (eval, running statistics)
    weight[0]: the normalised channel 0; every bias[0]: ones. All land in output channel 0.
    """
    x = inputs[0] if len(inputs) == 1 and isinstance(inputs[0], torch.Tensor) else None
    if x is None:
        return None
    if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros" and not isinstance(module.padding, str):
        n, _, h, w = x.shape
        kh, kw = module.kernel_size
        (sh, sw), (dh, dw), (ph, pw) = module.stride, module.dilation, module.padding
        ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if attr == "bias":
            return (slice(None), 0), x.new_ones(n, ho, wo)
        if attr == "weight":
            xp = torch.nn.functional.pad(x[:, 0], (pw, pw, ph, ph))
            return (slice(None), 0), xp[:, : (ho - 1) * sh + 1: sh, : (wo - 1) * sw + 1: sw]
    if isinstance(module, nn.Linear):
        if attr == "bias":
            return (Ellipsis, 0), x.new_ones(x.shape[:-1])
        if attr == "weight":
            return (Ellipsis, 0), x[..., 0]
    if (isinstance(module, nn.modules.batchnorm._BatchNorm) and not module.training
            and module.running_mean is not None and x.dim() >= 2):
        if attr == "bias":
            return (slice(None), 0), x.new_ones(x[:, 0].shape)
        if attr == "weight":
            return (slice(None), 0), (x[:, 0] - module.running_mean[0]) / torch.sqrt(module.running_var[0] + module.eps)
    return None


def logit_jacobian(model: nn.Module, x: torch.Tensor, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample Jacobian (N x C x P) of the logits with respect to entry 0 of each parameter in ``names``,
    and the logits (N x C), for a model whose samples are independent (eval-mode BatchNorm).

    Each owning module's output gets ``+ delta_k[n] * T_k[n]`` with delta_k = 0 (N values) and
    T_k = d output / d theta_k[0] (closed form for Conv2d, Linear and eval BatchNorm, else one forward-mode
    ``jvp`` of that module alone), so the value is unchanged
    and d(sum_n f_c(x_n)) / d delta_k[n] = d f_c(x_n) / d theta_k[0]: C batched backward passes give every
    row. A module used several times adds its term at every call (the total derivative).
    """
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:  # only the deltas need gradients
        p.requires_grad_(False)
    n = x.shape[0]
    deltas = [torch.zeros(n, dtype=x.dtype, device=x.device, requires_grad=True) for _ in names]
    by_module: dict[nn.Module, list[tuple[str, torch.Tensor]]] = {}
    for name, delta in zip(names, deltas):
        module, attr = _owner(model, name)
        by_module.setdefault(module, []).append((attr, delta))
    inside = [False]

    def full_tangent(module: nn.Module, attr: str, inputs: tuple) -> torch.Tensor:
        own = {k: v.detach() for k, v in module.named_parameters(recurse=False)}
        base = own[attr]
        tangent = torch.zeros_like(base).flatten().index_fill_(0, torch.tensor([0], device=base.device), 1.0)

        def call(w: torch.Tensor) -> torch.Tensor:
            return functional_call(module, {**own, attr: w}, inputs)

        inside[0] = True
        try:
            return torch.func.jvp(call, (base,), (tangent.view_as(base),))[1].detach()
        finally:
            inside[0] = False

    def add_terms(module: nn.Module, inputs: tuple, output: object) -> torch.Tensor | None:
        if inside[0]:
            return None
        if not isinstance(output, torch.Tensor) or output.shape[:1] != (n,):
            raise ValueError(f"vkdnw: module {type(module).__name__} owning a scored parameter does not "
                             "return one tensor with a batch dimension")
        total = output
        for attr, delta in by_module[module]:
            fast = _entry0_tangent(module, attr, inputs)
            if fast is None:  # any other module: one forward-mode pass of the module alone
                t = full_tangent(module, attr, inputs)
                total = total + delta.view(n, *([1] * (output.dim() - 1))) * t
            else:  # d output / d theta[0] touches one output channel only
                index, t = fast
                total = total.clone() if total is output else total
                total[index] = total[index] + delta.view(n, *([1] * (t.dim() - 1))) * t
        return total

    handles = [m.register_forward_hook(add_terms) for m in by_module]
    try:
        with torch.enable_grad():
            logits = model(x)
            rows = []
            for c in range(logits.shape[1]):
                grads = torch.autograd.grad(logits[:, c].sum(), deltas, retain_graph=c + 1 < logits.shape[1],
                                            allow_unused=True)
                rows.append(torch.stack([torch.zeros(n, dtype=x.dtype, device=x.device) if g is None else g
                                         for g in grads], dim=1))
    finally:
        for h in handles:
            h.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
    return torch.stack(rows, dim=1).detach(), logits.detach()


def fisher_information(model: nn.Module, x: torch.Tensor, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """F = mean_n J_n^T (diag(p_n) - p_n p_n^T) J_n over the entries 0 of the parameters ``names``, and the
    logits. J_n (C x P) is the Jacobian of sample n's logits; p_n = (1 - alpha) softmax + alpha / C."""
    fisher = torch.zeros(len(names), len(names), dtype=torch.float64, device=x.device)
    outs = []
    for chunk in x.split(_CHUNK):
        j, out = logit_jacobian(model, chunk, names)
        j, out = j.to(torch.float64), out.to(torch.float64)
        outs.append(out)
        p = torch.softmax(out, dim=1) * (1.0 - ALPHA) + ALPHA / out.shape[1]
        cov = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
        fisher += torch.einsum("nci,ncd,ndj->ij", j, cov, j)
    return fisher / x.shape[0], torch.cat(outs)


def decile_entropy(eigenvalues: torch.Tensor) -> float:
    """-sum t log(t + 1e-10), t = the 10 %, ..., 90 % quantiles of the eigenvalues over their L1 norm + 1e-10."""
    q = torch.quantile(eigenvalues.to(torch.float64), torch.arange(1, 10, dtype=torch.float64) / 10)
    t = q / (q.abs().sum() + 1e-10)
    return float(-(t * torch.log(t + 1e-10)).sum())


@proxy("vkdnw", needs=("data",), bn="eval", dtype=torch.float64, higher_is_better=True, cost="jacobian",
       outputs=("vkdnw", "vkdnw_dim"), defaults={"vkdnw_tensors": 128, "vkdnw_init": "kaiming"},
       reference="Tybl & Neumann, CVPR 2025 (VKDNW), ondratybl/VKDNW NB201/ZeroShotProxy/compute_vkdnw_score.py")
def vkdnw(ctx: ProxyContext) -> dict[str, float]:
    """``vkdnw`` = -sum_k t_k log t_k, t = the deciles of the eigenvalues of the Fisher information F
    normalised to sum 1; ``vkdnw_dim`` = the number of parameter tensors.

    As the reference (``compute_nas_score`` with its NB201 defaults): a copy re-initialised Kaiming-normal
    (fan_in, ReLU gain; biases 0, BatchNorm affine 1 / 0; ``vkdnw_init='none'`` keeps the weights) and put
    in eval mode; a batch of standard Gaussian inputs of the proxy batch's shape (the reference feeds
    ``randn`` when no loader is given, which is its NB201 default, so the input normalisation layer is
    stripped); the parameters are entry 0 (the first element of the flattened tensor) of each of the first
    ``vkdnw_tensors`` = 128 parameter tensors in ``named_parameters()`` order (the reference's NB201 script
    defaults ``params_grad_len=128``, ``p=0``; p = 0 is entry 0 as a relative index in the revision that
    introduced it, while the final revision reads p as a count of evenly spaced entries, for which p = 0
    selects none and p = 1 selects entry 0 again); F = mean_n J_n^T S_n J_n
    with J_n the Jacobian of sample n's logits with respect to those entries and S_n = diag(p_n) - p_n
    p_n^T the covariance of the categorical model with smoothed probabilities p_n = 0.95 softmax + 0.05 / C
    (the reference multiplies J_n by the Cholesky factor of S_n, which is the same F). The eigenvalues are
    taken as |eigvalsh(F)| (the reference's singular values of the symmetric F), then the 10 %, ..., 90 %
    quantiles q (linear interpolation), t = q / (|q|_1 + 1e-10) and the entropy -sum t log(t + 1e-10).
    Deviations: float64 throughout (the reference uses float32 with alpha stored in float16, i.e.
    0.050003); the eval-mode BatchNorm running statistics are reset to 0 / 1 first — what a freshly built
    reference network holds — so the value depends on the architecture and seed only; draws come from
    ``ctx.generator()``. The paper ranks architectures by (``vkdnw_dim``, ``vkdnw``) lexicographically
    (VKDNW_single) and aggregates that rank with other proxies' ranks (VKDNW_agg): both need a population
    of scores and are computed by :func:`vkdnw_ranks` on a score table. A zero Fisher (the logits do not
    depend on the chosen weights) or logits equal for every input gives ``degenerate``.
    """
    tensors, init = _check(ctx.options["vkdnw_tensors"], ctx.options["vkdnw_init"])
    shape = tuple(check_batch(ctx.x, "vkdnw").shape)
    model = ctx.model_copy(bn="eval", dtype=torch.float64)
    strip_input_normalization(model)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            m.reset_running_stats()
    generator = ctx.generator()
    if init == "kaiming":
        kaiming_normal_fan_in_init(model, generator)
    names = [k for k, _ in model.named_parameters()]
    if not names:
        raise ValueError("vkdnw needs parameters, and the model has none")
    x = torch.randn(shape, generator=generator, dtype=torch.float64).to(ctx.device)
    fisher, logits = fisher_information(model, x, names[:tensors])
    eigenvalues = torch.linalg.eigvalsh(fisher).abs()
    if float(eigenvalues.max()) == 0.0 or rows_identical(logits):
        ctx.flag("degenerate")
    return {"vkdnw": decile_entropy(eigenvalues), "vkdnw_dim": float(len(names))}


AGG_COLUMNS = ("az_nas_expressivity", "az_nas_trainability", "flops", "jacov")


def vkdnw_ranks(table: "pd.DataFrame") -> "pd.DataFrame":
    """The paper's population rankings from a score table (one row per architecture); higher is better.

    ``vkdnw_single`` = log of the dense rank of the pairs (``vkdnw_dim``, ``vkdnw``) ordered
    lexicographically (more parameter tensors first, then higher entropy). ``vkdnw_agg`` = ``vkdnw_single``
    + sum of log ranks (pandas average ranks, ascending) of ``az_nas_expressivity``, ``az_nas_trainability``,
    ``flops`` and ``jacov``, as the reference's ``tss_utils.get_scores`` (its ``vkdnw_comb_rank``, the
    combination with Jacov, AZ-NAS expressivity and trainability and FLOPs). Missing columns raise a
    KeyError naming them; rows with a NaN in a used column get NaN. Both values change
    when the population changes, so they are not per-architecture proxies.
    """
    import numpy as np

    missing = [c for c in ("vkdnw", "vkdnw_dim", *AGG_COLUMNS) if c not in table.columns]
    if missing:
        raise KeyError(f"vkdnw_ranks needs the columns {missing} in the score table")
    pairs = table[["vkdnw_dim", "vkdnw"]]
    valid = pairs.notna().all(axis=1)
    order = pairs[valid].groupby(["vkdnw_dim", "vkdnw"], sort=True).ngroup() + 1  # dense lexicographic rank
    out = table[[]].copy()
    out["vkdnw_single"] = np.log(order.reindex(table.index).astype(float))
    agg = out["vkdnw_single"].copy()
    for column in AGG_COLUMNS:
        agg = agg + np.log(table[column].rank())
    out["vkdnw_agg"] = agg
    return out
