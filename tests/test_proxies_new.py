"""SWAP, regularised SWAP, VKDNW, GradSign and logsynflow: hand-computed cases, oracles and invariants."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

import zcproxy
import zcproxy.proxies as proxies
from zcproxy.errors import ProxyError
from zcproxy.proxies import swap as swap_mod
from zcproxy.proxies import vkdnw as vkdnw_mod
from zcproxy.scoring import score
from zcproxy.space import NB201
from nets import Mul as _Mul

NAMES = ("swap", "swap_reg", "vkdnw", "gradsign", "logsynflow")
FAST = {"swap": {"swap_repeats": 2}, "swap_reg": {"swap_repeats": 2}, "vkdnw": {"vkdnw_tensors": 24}}
ALIVE = 13714
DEAD = next(i for i in NB201.unique() if NB201.is_zero_output(i))


def _batch(n: int = 6, size: int = 32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def _nb201(index: int, C: int = 4, N: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return NB201.build(index, C=C, N=N)


class _Scale(nn.Module):
    """A layer the closed-form tangents do not know: y = x * s (one parameter per channel)."""

    def __init__(self, channels: int):
        super().__init__()
        self.s = nn.Parameter(torch.linspace(0.5, 1.5, channels).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.s


def _constant_net() -> nn.Module:
    """Its logits are the classifier bias whatever the input: every proxy must flag it."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), _Mul(0.0), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))


# ---------------------------------------------------------------- registry metadata and options


def test_specs_orientation_outputs_and_modes():
    outs = proxies.outputs()
    for name in ("swap", "swap_reg", "vkdnw", "vkdnw_dim", "gradsign", "logsynflow"):
        assert outs[name][1] is True, name
    assert outs["vkdnw_dim"][0] == "vkdnw"
    assert proxies.spec("vkdnw").dtype == torch.float64 and proxies.spec("vkdnw").bn == "eval"
    assert proxies.spec("logsynflow").dtype == torch.float64 and not proxies.spec("logsynflow").needs
    assert proxies.spec("gradsign").needs == {"data", "labels", "loss"}
    assert proxies.spec("swap").bn == "train" and proxies.spec("gradsign").bn == "train"


def test_new_option_names_are_namespaced_and_mean_one_thing():
    ours = {"swap_samples", "swap_repeats", "swap_init", "swap_mu", "swap_sigma", "vkdnw_tensors", "vkdnw_init"}
    for option in ours:
        owners = {n: s.defaults[option] for n, s in proxies.specs().items() if option in s.defaults}
        assert set(owners) <= {"swap", "swap_reg", "vkdnw"}, (option, owners)
        assert len(set(map(repr, owners.values()))) == 1, (option, owners)  # same default everywhere
    for name in ("swap", "swap_reg", "vkdnw", "gradsign", "logsynflow"):
        assert set(proxies.spec(name).defaults) <= ours, name  # nothing shared with other proxies


# ---------------------------------------------------------------- invariants shared by all proxies


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_caller_model_untouched(name):
    model = _nb201(ALIVE).eval()
    model.classifier.weight.requires_grad_(False)
    model.stem[1].running_mean.fill_(0.25)  # BN buffers of the caller must survive every proxy
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    first = score(model, name, batch=_batch(), **FAST.get(name, {}))
    second = score(model, name, batch=_batch(), **FAST.get(name, {}))
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training and not any(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    for out, res in first.items():
        assert math.isfinite(res.value), out
        assert res.value == second[out].value, out  # bit-identical
        assert not res.degenerate, out


@pytest.mark.parametrize("name", NAMES)
def test_constant_output_network_is_flagged(name):
    res = score(_constant_net(), name, batch=_batch(), **FAST.get(name, {}))
    for out, r in res.items():
        assert math.isfinite(r.value), out
        assert r.degenerate, out


@pytest.mark.parametrize("name", NAMES)
def test_zero_output_nb201_arch_is_flagged(name):
    res = score(_nb201(DEAD), name, batch=_batch(), **FAST.get(name, {}))
    assert all(r.degenerate and math.isfinite(r.value) for r in res.values())


def test_seed_changes_the_reinitialised_proxies():
    model, batch = _nb201(ALIVE), _batch(n=16)  # 16 images: SWAP is far from its 2**16 ceiling
    for name in ("swap", "vkdnw"):
        a = score(model, name, batch=batch, seed=0, **FAST[name])[name].value
        b = score(model, name, batch=batch, seed=1, **FAST[name])[name].value
        assert a != b, name


# ---------------------------------------------------------------- SWAP


def _threshold_net() -> nn.Module:
    """1x1 conv reading channel 0 minus 0.5, then ReLU: neuron (pixel) active iff channel 0 > 0.5."""
    conv = nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0
        conv.bias.fill_(-0.5)
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(4, 10))


