"""MeCo: minimum eigenvalue of the channel correlation of every feature map (Jiang et al., NeurIPS 2023)."""
from __future__ import annotations

import torch

from ._hooks import check_batch
from ._passes import feature_pass
from ._registry import ProxyContext, proxy


@proxy("meco", needs=("data",), bn="train", cost="forward", higher_is_better=True,
       reference="Jiang, Wang & Bie, NeurIPS 2023 (MeCo), HamsterMimi/MeCo measures/meco.py",
       defaults={"channels": 0})
def meco(ctx: ProxyContext) -> float:
    """MeCo = sum over modules m with a 4-D output of lambda_min(P_m), in float64.

    P_m is the Pearson correlation matrix (``torch.corrcoef``) between the C channels of module m's
    feature map for the first image of the batch, each channel flattened over its H x W positions;
    NaN/inf entries (constant channels) are set to 0, as the reference does. Like the reference, every
    module is hooked, containers included (a container whose output is its last child's output counts
    twice); modules with non-4-D outputs are skipped, which changes nothing because the reference gets
    an all-zero matrix (lambda_min = 0) for them. ``channels=k > 0`` gives MeCo_opt: k channels drawn
    without replacement (``ctx.generator(i)`` for the i-th hooked output) and lambda_min scaled by C / k;
    layers with at most k channels use all of them. Default ``channels=0``: all channels (plain MeCo).
    The reference uses the general ``eig``; P is symmetric, so ``eigvalsh`` gives the same spectrum. The
    forward pass (train-mode float32 copy, no grad) is the call's shared feature pass, also read by NASWOT
    (:mod:`zcproxy.proxies._passes`).
    """
    k = int(ctx.options["channels"])
    if k < 0 or k == 1:
        raise ValueError(f"meco: channels must be 0 (all) or >= 2, got {k}")
    x = check_batch(ctx.x, "meco")
    values = [_min_correlation_eigenvalue(m, k, ctx.generator(i)) for i, m in enumerate(feature_pass(ctx).maps)]
    if not values:
        ctx.flag("degenerate")
        return 0.0
    return float(torch.stack(values).sum())


def _min_correlation_eigenvalue(feature: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """lambda_min of the channel correlation of one C x H x W map (k sampled channels, rescaled by C/k)."""
    fea = feature.reshape(feature.shape[0], -1).to(torch.float64)
    c = fea.shape[0]
    if fea.shape[1] < 2:  # one position: every correlation is undefined, the reference's matrix is 0
        return fea.new_zeros(())
    scale = 1.0
    if k and c > k:
        idx = torch.randperm(c, generator=gen)[:k].to(fea.device)
        fea, scale = fea[idx], c / k
    corr = torch.nan_to_num(torch.corrcoef(fea), nan=0.0, posinf=0.0, neginf=0.0).reshape(fea.shape[0], -1)
    return torch.linalg.eigvalsh(corr)[0] * scale
