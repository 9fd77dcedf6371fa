"""TE-NAS expressivity: the number of linear regions a ReLU network cuts its input into (Chen et al. 2021)."""
from __future__ import annotations

import torch
from torch import nn

from ._hooks import check_batch, forward_hooks
from ._registry import ProxyContext, proxy

_CHUNK = 1000  # images per forward pass, as the reference (input_size[0] = 1000, BN in train mode)


@proxy("linear_regions", needs=("data",), bn="train", cost="forward", higher_is_better=True,
       reference="Chen, Gong & Wang, ICLR 2021 (TE-NAS), VITA-Group/TENAS linear_region_counter.py",
       defaults={"samples": 3000, "patch": 4, "thin_width": 1})
def linear_regions(ctx: ProxyContext) -> float:
    """Number of distinct ReLU activation patterns over ``samples`` random input patches.

    R = |{ (1[a_k(x_s) > 0])_k : s = 1..S }|, the count of distinct binary codes over all ReLU units k
    (ReLUs fed a 4-D tensor, as the reference hooks them) and inputs x_s. Each distinct code is one
    linear region of the network touched by the samples; the reference computes the same count as
    sum_s 1 / #{s' : code_s' = code_s}.

    Sampling follows TE-NAS: S = 3000 patches (3 batches of 1000) cropped at random positions
    (``ctx.generator(0)``) from the proxy images. Deviations, all options: the patches keep the three
    colour channels (the reference keeps one random channel of a 1-channel stem-less network) and are
    ``patch`` = 4 pixels wide (the reference uses 3; 4 keeps NB201's two stride-2 reductions exact).
    As in TE-NAS, a NAS-Bench-201 ``TinyNetwork`` is counted on a thin copy of its cell (C =
    ``thin_width``, N = 1, fresh PyTorch-default weights seeded from ``ctx.generator(1)``), because on
    the full-width network almost every sample gets its own region and the count saturates at S.
    ``thin_width=0`` (and any other ``nn.Module``) counts on the model itself.
    """
    opts = ctx.options
    samples, patch, width = int(opts["samples"]), int(opts["patch"]), int(opts["thin_width"])
    if samples < 1 or patch < 1 or width < 0:
        raise ValueError(f"linear_regions: samples and patch must be >= 1 and thin_width >= 0, "
                         f"got samples={samples}, patch={patch}, thin_width={width}")
    x = check_batch(ctx.x, "linear_regions")
    patches = _random_patches(x, samples, patch, ctx.generator(0))
    model = _thin_copy(ctx, width) if width and hasattr(ctx.model, "thin_copy") else ctx.model_copy()
    codes = _activation_codes(model, patches.to(ctx.spec.dtype if ctx.spec else torch.float32))
    if codes.shape[1] == 0:
        ctx.flag("degenerate")  # no ReLU on a feature map: one linear piece
        return 1.0
    return float(torch.unique(codes, dim=0).shape[0])


def _random_patches(x: torch.Tensor, n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` crops of ``size`` x ``size`` pixels at uniformly random images and positions."""
    num, _, h, w = x.shape
    if size > h or size > w:
        raise ValueError(f"linear_regions: patch={size} is larger than the {h}x{w} images; use a smaller patch")
    img = torch.randint(num, (n,), generator=gen)
    top = torch.randint(h - size + 1, (n,), generator=gen)
    left = torch.randint(w - size + 1, (n,), generator=gen)
    offs = torch.arange(size)
    rows = (top[:, None] + offs)[:, :, None]  # n x size x 1
    cols = (left[:, None] + offs)[:, None, :]  # n x 1 x size
    crops = x.cpu()[img[:, None, None], :, rows, cols]  # n x size x size x C
    return crops.permute(0, 3, 1, 2).contiguous().to(x.device)


def _thin_copy(ctx: ProxyContext, width: int) -> nn.Module:
    """``ctx.model.thin_copy(width)`` (NB201: its cell in a width-``width``, one-cell-per-stage network),
    seeded weights."""
    src = ctx.model
    seed = int(torch.randint(2**62, (1,), generator=ctx.generator(1)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        thin = src.thin_copy(width)
    return thin.to(device=ctx.device, dtype=ctx.spec.dtype if ctx.spec else torch.float32).train()


def _activation_codes(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Bit-packed ReLU on/off codes, one row per input (uint8, 8 units per byte)."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    feats: list[torch.Tensor] = []

    def hook(_m: nn.Module, inp: tuple, out: object) -> None:
        if isinstance(inp[0], torch.Tensor) and inp[0].dim() == 4:
            feats.append((out > 0).flatten(1))

    rows = []
    with forward_hooks(relus, hook), torch.no_grad():
        for chunk in inputs.split(_CHUNK):
            feats.clear()
            model(chunk)
            bits = torch.cat(feats, 1) if feats else chunk.new_zeros((chunk.shape[0], 0), dtype=torch.bool)
            rows.append(_pack_bits(bits))
    return torch.cat(rows, 0)


def _pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """Pack a boolean n x k matrix into n x ceil(k / 8) bytes (row equality is preserved exactly)."""
    n, k = bits.shape
    pad = (-k) % 8
    if pad:
        bits = torch.cat([bits, bits.new_zeros((n, pad))], 1)
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.int32, device=bits.device)
    return (bits.view(n, -1, 8).to(torch.int32) * weights).sum(-1).to(torch.uint8)
