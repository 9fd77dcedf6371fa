"""AZ-NAS: expressivity, progressivity, trainability and complexity of a network (Lee & Ham, CVPR 2024)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import backbone, check_batch, forward_hooks, weighted_layers
from ._registry import ProxyContext, proxy

_OUTPUTS = ("az_nas", "az_nas_expressivity", "az_nas_progressivity", "az_nas_trainability", "az_nas_complexity")


@proxy("az_nas", needs=("data",), bn="train", cost="backward", higher_is_better=True, outputs=_OUTPUTS,
       reference="Lee & Ham, CVPR 2024 (AZ-NAS), cvlab-yonsei/AZ-NAS compute_az_nas_score.py",
       defaults={"init": "kaiming"})
def az_nas(ctx: ProxyContext) -> dict[str, float]:
    """The four AZ-NAS components (all higher-is-better) and a single-architecture aggregate.

    Features f_0..f_L: the input of the network's block sequence (the largest ``nn.Sequential``; for
    NB201 the stem output) and the output of each of its blocks (every cell and reduction block), 4-D
    outputs only. Network weights are re-drawn as in the reference (``init="kaiming"``: Kaiming-normal
    fan-in for Conv/Linear from ``ctx.generator(0)``, zero biases, BN affine 1/0; ``init="none"`` keeps
    the given weights); BN in train mode.

    - expressivity E = sum_l H(f_l), H = -sum_i p_i log(p_i + 1e-8), p = eigenvalues of the channel
      covariance of f_l (over batch and positions) normalised to sum 1 (float64; round-off negatives
      clipped to 0; an all-zero covariance has H = 0).
    - progressivity P = min_l (H(f_l) - H(f_{l-1})) (0.0 with fewer than two features).
    - trainability T = mean_l (2 - s_l - 1/(s_l + 1e-6)), s_l = largest singular value of
      E[g_in g_out^T], g_out a Rademacher tensor (``ctx.generator(1)``) back-propagated through block l
      to g_in (spatially downsampled inputs are pixel-unshuffled); a block whose g_in equals g_out (an
      identity) scores -inf, as the reference.
    - complexity C = Conv2d/Linear multiply-accumulates for one image, in millions (the reference uses
      FLOPs; the order is the same).

    AZ-NAS itself ranks a population: sum_k log(rank_k / M); that rank aggregate is computed over
    populations by ``zcproxy.validate``. For one architecture ``az_nas`` is the sum of the components on
    a common O(1) scale: E / sum_l log C_l (in [0, 1]) + P / log(max_l C_l) (in [-1, 1]) + exp(T) (in
    [0, 1]) + log10(1 + C).
    """
    init = ctx.options["init"]
    if init not in ("kaiming", "none"):
        raise ValueError(f"az_nas: init must be 'kaiming' or 'none', got {init!r}")
    x = check_batch(ctx.x, "az_nas", minimum=2)
    model = ctx.model_copy()
    if init == "kaiming":
        _kaiming_fan_in(model, ctx.generator(0))
    feats, macs = _block_features(model, x.to(ctx.spec.dtype))
    if not feats:
        raise ValueError("az_nas: the model has no nn.Sequential block sequence with 4-D feature maps")
    entropies = [_spectral_entropy(f.detach()) for f in feats]
    expressivity = sum(entropies)
    progressivity = min((b - a for a, b in zip(entropies, entropies[1:])), default=0.0)
    trainability = _trainability(feats, ctx.generator(1))
    complexity = macs / 1e6
    last = feats[-1].detach()
    if ctx.zero_output or bool((last == last.flatten()[0]).all()):
        ctx.flag("degenerate")
    widths = [f.shape[1] for f in feats]
    log_widths = [math.log(c) for c in widths if c > 1]
    aggregate = (expressivity / sum(log_widths) if log_widths else 0.0) \
        + (progressivity / max(log_widths) if log_widths else 0.0) \
        + math.exp(trainability) + math.log10(1.0 + complexity)
    return {"az_nas": aggregate, "az_nas_expressivity": expressivity, "az_nas_progressivity": progressivity,
            "az_nas_trainability": trainability, "az_nas_complexity": complexity}


def _kaiming_fan_in(model: nn.Module, gen: torch.Generator) -> None:
    """Re-draw weights in place as the reference: Kaiming-normal fan-in, zero biases, BN affine 1 / 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()


def _block_features(model: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], float]:
    """[input of the first block, output of every block] of the backbone (kept in the autograd graph,
    the input made to require grad), and the Conv2d/Linear multiply-accumulates per image."""
    seq = backbone(model)
    if seq is None or len(seq) == 0:
        return [], 0.0
    feats: list[torch.Tensor] = []
    macs = [0]

    def first(_m: nn.Module, inp: tuple, _out: object) -> None:
        feats.insert(0, inp[0])

    def every(_m: nn.Module, _inp: tuple, out: object) -> None:
        feats.append(out)

    def count(m: nn.Module, _inp: tuple, out: object) -> None:
        if isinstance(m, nn.Conv2d):
            per_output = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            per_output = m.in_features
        macs[0] += out.numel() * per_output

    layers = [m for _, m in weighted_layers(model)]
    with forward_hooks([seq[0]], first), forward_hooks(list(seq), every), forward_hooks(layers, count):
        model(x.detach().clone().requires_grad_(True))
    kept = [f for f in feats if isinstance(f, torch.Tensor) and f.dim() == 4]
    return kept, macs[0] / x.shape[0]


def _spectral_entropy(feat: torch.Tensor) -> float:
    """Entropy of the normalised eigenvalues of the C x C channel covariance (float64)."""
    f = feat.to(torch.float64).permute(0, 2, 3, 1).reshape(-1, feat.shape[1])
    f = f - f.mean(dim=0, keepdim=True)
    sigma = f.T @ f / f.shape[0]
    s = torch.linalg.eigvalsh(sigma).clamp_min(0.0)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    return float(-(p * torch.log(p + 1e-8)).sum())


def _trainability(feats: list[torch.Tensor], gen: torch.Generator) -> float:
    """mean over blocks of 2 - s - 1/(s + 1e-6), s = spectral norm of the block's gradient map."""
    scores: list[float] = []
    for i in reversed(range(1, len(feats))):
        f_out, f_in = feats[i], feats[i - 1]
        if not f_out.requires_grad:  # output detached from its input: no gradient flows
            scores.append(2.0 - 1.0 / 1e-6)
            continue
        g_out = (torch.bernoulli(torch.full(f_out.shape, 0.5, dtype=torch.float64), generator=gen) - 0.5) * 2
        g_out = g_out.to(device=f_out.device, dtype=f_out.dtype)
        (g_in,) = torch.autograd.grad(f_out, f_in, grad_outputs=g_out, retain_graph=True, allow_unused=True)
        if g_in is None:
            g_in = torch.zeros_like(f_in)
        if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
            scores.append(-math.inf)
            continue
        if g_in.shape[2:] != g_out.shape[2:]:
            g_in = F.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
        co, n = g_out.shape[1], g_out.shape[0] * g_out.shape[2] * g_out.shape[3]
        a = g_in.permute(0, 2, 3, 1).reshape(n, -1).to(torch.float64)
        b = g_out.permute(0, 2, 3, 1).reshape(n, co).to(torch.float64)
        s = float(torch.linalg.svdvals(a.T @ b / n).max())
        scores.append(2.0 - s - 1.0 / (s + 1e-6))
    return sum(scores) / len(scores) if scores else 0.0