def test_swap_counts_distinct_sample_patterns_by_hand():
    x = torch.zeros(2, 3, 2, 2)
    x[0, 0] = torch.tensor([[0.9, 0.8], [0.1, 0.7]])
    x[1, 0] = torch.tensor([[0.2, 0.3], [0.6, 0.9]])
    # patterns per pixel (image 0, image 1): (1,0), (1,0), (0,1), (1,1) -> 3 distinct
    res = score(_threshold_net(), ["swap", "swap_reg"], batch=x, swap_init="none", swap_repeats=3,
                swap_mu=0.0, swap_sigma=2e-4)
    assert res["swap"].value == 3.0
    params = 4 + 50  # conv 1x1: 3 weights + 1 bias; linear: 4 x 10 weights + 10 biases
    assert res["swap_reg"].value == pytest.approx(3.0 * math.exp(-((params / 1e6) ** 2) / 2e-4), rel=1e-12)
    x[1, 0, 1, 1] = 0.0  # pixel 4 now (1, 0) as well -> 2 distinct
    assert score(_threshold_net(), "swap", batch=x, swap_init="none", swap_repeats=1)["swap"].value == 2.0


def test_swap_samples_limits_the_batch_and_packing_matches_brute_force():
    x = torch.rand(5, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    net = _threshold_net()
    one = score(net, "swap", batch=x, swap_init="none", swap_repeats=1, swap_samples=1)["swap"].value
    assert one == float(len({bool(v > 0.5) for v in x[0, 0].flatten()}))
    g = torch.Generator().manual_seed(4)
    for n in (1, 5, 16, 20, 24, 25, 62, 63, 130):  # table (<= 24 bits), sorted one word, several words
        active = torch.rand(n, 300, generator=g) < 0.1
        expected = len({tuple(col.tolist()) for col in active.T})
        assert swap_mod.count_patterns(swap_mod.pack_patterns(active)) == expected, n


def test_swap_gaussian_repeats_average_and_options_are_checked():
    net = _threshold_net()
    x, _ = _batch(n=4, size=2)
    runs = [score(net, "swap", batch=x, swap_repeats=1, seed=s)["swap"].value for s in range(3)]
    assert all(1 <= r <= 4 for r in runs)  # 4 neurons: between 1 and 4 distinct patterns
    with pytest.raises(ProxyError, match="swap_repeats"):
        score(net, "swap", batch=x, swap_repeats=0, strict=True)
    with pytest.raises(ProxyError, match="swap_sigma"):
        score(net, "swap_reg", batch=x, swap_sigma=0.0, strict=True)
    with pytest.raises(ProxyError, match="nn.ReLU"):
        score(nn.Sequential(nn.Flatten(), nn.Linear(12, 10)), "swap", batch=x, strict=True)


def test_swap_reg_factor_peaks_at_mu():
    model, batch = _nb201(ALIVE), _batch()
    theta = swap_mod.parameter_millions(model)
    base = score(model, "swap", batch=batch, **FAST["swap"])["swap"].value
    at_mu = score(model, "swap_reg", batch=batch, swap_mu=theta, **FAST["swap"])["swap_reg"].value
    off = score(model, "swap_reg", batch=batch, swap_mu=theta + 0.5, swap_sigma=0.5, **FAST["swap"])["swap_reg"].value
    assert at_mu == pytest.approx(base, rel=1e-12)
    assert off == pytest.approx(base * math.exp(-0.5), rel=1e-12)


# ---------------------------------------------------------------- VKDNW


def _jacobian_oracle(model: nn.Module, x: torch.Tensor, names: list[str]) -> torch.Tensor:
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def logits(delta, sample):
        moved = dict(params)
        for i, k in enumerate(names):
            e0 = torch.zeros(params[k].numel(), dtype=params[k].dtype)
            e0[0] = 1.0
            moved[k] = params[k] + delta[i] * e0.view_as(params[k])
        return functional_call(model, (moved, buffers), (sample.unsqueeze(0),)).squeeze(0)

    return vmap(jacrev(logits), in_dims=(None, 0))(torch.zeros(len(names), dtype=x.dtype), x)


def test_vkdnw_jacobian_matches_torch_func_oracle_on_every_layer_kind():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=2, groups=1), nn.BatchNorm2d(4),
                        nn.ReLU(), nn.Conv2d(4, 4, 3, padding=2, groups=2, bias=True), _Scale(4),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)).double().eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
        net[1].weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 3, 9, 9, dtype=torch.float64)
    names = [k for k, _ in net.named_parameters()]
    jac, logits = vkdnw_mod.logit_jacobian(net, x, names)
    assert torch.allclose(jac, _jacobian_oracle(net, x, names), rtol=1e-10, atol=1e-12)
    assert torch.allclose(logits, net(x), rtol=1e-12, atol=1e-14)  # the added terms change nothing


