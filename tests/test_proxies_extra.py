"""TE-NAS linear regions, ZiCo, MeCo, CRoZe and AZ-NAS: closed-form cases, oracles and invariants."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import zcproxy.proxies as proxies
from zcproxy.errors import ProxyError
from zcproxy.proxies import croze as croze_mod
from zcproxy.scoring import score
from zcproxy.space import NB201
from nets import Mul as _Mul

NAMES = ("linear_regions", "zico", "meco", "croze", "az_nas")
FAST = {"samples": 300}  # linear_regions: fewer patches keep the tests quick
ALIVE = 13714
DEAD = next(i for i in NB201.unique() if NB201.is_zero_output(i))


def _batch(n: int = 8, size: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def _nb201(index: int) -> nn.Module:
    torch.manual_seed(0)
    return NB201.build(index, C=4, N=1)


def _options(name: str) -> dict:
    return FAST if name == "linear_regions" else {}


# ---------------------------------------------------------------- registry metadata and orientation


def test_specs_are_registered_with_expected_orientation_and_needs():
    assert set(NAMES) <= set(proxies.available())
    outs = proxies.outputs()
    for name in ("linear_regions", "zico", "meco", "croze"):
        assert outs[name] == (name, True)
    for o in ("az_nas", "az_nas_expressivity", "az_nas_progressivity", "az_nas_trainability", "az_nas_complexity"):
        assert outs[o] == ("az_nas", True)
    assert proxies.spec("croze").dtype == torch.float64
    assert proxies.spec("zico").needs == {"data", "labels", "loss"}
    assert proxies.spec("meco").needs == {"data"}


# ---------------------------------------------------------------- invariants shared by all five proxies


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_caller_model_untouched(name):
    model = _nb201(ALIVE).eval()
    model.classifier.weight.requires_grad_(False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    first = score(model, name, batch=_batch(), **_options(name))
    second = score(model, name, batch=_batch(), **_options(name))
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    for out, res in first.items():
        assert math.isfinite(res.value), out
        assert res.value == second[out].value, out  # bit-identical
        assert not res.degenerate


@pytest.mark.parametrize("name", NAMES)
def test_zero_output_arch_gives_finite_flagged_value(name):
    res = score(_nb201(DEAD), name, batch=_batch(), **_options(name))
    for out, r in res.items():
        assert not math.isnan(r.value) and r.value != math.inf, out
        assert r.degenerate, out


def test_different_seeds_change_the_random_choices():
    model, batch = _nb201(ALIVE), _batch()
    a = score(model, "linear_regions", batch=batch, seed=0, **FAST)["linear_regions"].value
    b = score(model, "linear_regions", batch=batch, seed=1, **FAST)["linear_regions"].value
    c = score(model, "az_nas", batch=batch, seed=0)["az_nas_expressivity"].value
    d = score(model, "az_nas", batch=batch, seed=1)["az_nas_expressivity"].value
    assert (a, c) != (b, d)


# ---------------------------------------------------------------- linear regions (TE-NAS)


def _threshold_net(breakpoints: list[float]) -> nn.Module:
    """1x1 conv reading channel 0 minus a per-unit threshold, then ReLU: unit k is on iff v > b_k."""
    conv = nn.Conv2d(3, len(breakpoints), 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, 0] = 1.0
        conv.bias.copy_(-torch.tensor(breakpoints))
    return nn.Sequential(conv, nn.ReLU())


def test_linear_regions_counts_intervals_between_breakpoints():
    # Three images, each constant, whose channel-0 values fall in 3 of the 4 intervals cut by 0.25/0.5/0.75.
    x = torch.zeros(3, 3, 4, 4)
    x[0, 0], x[1, 0], x[2, 0] = 0.1, 0.6, 0.9
    y = torch.zeros(3, dtype=torch.long)
    value = score(_threshold_net([0.25, 0.5, 0.75]), "linear_regions", batch=(x, y), patch=1)["linear_regions"]
    assert value.value == 3.0
    x[2, 0] = 0.3  # now 0.1, 0.6, 0.3: still three distinct intervals
    assert score(_threshold_net([0.25, 0.5, 0.75]), "linear_regions", batch=(x, y), patch=1)[
        "linear_regions"].value == 3.0
    x[2, 0] = 0.2  # 0.1 and 0.2 share the region below 0.25
    assert score(_threshold_net([0.25, 0.5, 0.75]), "linear_regions", batch=(x, y), patch=1)[
        "linear_regions"].value == 2.0


def test_linear_regions_ignores_relus_on_flat_vectors_and_flags_relu_free_nets():
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 5), nn.ReLU())
    res = score(net, "linear_regions", batch=_batch(size=4), patch=4, **FAST)["linear_regions"]
    assert res.value == 1.0 and res.degenerate


def test_linear_regions_bounded_by_samples_and_bad_patch_is_explained():
    res = score(_nb201(ALIVE), "linear_regions", batch=_batch(), samples=50)["linear_regions"]
    assert 1 <= res.value <= 50
    with pytest.raises(ProxyError, match="patch=40 is larger"):
        score(_nb201(ALIVE), "linear_regions", batch=_batch(), patch=40, strict=True)


# ---------------------------------------------------------------- ZiCo


def test_zico_matches_closed_form_gradients_of_a_linear_softmax_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 10, bias=False))
    x, y = _batch(n=6, size=1, seed=3)
    x[:, 2] = 0.0  # the third input is always 0: its weights get zero gradient, std 0, and are skipped
    w = net[1].weight.detach().double().numpy()
    grads = []
    for xb, yb in zip(np.split(x.double().flatten(1).numpy(), 2), np.split(y.numpy(), 2)):
        logits = xb @ w.T
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(yb)), yb] -= 1.0
        grads.append((p.T @ xb / len(yb)).ravel())  # d mean-CE / dW
    g = np.stack(grads)
    std, mean_abs = g.std(0), np.abs(g).mean(0)
    keep = std > 0
    assert keep.sum() == 20  # 10 outputs x 2 live inputs
    expected = math.log((mean_abs[keep] / std[keep]).sum())
    assert score(net, "zico", batch=(x, y))["zico"].value == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["zico", "croze"])
def test_network_without_gradient_is_zero_and_flagged(name):
    net = nn.Sequential(nn.Conv2d(3, 2, 1), _Mul(0.0), nn.Flatten(), nn.Linear(2 * 16 * 16, 10, bias=False))
    res = score(net, name, batch=_batch())[name]
    assert res.value == 0.0 and res.degenerate


def test_zico_rejects_too_few_batches_or_images():
    with pytest.raises(ProxyError, match="splits must be >= 2"):
        score(_nb201(ALIVE), "zico", batch=_batch(), splits=1, strict=True)
    with pytest.raises(ProxyError, match="at least 2 images"):
        score(_nb201(ALIVE), "zico", batch=_batch(n=1), strict=True)


# ---------------------------------------------------------------- MeCo


def _two_channel_probe() -> tuple[nn.Module, torch.Tensor]:
    """A bare 1x1 conv copying channels 0 and 1, and a 2x2 image whose channels correlate 1/sqrt(3)."""
    conv = nn.Conv2d(3, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0
        conv.weight[1, 1] = 1.0
    x = torch.rand(2, 3, 2, 2)
    x[0, 0] = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    x[0, 1] = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    return conv, x


def test_meco_is_one_minus_the_correlation_of_two_channels():
    conv, x = _two_channel_probe()
    # centred: (.5,-.5,.5,-.5) and (.25,.25,.25,-.75): rho = 0.5 / (1 * sqrt(.75)) = 1/sqrt(3);
    # eigenvalues of [[1, rho], [rho, 1]] are 1 +- rho, so lambda_min = 1 - 1/sqrt(3). Only image 0 counts.
    value = score(conv, "meco", batch=x)["meco"].value
    assert value == pytest.approx(1 - 1 / math.sqrt(3), abs=1e-12)


def test_meco_constant_channel_gives_zero_and_sampling_rescales():
    conv, x = _two_channel_probe()
    x[0, 1] = 0.7  # constant channel: its correlations are undefined -> 0, so lambda_min = 0
    assert score(conv, "meco", batch=x)["meco"].value == pytest.approx(0.0, abs=1e-12)
    three = nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        three.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
    x3 = torch.rand(1, 3, 3, 3, generator=torch.Generator().manual_seed(5)).double()
    pairs = []
    for i, j in ((0, 1), (0, 2), (1, 2)):
        rho = np.corrcoef(x3[0, i].ravel().numpy(), x3[0, j].ravel().numpy())[0, 1]
        pairs.append(1.5 * (1 - abs(rho)))  # MeCo_opt: lambda_min of 2 sampled channels x C/k = 3/2
    sampled = score(three, "meco", batch=x3.float(), channels=2)["meco"].value
    assert min(abs(sampled - p) for p in pairs) < 1e-5
    with pytest.raises(ProxyError, match="channels must be"):
        score(three, "meco", batch=x3.float(), channels=1, strict=True)


# ---------------------------------------------------------------- AZ-NAS


def _entropy(feat: np.ndarray) -> float:
    f = feat.transpose(0, 2, 3, 1).reshape(-1, feat.shape[1])
    f = f - f.mean(0)
    s = np.clip(np.linalg.eigvalsh(f.T @ f / f.shape[0]), 0, None)
    p = s / s.sum()
    return float(-(p * np.log(p + 1e-8)).sum())


def test_az_nas_components_match_brute_force_on_a_tiny_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1))
    x, _ = _batch(n=6, size=8)
    res = score(net, "az_nas", batch=x, init="none")
    with torch.no_grad():
        f1 = net[0](x)
        f2 = net[1](f1)
        f3 = net[2](f2)
    feats = [t.double().numpy() for t in (x, f1, f2, f3)]
    ent = [_entropy(f) for f in feats]
    assert res["az_nas_expressivity"].value == pytest.approx(sum(ent), rel=1e-6)
    assert res["az_nas_progressivity"].value == pytest.approx(min(np.diff(ent)), rel=1e-5, abs=1e-7)
    # MACs: conv1 4x8x8 outputs x 27, conv2 4x4x4 outputs x 36 -> 6912 + 2304 per image
    assert res["az_nas_complexity"].value == pytest.approx(9216 / 1e6)
    # ReLU between features 1 and 2 is not the identity on the batch, so trainability is finite and <= 0
    t = res["az_nas_trainability"].value
    assert math.isfinite(t) and t <= 0
    logs = [math.log(c) for c in (3, 4, 4, 4)]
    expected = sum(ent) / sum(logs) + min(np.diff(ent)) / max(logs) + math.exp(t) + math.log10(1 + 9216 / 1e6)
    assert res["az_nas"].value == pytest.approx(expected, rel=1e-6)


def test_az_nas_trainability_closed_forms():
    x, _ = _batch(n=4, size=8)
    zero = score(nn.Sequential(_Mul(0.0)), "az_nas", batch=x, init="none")["az_nas_trainability"]
    assert zero.value == pytest.approx(2 - 1 / 1e-6) and zero.degenerate  # g_in = 0: s = 0; output constant
    ident = score(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Identity()), "az_nas", batch=x, init="none")
    assert ident["az_nas_trainability"].value == -math.inf  # an identity block, as in the reference
    assert math.isfinite(ident["az_nas"].value)
    # f_out = 2 f_in: s = 2 * lambda_max(G^T G / n) for the Rademacher G, so s is in [2, 2 * C] (C = 3)
    double = score(nn.Sequential(_Mul(2.0)), "az_nas", batch=x, init="none")["az_nas_trainability"].value
    assert 2 - 6 - 1 / 6 - 1e-9 <= double <= 2 - 2 - 1 / 2 + 1e-9


def test_az_nas_kaiming_init_changes_weights_only_in_the_copy_and_bad_init_is_explained():
    model = _nb201(ALIVE)
    a = score(model, "az_nas", batch=_batch())["az_nas_trainability"].value
    b = score(model, "az_nas", batch=_batch(), init="none")["az_nas_trainability"].value
    assert a != b
    with pytest.raises(ProxyError, match="init must be"):
        score(model, "az_nas", batch=_batch(), init="xavier", strict=True)


# ---------------------------------------------------------------- CRoZe


def test_croze_without_perturbation_is_a_count_of_live_positions():
    # eps = 0 and weight_step = 0 make the surrogate the clean network: every cosine is 1 (or 0 for
    # all-zero columns), so each layer scores sum(1 + 1) * #nonzero-gradient columns * sum(1 + [h != 0]).
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                        nn.Linear(2 * 4 * 4, 10, bias=False))
    x, y = _batch(n=5, size=4)
    value = score(net, "croze", batch=(x, y), croze_eps=0.0, weight_step=0.0)["croze"].value
    ref = nn.Sequential(*[m for m in net]).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.abs_()
    h1 = ref[0](x.double())
    logits = ref[3](ref[2](ref[1](h1)))
    nn.functional.cross_entropy(logits, y).backward()
    expected = 0.0
    for layer, out in ((ref[0], h1), (ref[3], logits)):
        cols_w = layer.weight[0].numel()
        live_g = int((layer.weight.grad.flatten(1).abs().sum(0) > 0).sum())
        f_sum = float((1 + (out.abs().sum(0) > 0).double()).sum())
        expected += 2 * cols_w * live_g * f_sum
    assert value == pytest.approx(expected, rel=1e-9)


def test_croze_weight_step_has_the_documented_norm_and_fgsm_raises_the_loss():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 10)).double()
    x, y = _batch(n=6, size=2)
    x = x.double()
    before = net[1].weight.detach().clone()
    croze_mod._ascend_weights(net, x, y, 2.0)
    assert float((net[1].weight.detach() - before).norm()) == pytest.approx(2.0 * float(before.norm()), rel=1e-9)
    assert all(p.grad is None for p in net.parameters())
    x_adv = croze_mod._fgsm(net, x, y, 0.05)
    assert float((x_adv - x).abs().max()) <= 0.05 + 1e-12 and 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1
    loss = nn.functional.cross_entropy
    with torch.no_grad():
        assert float(loss(net(x_adv), y)) > float(loss(net(x), y))  # CE is convex in x for a linear model


def test_croze_rejects_negative_options():
    with pytest.raises(ProxyError, match="eps and weight_step"):
        score(_nb201(ALIVE), "croze", batch=_batch(), croze_eps=-1.0, strict=True)
    with pytest.raises(ValueError, match="'eps' of croze is now 'croze_eps'"):
        score(_nb201(ALIVE), "croze", batch=_batch(), eps=0.01)
