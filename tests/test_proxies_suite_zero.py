"""The 13 NAS-Bench-Suite-Zero proxies: hand-computed cases, reference oracles and invariants."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from torch import nn

import zcproxy
from zcproxy.errors import ProxyError
from zcproxy.proxies import spec
from zcproxy.space import NB201

SUITE_ZERO = ("epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "nwot", "params",
              "plain", "snip", "synflow", "zen")
ORIENTATION = {name: True for name in SUITE_ZERO}  # every one of them: higher is better
ZERO_OUTPUT_ARCH = 12  # '|none~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|'
K = 1e-5


def images(n: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def labels(n: int = 8, classes: int = 3) -> torch.Tensor:
    return torch.arange(n) % classes


def run(model: nn.Module, name: str, batch=None, **kwargs) -> zcproxy.ProxyResult:
    return zcproxy.score(model, [name], batch=batch, **kwargs)[name]


def tiny_nb201(arch: int = 13714) -> nn.Module:
    torch.manual_seed(1)
    return NB201.build(arch, C=4, N=1)


def linear_model(inputs: int = 3 * 32 * 32, outputs: int = 3, seed: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, outputs))


def softmax_ce_terms(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor):
    """Closed-form pieces of mean cross-entropy for one Linear layer: X, W, Z, P - Y, dL/dW (float64)."""
    lin = model[1]
    X = x.reshape(x.shape[0], -1).double().numpy()
    W = lin.weight.detach().double().numpy()
    b = lin.bias.detach().double().numpy()
    Z = X @ W.T + b
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    E = P.copy()
    E[np.arange(len(y)), y.numpy()] -= 1.0
    E /= len(y)
    return X, W, Z, P, E, E.T @ X


# ---------------------------------------------------------------- registry metadata


def test_all_thirteen_are_registered_with_their_orientation():
    for name in SUITE_ZERO:
        s = spec(name)
        assert s.higher_is_better is ORIENTATION[name], name
        assert s.reference and s.fn.__doc__, name


def test_orientation_is_recorded_on_results():
    x, y = images(), labels()
    out = zcproxy.score(tiny_nb201(), list(SUITE_ZERO), batch=(x, y))
    assert set(out) == set(SUITE_ZERO)
    for name, result in out.items():
        assert result.higher_is_better is ORIENTATION[name]


# ---------------------------------------------------------------- cross-entropy gradient family


def test_grad_norm_snip_plain_match_closed_form_softmax_gradient():
    x, y = images(), labels()
    model = linear_model()
    _, W, _, _, _, G = softmax_ce_terms(model, x, y)
    assert run(model, "grad_norm", (x, y)).value == pytest.approx(np.linalg.norm(G), rel=1e-4)
    assert run(model, "snip", (x, y)).value == pytest.approx(np.abs(W * G).sum(), rel=1e-4)
    assert run(model, "plain", (x, y)).value == pytest.approx((W * G).sum(), rel=1e-3, abs=1e-7)


def test_gradient_proxies_sum_over_every_conv_and_linear_layer():
    x, y = images(), labels()
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 32 * 32, 3))
    reference = [l for l in model if isinstance(l, (nn.Conv2d, nn.Linear))]
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, [l.weight for l in reference])
    expected_norm = sum(float(g.double().norm()) for g in grads)
    expected_snip = sum(float((l.weight.detach().double() * g.double()).abs().sum()) for l, g in zip(reference, grads))
    assert run(model, "grad_norm", (x, y)).value == pytest.approx(expected_norm, rel=1e-5)
    assert run(model, "snip", (x, y)).value == pytest.approx(expected_snip, rel=1e-5)


def test_fisher_matches_closed_form_on_a_linear_layer():
    x, y = images(), labels()
    model = linear_model()
    X, _, Z, _, E, _ = softmax_ce_terms(model, x, y)
    per_channel = 0.5 * ((Z * E) ** 2).mean(0)
    expected = per_channel.sum() * X.shape[1]  # each channel's value counts once per weight of the channel
    assert run(model, "fisher", (x, y)).value == pytest.approx(expected, rel=1e-4)


def test_grasp_matches_closed_form_hessian_gradient_product():
    x, y = images(), labels()
    model = linear_model()
    X, W, _, P, _, G = softmax_ce_terms(model, x, y)
    # Hessian of mean CE w.r.t. W applied to G: (1/N) sum_n (diag p_n - p_n p_n^T) G x_n x_n^T
    HG = np.zeros_like(W)
    for xn, pn in zip(X, P):
        A = np.diag(pn) - np.outer(pn, pn)
        HG += np.outer(A @ (G @ xn), xn)
    HG /= len(X)
    assert run(model, "grasp", (x, y)).value == pytest.approx(-(W * HG).sum(), rel=1e-3)


def test_grasp_matches_autograd_hessian_oracle_on_two_layers():
    x, y = images(4, 4), labels(4)
    torch.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 6), nn.Tanh(), nn.Linear(6, 3))
    w1, w2 = model[1].weight.detach().double(), model[3].weight.detach().double()
    b1, b2 = model[1].bias.detach().double(), model[3].bias.detach().double()
    X = x.reshape(4, -1).double()

    def loss(flat: torch.Tensor) -> torch.Tensor:
        a, b = flat[: w1.numel()].view_as(w1), flat[w1.numel():].view_as(w2)
        return nn.functional.cross_entropy(torch.tanh(X @ a.T + b1) @ b.T + b2, y)

    theta = torch.cat([w1.flatten(), w2.flatten()])
    g = torch.autograd.functional.jacobian(loss, theta)
    H = torch.autograd.functional.hessian(loss, theta)
    expected = float(-(theta * (H @ g)).sum())
    assert run(model, "grasp", (x, y)).value == pytest.approx(expected, rel=1e-3)


# ---------------------------------------------------------------- data-free proxies


def test_synflow_linear_layer_is_sum_of_absolute_weights():
    model = linear_model()
    expected = model[1].weight.detach().double().abs().sum().item()
    result = run(model, "synflow")
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert result.settings["dtype"] == "float64"


def test_synflow_two_layers_with_batchnorm_bypassed_and_absolute_parameters():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    with torch.no_grad():
        model[2].running_mean.fill_(7.0)  # would change the value if BN were applied
        model[2].weight.fill_(-3.0)
    W1, b1 = model[1].weight.detach().double().abs(), model[1].bias.detach().double().abs()
    W2 = model[4].weight.detach().double().abs()
    hidden = W1.sum(1) + b1  # |W1| 1 + |b1|
    expected = float((W1 * W2.sum(0)[:, None]).sum() + (W2 * hidden[None, :]).sum())
    assert run(model, "synflow").value == pytest.approx(expected, rel=1e-10)


def test_synflow_nb201_matches_reference_procedure():
    model = tiny_nb201()
    reference = NB201.build(13714, C=4, N=1)
    reference.load_state_dict(model.state_dict())
    reference.double()

    def no_op(self, x):
        return x

    with torch.no_grad():
        for p in reference.parameters():
            p.abs_()
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.forward = types.MethodType(no_op, m)
    ones = torch.ones(1, 3, 32, 32, dtype=torch.float64)  # the all-ones input enters after normalisation
    h = reference.global_pooling(reference.lastact(reference.cells(reference.stem(ones)))).flatten(1)
    reference.classifier(h).sum().backward()
    expected = sum(float((m.weight.detach() * m.weight.grad).abs().sum()) for m in reference.modules()
                   if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert run(model, "synflow").value == pytest.approx(expected, rel=1e-10)


def test_l2_norm_and_params_on_hand_counted_net():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    expected_norm = float(model[0].weight.detach().double().norm() + model[6].weight.detach().double().norm())
    assert run(model, "l2_norm").value == pytest.approx(expected_norm, rel=1e-12)
    assert run(model, "params").value == pytest.approx((4 * 3 * 9 + 4 + 2 * 4 + 4 * 5 + 5) / 1e6, abs=1e-12)
    # conv: H W C_out (C_in k k + bias) ; linear: in*out + out ; pooling and BN are free
    conv = 32 * 32 * 4 * (3 * 9 + 1)
    assert run(model, "flops").value == pytest.approx((conv + 4 * 5 + 5) / 1e6, abs=1e-12)
    conv16 = 16 * 16 * 4 * (3 * 9 + 1)
    assert run(model, "flops", dataset="ImageNet16-120").value == pytest.approx((conv16 + 25) / 1e6, abs=1e-12)


def test_params_and_flops_of_nb201_13714_match_published_values():
    model = NB201.build(13714)  # C=16, N=5, CIFAR-10
    out = zcproxy.score(model, ["params", "flops"])
    assert out["params"].value == pytest.approx(1.073466, abs=1e-9)
    assert round(out["flops"].value, 2) == 153.27


# ---------------------------------------------------------------- NASWOT


def naswot_net() -> nn.Sequential:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 3, bias=False), nn.ReLU())
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[:, :2] = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [1.0, -1.0]])
    return model


def test_nwot_hand_computed_kernel():
    x = torch.zeros(2, 3, 32, 32)
    x.view(2, -1)[0, :2] = torch.tensor([1.0, 0.2])  # ReLU input [1, -0.8, 0.8] -> code 101
    x.view(2, -1)[1, :2] = torch.tensor([0.2, 1.0])  # ReLU input [0.2, 0.8, -0.8] -> code 110
    # K = [[3, 1], [1, 3]]: each code agrees with itself on 3 units, with the other on 1 -> det 8
    result = run(naswot_net(), "nwot", (x, torch.zeros(2, dtype=torch.long)))
    assert result.value == pytest.approx(math.log(8.0), rel=1e-12)
    assert not result.degenerate


def test_nwot_counts_agreements_over_every_relu():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(),
                          nn.Linear(5, 3))
    x = images(5, 8, seed=2) - 0.5
    with torch.no_grad():
        h1 = model[1](x.flatten(1))
        h2 = model[3](torch.relu(h1))
    codes = torch.cat([h1 > 0, h2 > 0], dim=1).numpy()
    kernel = np.array([[np.sum(a == b) for b in codes] for a in codes], dtype=float)
    expected = np.linalg.slogdet(kernel)[1]
    assert run(model, "nwot", (x, labels(5))).value == pytest.approx(expected, rel=1e-12)


def test_nwot_identical_codes_is_minus_inf_and_degenerate():
    x = torch.zeros(2, 3, 32, 32)
    x.view(2, -1)[:, :2] = torch.tensor([1.0, 0.2])  # both images give the same code
    result = run(naswot_net(), "nwot", (x, torch.zeros(2, dtype=torch.long)))
    assert result.value == -math.inf and result.degenerate


def test_nwot_without_relu_modules_raises_a_clear_error():
    with pytest.raises(ProxyError, match="nn.ReLU"):
        run(linear_model(), "nwot", (images(), labels()), strict=True)


# ---------------------------------------------------------------- jacov and EPE-NAS


def threshold_net(outputs: int = 1) -> nn.Sequential:
    """Input gradient of the summed output = 1[x - 0.5 > 0] per input element (a binary row per image)."""
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8 * 8, outputs, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        model[0].bias.fill_(-0.5)
        model[3].weight.fill_(1.0 / outputs)
    return model


def jacov_oracle(rows: np.ndarray) -> float:
    eig = np.clip(np.linalg.eigvalsh(np.corrcoef(rows)), 0.0, None)
    return float(-np.sum(np.log(eig + K) + 1.0 / (eig + K)))


def test_jacov_identical_gradients_give_closed_form():
    n = 8
    result = run(linear_model(), "jacov", (images(n), labels(n)))
    # every row equals sum_c W_c: correlation matrix of ones, eigenvalues (n, 0, ..., 0)
    expected = -((math.log(n + K) + 1 / (n + K)) + (n - 1) * (math.log(K) + 1 / K))
    assert result.value == pytest.approx(expected, rel=1e-6)


def test_jacov_matches_numpy_oracle_on_known_jacobians():
    x = images(6, 8, seed=3)
    rows = (x.reshape(6, -1) > 0.5).double().numpy()
    assert run(threshold_net(), "jacov", (x, labels(6))).value == pytest.approx(jacov_oracle(rows), rel=1e-9)


def test_jacov_constant_gradient_is_minus_inf_and_degenerate():
    model = linear_model()
    with torch.no_grad():
        model[1].weight.zero_()
    result = run(model, "jacov", (images(), labels()))
    assert result.value == -math.inf and result.degenerate


def epe_oracle(rows: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    per_class = {}
    for c in np.unique(y):
        members = rows[y == c]
        if len(members) == 1:
            if n_classes > 100:
                continue
            s = np.log(1.0 + K)
        else:
            corrs = np.corrcoef(members)
            s = np.sum(np.log(np.abs(corrs) + K))
            if n_classes > 100:
                s /= len(corrs)
        per_class[c] = s
    if n_classes <= 100:
        return float(sum(abs(s) for s in per_class.values()))
    return float(sum(abs(a - b) for a in per_class.values() for b in per_class.values()) / len(per_class))


def test_epe_nas_matches_oracle_for_few_classes():
    x = images(9, 8, seed=4)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])  # class 3 has a single image
    rows = (x.reshape(9, -1) > 0.5).double().numpy()
    expected = epe_oracle(rows, y.numpy(), 1)
    assert run(threshold_net(), "epe_nas", (x, y)).value == pytest.approx(expected, rel=1e-9)


def test_epe_nas_matches_oracle_for_more_than_100_classes():
    x = images(9, 8, seed=5)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])
    rows = (x.reshape(9, -1) > 0.5).double().numpy()
    expected = epe_oracle(rows, y.numpy(), 101)
    assert run(threshold_net(101), "epe_nas", (x, y)).value == pytest.approx(expected, rel=1e-9)


def test_epe_nas_with_many_classes_and_only_singletons_raises_a_clear_error():
    x, y = images(4, 8, seed=6), torch.arange(4)
    with pytest.raises(ProxyError, match="at least two images of one class"):
        run(threshold_net(101), "epe_nas", (x, y), strict=True)


def test_jacov_and_epe_nas_differentiate_with_respect_to_normalised_images():
    model = tiny_nb201()
    x, y = images(), labels()
    stripped = NB201.build(13714, C=4, N=1)
    stripped.load_state_dict(model.state_dict())
    normalised = stripped.normalize(x).detach().requires_grad_(True)
    stripped.normalize = nn.Identity()
    stripped(normalised).sum().backward()
    rows = normalised.grad.reshape(8, -1).double().numpy()
    assert run(model, "jacov", (x, y)).value == pytest.approx(jacov_oracle(rows), rel=1e-6)


# ---------------------------------------------------------------- Zen-NAS


def test_zen_identity_features_score_log_of_expected_perturbation():
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    x = images(8)
    result = run(model, "zen", (x, labels()))
    # pre-pooling feature = input: mean_n sum |gamma e_n| ~ gamma * 3072 * sqrt(2/pi); no BN term
    assert result.value == pytest.approx(math.log(0.01 * 3072 * math.sqrt(2 / math.pi)), abs=0.03)
    louder = run(model, "zen", (x, labels()), zen_mixup_gamma=0.1)
    assert louder.value - result.value == pytest.approx(math.log(10.0), abs=1e-4)


def test_zen_adds_log_sqrt_of_batchnorm_running_variance():
    model = nn.Sequential(nn.Conv2d(3, 64, 1, bias=False), nn.BatchNorm2d(64), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(64, 2))
    result = run(model, "zen", (images(8), labels()))
    # Conv weights ~ N(0,1) on N(0,1) inputs: channel variance ~ 3; running var after two train-mode passes
    # from 1 with momentum 0.1 is 0.81 + 0.19 * 3; BN output is standardised, so the difference term is
    # gamma * sum of 64*32*32 half-normals.
    expected = math.log(0.01 * 64 * 1024 * math.sqrt(2 / math.pi)) + 0.5 * math.log(0.81 + 0.19 * 3)
    assert result.value == pytest.approx(expected, abs=0.06)


def test_zen_ignores_the_callers_weights_and_running_statistics():
    x, y = images(), labels()
    model = tiny_nb201()
    other = tiny_nb201()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(3.0).add_(0.5)
        for m in other.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.fill_(9.0)
    assert run(model, "zen", (x, y)).value == run(other, "zen", (x, y)).value
    assert run(model, "zen", (x, y), seed=1).value != run(model, "zen", (x, y), seed=0).value


def test_zen_repeats_average_and_option_validation():
    x, y = images(), labels()
    model = tiny_nb201()
    three = run(model, "zen", (x, y), zen_repeats=3)
    assert math.isfinite(three.value) and three.settings["zen_repeats"] == 3
    for bad in ({"zen_repeats": 0}, {"zen_mixup_gamma": -1.0}, {"zen_mixup_gamma": float("nan")}):
        with pytest.raises(ProxyError, match=next(iter(bad))):
            run(model, "zen", (x, y), strict=True, **bad)


def test_zen_needs_global_average_pooling():
    with pytest.raises(ProxyError, match="AdaptiveAvgPool2d"):
        run(linear_model(), "zen", (images(), labels()), strict=True)


# ---------------------------------------------------------------- invariants for all 13


def _snapshot(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()],
            [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            [p.requires_grad for p in model.parameters()],
            [(len(m._forward_hooks), len(m._backward_hooks), len(m._forward_pre_hooks)) for m in model.modules()])


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_no_mutation_of_the_callers_model(mode):
    x, y = images(), labels()
    model = tiny_nb201()
    model.train(mode == "train")
    params = list(model.parameters())
    params[0].grad = torch.full_like(params[0], 0.25)
    params[1].requires_grad_(False)
    before = _snapshot(model)
    zcproxy.score(model, list(SUITE_ZERO), batch=(x, y))
    after = _snapshot(model)
    assert before[0].keys() == after[0].keys()
    for key in before[0]:
        assert torch.equal(before[0][key], after[0][key]), key
    assert before[1] == after[1]
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(before[2], after[2]))
    assert before[3] == after[3] and before[4] == after[4]


def test_every_proxy_is_bit_identical_across_calls():
    x, y = images(), labels()
    model = tiny_nb201()
    first = zcproxy.score(model, list(SUITE_ZERO), batch=(x, y))
    second = zcproxy.score(model, list(SUITE_ZERO), batch=(x, y))
    for name in SUITE_ZERO:
        assert first[name].value == second[name].value, name
        assert not math.isnan(first[name].value), name


def test_each_proxy_alone_equals_its_value_in_a_shared_call():
    x, y = images(), labels()
    model = tiny_nb201()
    together = zcproxy.score(model, list(SUITE_ZERO), batch=(x, y))
    for name in ("snip", "jacov", "epe_nas", "zen"):
        assert run(model, name, (x, y)).value == together[name].value, name


# values a network with constant output gets, and whether the proxy flags it itself
DEGENERATE = {"jacov": -math.inf, "zen": -math.inf, "epe_nas": 0.0, "synflow": 0.0, "snip": 0.0,
              "grad_norm": 0.0, "plain": 0.0, "grasp": 0.0}


def test_zero_output_arch_gives_documented_values_and_the_degenerate_flag():
    x, y = images(), labels()
    model = tiny_nb201(ZERO_OUTPUT_ARCH)
    assert NB201.is_zero_output(ZERO_OUTPUT_ARCH)
    flagged = zcproxy.score(model, list(SUITE_ZERO), batch=(x, y))
    for name, result in flagged.items():
        assert not math.isnan(result.value) and result.degenerate, name
    model.index = None  # the scorer no longer recognises the arch: the proxies must flag it themselves
    own = zcproxy.score(model, list(SUITE_ZERO), batch=(x, y))
    for name, value in DEGENERATE.items():
        assert own[name].value == value and own[name].degenerate, name
    assert own["nwot"].value == -math.inf and own["nwot"].degenerate  # every cell ReLU sees zeros
    for name in ("fisher", "l2_norm", "params", "flops"):
        assert math.isfinite(own[name].value), name