def test_vkdnw_fisher_and_entropy_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 2, bias=False), nn.ReLU(), nn.Linear(2, 3)).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    names = ["1.weight", "3.weight", "3.bias"]
    fisher, _ = vkdnw_mod.fisher_information(net, x, names)
    expected = np.zeros((3, 3))
    for xn in x:  # brute force: autograd per sample and class, smoothed-softmax covariance
        out = net(xn.unsqueeze(0)).squeeze(0)
        rows = []
        for c in range(3):
            grads = torch.autograd.grad(out[c], [net[1].weight, net[3].weight, net[3].bias], retain_graph=True)
            rows.append([float(g.flatten()[0]) for g in grads])
        j = np.array(rows)
        p = torch.softmax(out.detach(), 0).numpy() * 0.95 + 0.05 / 3
        expected += j.T @ (np.diag(p) - np.outer(p, p)) @ j / len(x)
    assert np.allclose(fisher.numpy(), expected, rtol=1e-10, atol=1e-14)
    # entropy of the deciles of eigenvalues {1, 3}: quantile(k/10) = 1 + 2k/10, normalised to sum 18
    t = np.array([1 + 0.2 * k for k in range(1, 10)]) / 18
    assert vkdnw_mod.decile_entropy(torch.tensor([3.0, 1.0])) == pytest.approx(-(t * np.log(t)).sum(), rel=1e-8)
    assert vkdnw_mod.decile_entropy(torch.tensor([2.0])) == pytest.approx(math.log(9), rel=1e-8)


def test_vkdnw_outputs_are_bounded_and_dim_counts_tensors():
    model = _nb201(ALIVE)
    res = score(model, "vkdnw", batch=_batch(), **FAST["vkdnw"])
    assert 0 < res["vkdnw"].value <= math.log(9) + 1e-9
    assert res["vkdnw_dim"].value == len(list(model.parameters()))
    with pytest.raises(ProxyError, match="vkdnw_init"):
        score(model, "vkdnw", batch=_batch(), vkdnw_init="xavier", strict=True)


def test_vkdnw_ranks_single_is_lexicographic_and_agg_adds_log_ranks():
    table = pd.DataFrame({"vkdnw_dim": [2.0, 2.0, 3.0, 3.0], "vkdnw": [0.7, 0.5, 0.1, 0.1],
                          "az_nas_expressivity": [1.0, 2.0, 3.0, 4.0], "az_nas_trainability": [4.0, 3.0, 2.0, 1.0],
                          "flops": [1.0, 1.0, 2.0, 2.0], "jacov": [-1.0, -2.0, -3.0, -4.0]}, index=list("abcd"))
    ranks = vkdnw_mod.vkdnw_ranks(table)
    assert np.allclose(ranks["vkdnw_single"], np.log([2, 1, 3, 3]))  # dense: c and d tie
    expected = np.log([2, 1, 3, 3]) + np.log([1, 2, 3, 4]) + np.log([4, 3, 2, 1]) + np.log([1.5, 1.5, 3.5, 3.5]) \
        + np.log([4, 3, 2, 1])
    assert np.allclose(ranks["vkdnw_agg"], expected)
    with pytest.raises(KeyError, match="jacov"):
        vkdnw_mod.vkdnw_ranks(table.drop(columns="jacov"))


