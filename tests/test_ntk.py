"""zcproxy.ntk against brute-force per-sample autograd loops (float64), kernel identities and spectra."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from zcproxy import ntk
from zcproxy.space import NB201

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
F64 = torch.float64


def tiny_nb201(arch: str = ARCH, num_classes: int = 3) -> nn.Module:
    torch.manual_seed(1)
    return NB201.build(arch, num_classes=num_classes, C=4, N=1)


def images(n: int = 6, size: int = 8, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g, dtype=F64)


def _params(model: nn.Module, which: str) -> list[tuple[str, nn.Parameter]]:
    named = list(model.named_parameters())
    if which == "all":
        return named
    keep = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    return [(n, p) for n, p in named if n in keep]


def _grad_row(scalar: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(scalar, params, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def reference_batch(model: nn.Module, x: torch.Tensor, output: str, which: str = "all") -> torch.Tensor:
    """TE-NAS loop: forward the whole batch in train mode, one backward per sample (and class)."""
    net = copy.deepcopy(model).double().train()
    params = [p for _, p in _params(net, which)]
    out = net(x)
    rows = []
    for i in range(x.shape[0]):
        if output == "sum":
            rows.append(_grad_row(out[i].sum(), params))
        else:
            rows.append(torch.stack([_grad_row(out[i, c], params) for c in range(out.shape[1])]))
    return torch.stack(rows)


def reference_frozen(model: nn.Module, x: torch.Tensor, output: str, which: str = "all") -> torch.Tensor:
    """Per-sample loop in eval mode with running stats = the batch statistics of x.

    The statistics come from PyTorch's own running-stat update with momentum 1 (which stores the unbiased
    variance), rescaled by (n - 1) / n to the biased variance train-mode BatchNorm normalises with.
    """
    net = copy.deepcopy(model).double()
    counts = {}
    handles = []
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 1.0
            handles.append(m.register_forward_hook(
                lambda mod, inp, out: counts.__setitem__(mod, inp[0].numel() // inp[0].shape[1])))
    net.train()
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    for m, n in counts.items():
        m.running_var.mul_((n - 1) / n)
    net.eval()
    params = [p for _, p in _params(net, which)]
    rows = []
    for i in range(x.shape[0]):
        out = net(x[i:i + 1])[0]
        if output == "sum":
            rows.append(_grad_row(out.sum(), params))
        else:
            rows.append(torch.stack([_grad_row(out[c], params) for c in range(out.shape[0])]))
    return torch.stack(rows)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("output", ["sum", "trace"])
@pytest.mark.parametrize("which", ["all", "weights"])
def test_frozen_matches_per_sample_loop(output, which):
    model, x = tiny_nb201(), images()
    jac = ntk.jacobian(model, x, output=output, bn="frozen", params=which, dtype=F64)
    ref = reference_frozen(model, x, output, which)
    assert jac.rows.shape == ref.shape
    assert rel_err(jac.rows, ref) < 1e-5


@pytest.mark.parametrize("output", ["sum", "full"])
def test_batch_matches_tenas_loop(output):
    model, x = tiny_nb201(), images()
    jac = ntk.jacobian(model, x, output=output, bn="batch", dtype=F64)
    ref = reference_batch(model, x, output)
    assert jac.rows.shape == ref.shape
    assert rel_err(jac.rows, ref) < 1e-5


def test_batch_rows_do_not_depend_on_the_callers_memory_layout():
    model, x = tiny_nb201(), images()
    nhwc = x.contiguous(memory_format=torch.channels_last)
    a = ntk.jacobian(model, x, bn="batch", dtype=F64).rows
    b = ntk.jacobian(model, nhwc, bn="batch", dtype=F64).rows
    assert rel_err(a, b) < 1e-12
    assert x.is_contiguous() and nhwc.is_contiguous(memory_format=torch.channels_last)  # inputs untouched


def test_modes_differ_with_batchnorm_and_agree_without():
    model, x = tiny_nb201(), images()
    frozen = ntk.jacobian(model, x, bn="frozen", dtype=F64).rows
    batch = ntk.jacobian(model, x, bn="batch", dtype=F64).rows
    assert rel_err(frozen, batch) > 1e-3  # BatchNorm coupling changes the batched Jacobian

    torch.manual_seed(3)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 64, 3))
    a = ntk.jacobian(plain, x, bn="frozen", dtype=F64).rows
    b = ntk.jacobian(plain, x, bn="batch", dtype=F64).rows
    assert rel_err(a, b) < 1e-10


@pytest.mark.parametrize("bn", ["frozen", "batch"])
def test_chunk_size_does_not_change_rows(bn):
    model, x = tiny_nb201(), images(5)
    whole = ntk.jacobian(model, x, bn=bn, dtype=F64).rows
    chunked = ntk.jacobian(model, x, bn=bn, dtype=F64, chunk_size=2).rows
    assert rel_err(chunked, whole) < 1e-12


def test_float32_default_close_to_float64():
    model, x = tiny_nb201(), images()
    j32 = ntk.jacobian(model, x.float())
    j64 = ntk.jacobian(model, x, dtype=F64)
    assert j32.rows.dtype == torch.float32
    assert rel_err(j32.rows.double(), j64.rows) < 1e-4


def test_model_is_not_mutated():
    model = tiny_nb201()
    model.train()
    model.cells[0].eval()  # mixed modes must survive too
    model.classifier.bias.requires_grad_(False)
    with torch.no_grad():
        model(images(4, seed=9).float())  # non-trivial running stats and num_batches_tracked
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    x = images().float()
    for bn in ("frozen", "batch"):
        for output in ("sum", "trace"):
            ntk.jacobian(model, x, bn=bn, output=output)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_gram_kernels_are_consistent_across_outputs():
    model, x = tiny_nb201(), images(4)
    full_j = ntk.jacobian(model, x, output="full", dtype=F64)
    n, c, _ = full_j.rows.shape
    k_full = ntk.gram(full_j)
    assert k_full.shape == (n * c, n * c)
    rows = full_j.rows.reshape(n * c, -1)
    assert torch.allclose(k_full, rows @ rows.T, rtol=1e-12, atol=0)
    blocks = k_full.reshape(n, c, n, c)
    k_trace = ntk.gram(ntk.jacobian(model, x, output="trace", dtype=F64))
    assert torch.allclose(k_trace, torch.einsum("ncmc->nm", blocks), rtol=1e-10)
    k_sum = ntk.gram(ntk.jacobian(model, x, output="sum", dtype=F64))
    assert torch.allclose(k_sum, blocks.sum(dim=(1, 3)), rtol=1e-10)


def test_gram_of_float32_rows_accumulates_in_float64(monkeypatch):
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(5, 1000, generator=g)
    jac = ntk.Jacobian(rows, "sum", ("w",), (1000,))
    monkeypatch.setattr(ntk, "_GRAM_BLOCK_BYTES", 5 * 2 * 8 * 7)  # blocks of 7 columns
    k = ntk.gram(jac)
    assert k.dtype == F64
    exact = rows.double() @ rows.double().T
    assert torch.allclose(k, exact, rtol=1e-13, atol=0)


def test_mix_gives_the_block_formula():
    model, x = tiny_nb201(), images(5)
    j0 = ntk.jacobian(model, x, dtype=F64)
    j1 = ntk.jacobian(model, (x + 0.05 * images(5, seed=7)).clamp(0, 1), dtype=F64)
    k00, k01, k11 = ntk.gram(j0), ntk.gram(j0, j1), ntk.gram(j1)
    for beta in (0.0, 0.3, 1.0):
        direct = ntk.gram(ntk.mix(j0, j1, beta))
        blocks = (1 - beta) ** 2 * k00 + beta * (1 - beta) * (k01 + k01.T) + beta ** 2 * k11
        assert torch.allclose(direct, blocks, rtol=1e-10, atol=1e-12 * float(blocks.abs().max()))
    with pytest.raises(ValueError, match="beta"):
        ntk.mix(j0, j1, 1.5)


def test_spectrum_hand_computed():
    s = ntk.spectrum(torch.diag(torch.tensor([2.0, 1.0, 3.0])))
    assert (s.lambda_min, s.lambda_max, s.trace, s.cond, s.degenerate) == (1.0, 3.0, 6.0, 3.0, False)
    g = torch.Generator().manual_seed(4)
    a = torch.randn(6, 6, generator=g, dtype=F64)
    k = a @ a.T + 0.1 * torch.eye(6, dtype=F64)
    eig = np.linalg.eigvalsh(k.numpy())
    s = ntk.spectrum(k)
    assert s.lambda_min == pytest.approx(eig[0], rel=1e-10)
    assert s.cond == pytest.approx(eig[-1] / eig[0], rel=1e-10)


def test_spectrum_singular_and_zero_kernels_are_defined():
    v = torch.tensor([[1.0], [2.0], [3.0]], dtype=F64)
    rank_one = v @ v.T  # lambda_min is round-off around 0 (may come out negative)
    s = ntk.spectrum(rank_one)
    assert s.degenerate and s.lambda_min == 0.0 and s.cond == math.inf
    assert s.lambda_max == pytest.approx(14.0)
    z = ntk.spectrum(torch.zeros(4, 4))
    assert (z.lambda_min, z.lambda_max, z.trace, z.cond, z.degenerate) == (0.0, 0.0, 0.0, math.inf, True)
    with pytest.raises(ValueError, match="NaN or inf"):
        ntk.spectrum(torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="square"):
        ntk.spectrum(torch.ones(2, 3))


def test_zero_output_network_gives_degenerate_spectrum():
    arch = next(i for i in range(NB201.size()) if NB201.is_zero_output(i))
    model, x = tiny_nb201(arch), images(4).float()
    weights_only = ntk.jacobian(model, x, params="weights")
    assert torch.count_nonzero(weights_only.rows) == 0
    s = ntk.spectrum(ntk.gram(weights_only))
    assert s.degenerate and s.lambda_min == 0.0 and s.cond == math.inf
    # with biases the classifier bias gives every sample the same row: rank one, still singular
    s_all = ntk.spectrum(ntk.gram(ntk.jacobian(model, x)))
    assert s_all.degenerate and s_all.lambda_min == 0.0 and not math.isnan(s_all.lambda_max)


def test_bad_arguments_name_the_problem():
    model, x = tiny_nb201(), images(2).float()
    with pytest.raises(ValueError, match="output"):
        ntk.jacobian(model, x, output="mean")
    with pytest.raises(ValueError, match="bn"):
        ntk.jacobian(model, x, bn="train")
    with pytest.raises(ValueError, match="params"):
        ntk.jacobian(model, x, params="biases")
    with pytest.raises(ValueError, match="chunk_size"):
        ntk.jacobian(model, x, chunk_size=0)
    with pytest.raises(ValueError, match="NaN"):
        ntk.jacobian(model, torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="different outputs"):
        ntk.gram(ntk.jacobian(model, x), ntk.jacobian(model, x, output="trace"))


def test_frozen_mode_handles_batchnorm_without_running_stats():
    torch.manual_seed(8)

    def net(track: bool) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, track_running_stats=track),
                             nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3)).double()

    tracked, untracked = net(True), net(False)
    untracked.load_state_dict({k: v for k, v in tracked.state_dict().items()
                               if "running" not in k and "num_batches" not in k})
    x = images()
    ref = reference_frozen(tracked, x, "sum")
    got = ntk.jacobian(untracked, x, dtype=F64).rows
    assert rel_err(got, ref) < 1e-5
    assert untracked[1].running_mean is None  # still untracked after the call
