"""SWAP and regularised SWAP: distinct sample-wise ReLU activation patterns (Peng et al., ICLR 2024)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ._hooks import check_batch, forward_hooks
from ._registry import ProxyContext, proxy
from ._reinit import gaussian_init, rows_identical

REFERENCE = "Peng et al., ICLR 2024 (SWAP-NAS, arXiv 2403.04161), pym1024/SWAP src/metrics/swap.py + correlation.py"
_BITS = 62  # samples packed per int64 word
_TABLE_BITS = 24  # codes below 2**24 are counted in a table of seen codes (16 MB) instead of by sorting


def _check(samples: object, repeats: object, init: object) -> tuple[int, int, str]:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ValueError(f"swap_samples must be an int >= 0 (0 = the whole batch), got {samples!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"swap_repeats must be a positive int, got {repeats!r}")
    if init not in ("gaussian", "none"):
        raise ValueError(f"swap_init must be 'gaussian' or 'none', got {init!r}")
    return samples, repeats, str(init)


def pack_patterns(active: torch.Tensor) -> torch.Tensor:
    """Pack a boolean ``samples x neurons`` matrix into integer codes, one row per neuron: column j
    becomes ceil(n / 62) int64 words whose bit i (of word i // 62) is ``active[i, j]``."""
    n, d = active.shape
    words = []
    for start in range(0, n, _BITS):
        word = torch.zeros(d, dtype=torch.int64, device=active.device)
        for bit, row in enumerate(active[start:start + _BITS]):
            word |= row.to(torch.int64) << bit
        words.append(word)
    return torch.stack(words, dim=1)


def count_patterns(packed: torch.Tensor) -> int:
    """Number of distinct neuron patterns (rows) of the packed codes of :func:`pack_patterns`.

    One word of at most ``_TABLE_BITS`` bits (batches of up to 24 samples, the default 16 among them) is
    counted by marking a table of every possible code, linear in the neurons; longer codes are sorted
    (``torch.unique``). Both count exactly."""
    if packed.shape[0] == 0:
        return 0
    if packed.shape[1] == 1:
        codes = packed[:, 0]
        bits = int(codes.max()).bit_length()
        if bits <= _TABLE_BITS:
            seen = torch.zeros(1 << bits, dtype=torch.bool, device=codes.device)
            seen[codes] = True
            return int(seen.sum())
        return int(torch.unique(codes).shape[0])
    return int(torch.unique(packed, dim=0).shape[0])


def _swap(ctx: ProxyContext, samples: int, repeats: int, init: str) -> tuple[float, bool]:
    x = check_batch(ctx.x, ctx.spec.name if ctx.spec else "swap")
    if samples:
        x = x[:samples]
    model = ctx.model_copy(bn="train", dtype=torch.float32)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("swap reads the outputs of nn.ReLU modules, and the model has none")
    generator = ctx.generator()
    n = x.shape[0]
    codes: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if inputs[0].dim() == 4:  # as the reference: ReLUs applied to feature maps only
            codes.append(pack_patterns(output.detach().reshape(n, -1) > 0))

    values, constant = [], False
    with forward_hooks(relus, keep), torch.no_grad():
        for _ in range(repeats):
            if init == "gaussian":
                gaussian_init(model, generator)
            codes.clear()
            out = model(x)
            constant = constant or rows_identical(out)
            values.append(count_patterns(torch.cat(codes)) if codes else 0)
    if not codes:
        raise ValueError("swap found no nn.ReLU applied to a 4-D feature map")
    return sum(values) / len(values), constant


def shared_swap(ctx: ProxyContext) -> tuple[float, bool]:
    """Mean SWAP over the repeats and whether the network's output ignored its input, memoised for the
    whole ``score()`` call (``swap`` and ``swap_reg`` share it)."""
    samples, repeats, init = _check(ctx.options["swap_samples"], ctx.options["swap_repeats"],
                                    ctx.options["swap_init"])
    return ctx.shared(("swap", samples, repeats, init), lambda: _swap(ctx, samples, repeats, init))


def parameter_millions(model: nn.Module) -> float:
    """Parameter count in millions, skipping parameters whose name contains 'auxiliary' (as the reference)."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name) / 1e6


_DEFAULTS = {"swap_samples": 16, "swap_repeats": 32, "swap_init": "gaussian"}


@proxy("swap", needs=("data",), bn="train", dtype=torch.float32, higher_is_better=True, cost="forward",
       reference=REFERENCE, defaults=_DEFAULTS)
def swap(ctx: ProxyContext) -> float:
    """SWAP = number of distinct rows of the binary matrix A (neurons x samples), averaged over repeats.

    A[j, i] = 1 when neuron j is active (ReLU output > 0) for image i. The neurons are every position of
    the output of every ``nn.ReLU`` module whose input is a 4-D feature map (the reference hooks
    ``nn.ReLU`` modules with 4-D inputs), concatenated; the value counts the distinct activation patterns
    of the batch. As the reference's ``correlation.py``: a train-mode float32 copy (BatchNorm uses batch
    statistics), the first ``swap_samples`` = 16 images of the proxy batch (all of them when the batch is
    smaller, or with ``swap_samples=0``; the count is at most 2**n so the batch size matters), and
    ``swap_repeats`` = 32 re-initialisations — Conv2d / Linear weights ~ N(0, 1), biases 0, BatchNorm
    affine 1 / 0 (``swap_init='none'`` keeps the model's weights; then every repeat is equal) — whose
    SWAP values are averaged. Deviations: the draws come from ``ctx.generator()`` instead of the global
    RNG; distinct patterns are counted exactly on bit-packed rows instead of ``torch.unique`` over float
    rows (same count). Images are fed in [0, 1] and normalised by the model, i.e. the reference's
    normalised images. ReLUs applied functionally are not seen; a model with no hooked ReLU raises. A
    network whose output does not depend on its input is flagged ``degenerate`` (its value is still the
    count of its internal patterns).
    """
    value, constant = shared_swap(ctx)
    if constant:
        ctx.flag("degenerate")
    return value


def _check_reg(mu: object, sigma: object) -> tuple[float, float]:
    for name, v in (("swap_mu", mu), ("swap_sigma", sigma)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if sigma <= 0:
        raise ValueError(f"swap_sigma must be > 0, got {sigma!r}")
    return float(mu), float(sigma)


@proxy("swap_reg", needs=("data",), bn="train", dtype=torch.float32, higher_is_better=True, cost="forward",
       reference=REFERENCE, defaults={**_DEFAULTS, "swap_mu": 1.5, "swap_sigma": 1.5})
def swap_reg(ctx: ProxyContext) -> float:
    """Regularised SWAP = SWAP x exp(-(Theta - mu)**2 / sigma), Theta = parameter count in millions.

    SWAP exactly as the ``swap`` proxy (shared within one ``score()`` call, same options). The factor is
    the reference's ``cal_regular_factor``: a Gaussian-shaped bump in model size, ``sigma`` dividing the
    squared difference directly (no factor 2, no square on sigma); parameters whose name contains
    'auxiliary' are not counted, and the count is taken on the caller's model as given. Options
    ``swap_mu`` and ``swap_sigma`` (default 1.5 and 1.5). Deviations: the reference counts Theta in
    thousands of parameters and ships no values for mu and sigma (regularisation is off unless both are
    passed); the paper presents them as the user's control of the target model size. We count in
    millions, as the ``params`` proxy reports, and our default mu = sigma = 1.5 favours the largest
    NAS-Bench-201 CIFAR networks (at most 1.53 M parameters: factor 1.0 there, 0.88 at 1.07 M, 0.26 at
    0.07 M) — a choice of ours, not a published setting; pass the values your search targets.
    """
    mu, sigma = _check_reg(ctx.options["swap_mu"], ctx.options["swap_sigma"])
    value, constant = shared_swap(ctx)
    if constant:
        ctx.flag("degenerate")
    theta = parameter_millions(ctx.model)
    return value * math.exp(-((theta - mu) ** 2) / sigma)