# ---------------------------------------------------------------- GradSign


def test_gradsign_matches_closed_form_sign_sums_of_a_linear_softmax_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 4))
    x, y = _batch(n=5, size=1, seed=2)
    x = x - 0.5  # mixed signs
    x[:, 2] = 0.0  # weights reading input 2 get a zero gradient: sign 0, they add nothing
    y = y % 4
    w, b = net[1].weight.detach().double().numpy(), net[1].bias.detach().double().numpy()
    total = np.zeros_like(w)
    for xn, yn in zip(x.double().flatten(1).numpy(), y.numpy()):
        logits = w @ xn + b
        p = np.exp(logits - logits.max())
        p /= p.sum()
        p[yn] -= 1.0
        total += np.sign(np.outer(p, xn))  # d CE / d W = (softmax - onehot) x^T
    res = score(net, "gradsign", batch=(x, y))["gradsign"]
    assert res.value == np.abs(total).sum()
    assert res.value <= 5 * 4 * 2  # at most N per weight that the loss reaches


def test_gradsign_is_the_number_of_weights_times_n_when_all_samples_agree():
    # Identical images and labels: every weight's sign agrees across the batch, so the value is N x #(g != 0).
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 4, bias=False))
    x = torch.full((6, 3, 1, 1), 0.3)
    y = torch.zeros(6, dtype=torch.long)
    assert score(net, "gradsign", batch=(x, y))["gradsign"].value == 6 * 12


# ---------------------------------------------------------------- logsynflow


def test_logsynflow_by_hand_on_a_two_layer_linear_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 32, bias=False), nn.Flatten(), nn.Linear(2, 10, bias=False))
    w1 = net[0].weight.detach().double().abs().numpy().reshape(2, -1)
    w2 = net[2].weight.detach().double().abs().numpy()
    # R = sum_c sum_j |W2|_cj sum_i |W1|_ji on an all-ones 1 x 3 x 32 x 32 input
    g1 = np.broadcast_to(w2.sum(0)[:, None], w1.shape)
    g2 = np.broadcast_to(w1.sum(1)[None, :], w2.shape)
    expected = (w1 * np.log1p(g1)).sum() + (w2 * np.log1p(g2)).sum()
    assert score(net, "logsynflow")["logsynflow"].value == pytest.approx(expected, rel=1e-12)
    synflow = (w1 * g1).sum() + (w2 * g2).sum()
    assert score(net, "synflow")["synflow"].value == pytest.approx(synflow, rel=1e-12)


def test_logsynflow_is_at_most_synflow_and_ignores_weight_signs():
    model = _nb201(ALIVE)
    both = score(model, ["logsynflow", "synflow"])
    assert 0 < both["logsynflow"].value <= both["synflow"].value
    flipped = _nb201(ALIVE)
    with torch.no_grad():
        for p in flipped.parameters():
            p.neg_()
    assert score(flipped, "logsynflow")["logsynflow"].value == both["logsynflow"].value


# ---------------------------------------------------------------- NB201 scale: ordering and end to end


def test_bigger_network_scores_higher_where_the_papers_say_so():
    small, big = _nb201(ALIVE, C=4, N=1), _nb201(ALIVE, C=8, N=2)
    x, y = _batch(n=16)  # SWAP counts at most 2**16 patterns; both nets stay below
    for name in ("swap", "gradsign", "logsynflow"):
        a = score(small, name, batch=(x, y), **FAST.get(name, {}))[name].value
        b = score(big, name, batch=(x, y), **FAST.get(name, {}))[name].value
        assert b > a, name
    # VKDNW is meant to be orthogonal to size; only its size part, vkdnw_dim, must order them
    dims = [score(m, "vkdnw", batch=x, vkdnw_tensors=8)["vkdnw_dim"].value for m in (small, big)]
    assert dims[1] > dims[0]


@pytest.mark.parametrize("name", NAMES)
def test_score_by_index_end_to_end(name, data_dir):
    res = zcproxy.score(ALIVE, [name], batch_size=16, data_dir=str(data_dir), **FAST.get(name, {}))
    for out, r in res.items():
        assert math.isfinite(r.value) and not r.degenerate, out
        assert r.settings["batch_size"] == (None if name == "logsynflow" else 16)
