"""Passes shared across proxies (zcproxy/proxies/_passes.py and the NTK/CRoZe pass savings) change no value:
every proxy scored together equals the proxy scored alone bit for bit, the old pass-per-proxy procedures
give the same bits, and no hook or graph outlives its pass."""
from __future__ import annotations

import copy
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import zcproxy
from zcproxy import ntk
from zcproxy.proxies import _passes, croze as croze_mod
from zcproxy.proxies._hooks import replace_batchnorm, weighted_layers
from zcproxy.proxies._registry import ProxyContext, ProxySpec
from zcproxy.space import NB201

# The 23 proxies whose passes this module shares (other proxies are tested by their own modules).
PROXIES = ["az_nas", "croze", "epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "linear_regions",
           "meco", "ntk_clean", "ntk_cond", "ntk_joint_clean", "ntk_joint_robust", "ntk_robust", "nwot", "params",
           "plain", "snip", "synflow", "zen", "zico"]


def _batch(n: int = 8, classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.arange(n) % classes


def _net(arch: int = 13714, C: int = 4) -> nn.Module:
    torch.manual_seed(1)
    return NB201.build(arch, C=C, N=1)


def _values(results) -> dict[str, float]:
    return {k: r.value for k, r in results.items()}


@pytest.mark.parametrize("arch", [13714, 6418, 14166])
def test_every_output_scored_together_equals_it_scored_alone_bit_for_bit(arch):
    model, batch = _net(arch), _batch()
    together = _values(zcproxy.score(model, PROXIES, batch=batch))
    alone: dict[str, float] = {}
    for name in PROXIES:
        alone.update(_values(zcproxy.score(model, [name], batch=batch)))
    assert set(alone) == set(together)
    different = {k: (together[k], alone[k]) for k in together if repr(together[k]) != repr(alone[k])}
    assert not different


def test_sharing_does_not_depend_on_which_proxies_come_first():
    model, batch = _net(), _batch()
    names = ["grasp", "jacov", "snip", "fisher", "epe_nas", "plain", "grad_norm", "meco", "nwot"]
    forward = _values(zcproxy.score(model, names, batch=batch))
    backward = _values(zcproxy.score(model, names[::-1], batch=batch))
    assert forward == backward


def _ctx(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str = "grad_norm") -> ProxyContext:
    ctx = ProxyContext(model, x=x, y=y, num_classes=10, device=torch.device("cpu"), seed=0, dataset="cifar10",
                       arch=None, zero_output=False, cache={})
    ctx._begin(zcproxy.proxies.spec(name), {})
    return ctx


def test_passes_leave_no_hook_behind_and_free_the_graph_when_every_backward_ran():
    model, (x, y) = _net(), _batch()
    ctx = _ctx(model, x, y)
    train = _passes.train_pass(ctx)
    assert _passes.train_pass(ctx) is train  # memoised within the call
    assert all(not m._forward_hooks for m in train._model.modules())
    train.ce()
    train.fisher()
    train.input_gradient()
    assert train._model is not None  # grasp may still need the graph
    train.grasp()
    assert train._model is None and train._output is None and train._activations is None
    assert train._act_grads is None and train._fisher_acts is None
    features = _passes.feature_pass(ctx)
    assert len(features.codes) == features.relus > 0 and features.maps
    assert all(not m._forward_hooks for m in model.modules())


def test_grasp_frees_the_graph_and_a_later_backward_rebuilds_the_same_forward():
    model, batch = _net(), _batch()
    (x, y) = batch
    train = _passes.train_pass(_ctx(model, x, y))
    train.ce()
    train.grasp()
    assert train._model is None and train._output is None  # freed by GraSP's second backward
    grad, _ = train.input_gradient()  # needs a graph again: rebuilt (and freed, every backward has run)
    assert torch.equal(grad, _passes.train_pass(_ctx(model, x, y)).input_gradient()[0])
    assert train.fisher() == zcproxy.score(model, ["fisher"], batch=batch)["fisher"].value
    orders = (["grad_norm", "grasp", "jacov", "fisher"], ["grasp", "fisher", "epe_nas", "snip"])
    alone = {n: zcproxy.score(model, [n], batch=batch)[n].value for n in set(orders[0]) | set(orders[1])}
    for names in orders:
        together = _values(zcproxy.score(model, names, batch=batch))
        assert together == {n: alone[n] for n in names}


def test_one_train_pass_gradients_equal_separate_passes():
    model, (x, y) = _net(), _batch()
    train = _passes.train_pass(_ctx(model, x, y))
    net = copy.deepcopy(model).train()
    weights = [m.weight for _, m in weighted_layers(net)]
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), weights)
    for (w, g), w_ref, g_ref in zip(train.ce(), weights, grads):
        assert torch.equal(w, w_ref.detach()) and torch.equal(g, g_ref)


