"""Zen-score: expressivity of the pre-pooling features under Gaussian weights and inputs."""
from __future__ import annotations

import math

import torch
from torch import nn

from ._common import strip_input_normalization
from ._hooks import check_batch, forward_hooks
from ._registry import ProxyContext, proxy


def _gaussian_init(model: nn.Module, generator: torch.Generator) -> None:
    """Zen-NAS ``network_weight_gaussian_init``: Conv2d / Linear weights ~ N(0, 1) and biases 0,
    BatchNorm / GroupNorm weight 1 and bias 0 (running statistics untouched)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator, dtype=m.weight.dtype))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()


def _check_options(gamma: object, repeats: object) -> tuple[float, int]:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"zen_mixup_gamma must be a positive finite number, got {gamma!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"zen_repeats must be a positive int, got {repeats!r}")
    return float(gamma), repeats


@proxy("zen", needs=("data",), bn="train", dtype=torch.float32, higher_is_better=True, cost="forward",
       defaults={"zen_mixup_gamma": 1e-2, "zen_repeats": 1},
       reference="Lin et al., ICCV 2021 (Zen-NAS, compute_zen_score); NAS-Bench-Suite-Zero zen")
def zen(ctx: ProxyContext) -> float:
    """Mean over repeats of ``log(mean_n sum_chw |F(x_n) - F(x_n + gamma e_n)|) + sum_BN log sqrt(mean(var_BN))``.

    As Zen-NAS ``compute_nas_score``: per repeat the weights are redrawn from N(0, 1) (BatchNorm affine
    reset to 1 / 0), x and e are standard Gaussian batches of the proxy batch's shape, F is the feature map
    entering the last ``nn.AdaptiveAvgPool2d`` (for NB201, the output of ``lastact``: BN + ReLU), and the
    BatchNorm running variances are those left by the two train-mode forward passes (accumulating across
    repeats). Deviations: the copy's BN running statistics are reset first so the score depends only on the
    architecture and seed; the input-normalisation layer is stripped (the Gaussians are fed to the network
    directly, as in Zen-NAS); all draws come from ``ctx.generator()``. ``zen_mixup_gamma`` = gamma (1e-2),
    ``zen_repeats`` (1, as NAS-Bench-Suite-Zero; Zen-NAS uses 32). A network whose features do not depend
    on its input scores ``-inf`` and is flagged ``degenerate``.
    """
    gamma, repeats = _check_options(ctx.options["zen_mixup_gamma"], ctx.options["zen_repeats"])
    shape = tuple(check_batch(ctx.x, "zen").shape)
    model = ctx.model_copy(bn="train", dtype=torch.float32)
    strip_input_normalization(model)
    pools = [m for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if not pools:
        raise ValueError("zen reads the features entering global average pooling, and the model has no "
                         "nn.AdaptiveAvgPool2d")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
    generator = ctx.generator()
    features: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        features.append(inputs[0])

    scores = []
    with forward_hooks(pools[-1:], keep), torch.no_grad():
        for _ in range(repeats):
            _gaussian_init(model, generator)
            x = torch.randn(shape, generator=generator).to(ctx.device)
            noise = torch.randn(shape, generator=generator).to(ctx.device)
            features.clear()
            model(x)
            model(x + gamma * noise)
            clean, mixed = features[0].double(), features[1].double()
            difference = (clean - mixed).abs().sum(dim=tuple(range(1, clean.dim()))).mean()
            bn_scale = sum(0.5 * torch.log(m.running_var.double().mean()) for m in norms
                           if m.running_var is not None)
            scores.append(float(torch.log(difference) + bn_scale))
    value = sum(scores) / len(scores)
    if value == -math.inf:
        ctx.flag("degenerate")
    return value