@pytest.mark.parametrize("dtype_switch", [False, True])
def test_nwot_kernel_is_exactly_the_two_products(monkeypatch, dtype_switch):
    g = torch.Generator().manual_seed(0)
    codes = [torch.rand(6, d, generator=g) > 0.4 for d in (1, 7, 300)]
    expected = torch.zeros(6, 6, dtype=torch.float64)
    for c in codes:
        cf = c.to(torch.float64)
        expected = expected + cf @ cf.T + (1.0 - cf) @ (1.0 - cf).T
    if dtype_switch:  # force the float64 branch (used when a layer has >= 2^24 units)
        monkeypatch.setattr(_passes, "_FLOAT32_EXACT_UNITS", 1)
    got = _passes.nwot_kernel(codes, 6, torch.device("cpu"))
    assert torch.equal(got, expected)


def test_croze_three_passes_equal_the_four_pass_procedure():
    model, (x, y) = _net(), _batch()
    fast = zcproxy.score(model, ["croze"], batch=(x, y))["croze"].value
    with mock.patch.object(croze_mod, "float32_convolutions", lambda m: 0), \
            mock.patch.object(croze_mod, "_channels_last", lambda m, x: (m, x)):
        got = zcproxy.score(model, ["croze"], batch=(x, y))["croze"].value
    # the former procedure: the surrogate runs its own CE backward for the ascent, and both networks'
    # feature maps are stored before any similarity is taken
    clean = copy.deepcopy(model).double().train()
    replace_batchnorm(clean)
    with torch.no_grad():
        for t in clean.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    xd = x.double()
    robust = copy.deepcopy(clean)
    croze_mod._ascend_weights(robust, xd, y, 2.0)
    x_adv = croze_mod._fgsm(robust, xd, y, 0.01)
    clean_out, clean_grads = croze_mod._outputs_and_grads(clean, xd, y)
    robust_out, robust_grads = croze_mod._outputs_and_grads(robust, x_adv, y)
    weights = dict(weighted_layers(robust))
    total = 0.0
    for name, layer in weighted_layers(clean):
        g, g_adv = clean_grads.get(name), robust_grads.get(name)
        if g is None or g_adv is None or name not in clean_out or name not in robust_out:
            continue
        w_sim = (1 + F.cosine_similarity(weights[name].weight.detach(), layer.weight.detach(), dim=0)).sum()
        g_sim = F.cosine_similarity(g_adv, g, dim=0).abs().sum()
        f_sim = (1 + F.cosine_similarity(robust_out[name], clean_out[name], dim=0)).sum()
        total += float((w_sim * g_sim * f_sim).abs())
    assert got == total  # all float64: bit for bit
    assert fast == pytest.approx(total, rel=1e-6)  # float32 convolutions (zcproxy/proxies/_rescaled_conv.py)


def test_jacobian_rows_are_the_concatenated_per_parameter_gradients():
    grads = {"a": torch.randn(4, 2, 3), "b": torch.randn(4, 5), "c": torch.randn(4, 1, 1, 2)}
    expected = torch.cat([grads[n].reshape(4, -1) for n in ("a", "b", "c")], dim=-1)
    assert torch.equal(ntk._flatten(dict(grads), ("a", "b", "c"), lead=1), expected)
    flat = {"a": torch.randn(2, 3), "b": torch.randn(5)}
    assert torch.equal(ntk._flatten(dict(flat), ("a", "b"), lead=0), torch.cat([flat["a"].reshape(-1), flat["b"]]))


@pytest.mark.parametrize("output", ["sum", "trace"])
def test_frozen_jacobian_rows_in_sample_chunks_equal_one_pass(output):
    model, (x, _) = _net(), _batch(n=16)
    full = ntk.jacobian(model, x, output=output).rows
    for chunk in (2, 8, 16):  # the NTK proxies use 16 when the batch is a multiple of 16
        assert torch.equal(ntk.jacobian(model, x, output=output, chunk_size=chunk).rows, full)


def test_ntk_proxies_never_touch_the_callers_model():
    model, batch = _net(), _batch()
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    zcproxy.score(model, ["ntk_clean", "ntk_robust", "ntk_joint_robust"], batch=batch)
    assert not model.training and flags == [p.requires_grad for p in model.parameters()]
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
