"""FGSM / PGD: budgets, pixel range, loss increase, determinism, twice-perturbed inputs, no mutation."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zcproxy import attacks
from zcproxy.space import NB201

F64 = torch.float64
EPS = 0.02


def batch(n: int = 8, size: int = 8, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g, dtype=F64)
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0], dtype=F64)  # pixels on the box boundary
    return x, torch.randint(0, classes, (n,), generator=g)


def small_cnn() -> nn.Module:
    torch.manual_seed(5)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 64, 3)).double()


def tiny_nb201() -> nn.Module:
    torch.manual_seed(6)
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
    return NB201.build(arch, num_classes=3, C=4, N=1).double()


def loss_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor, train: bool) -> float:
    net = copy.deepcopy(model).train(train)
    with torch.no_grad():
        return float(F.cross_entropy(net(x), y))


def linf(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_fgsm_matches_the_closed_form_on_a_linear_model():
    torch.manual_seed(7)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 3, bias=False)).double()
    x, y = batch()
    w = linear[1].weight.detach()
    logits = x.flatten(1) @ w.T
    # d CE / d x_n = W^T (softmax(W x_n) - onehot(y_n))
    grad = (torch.softmax(logits, 1) - F.one_hot(y, 3).double()) @ w
    expected = (x + EPS * grad.sign().reshape(x.shape)).clamp(0, 1)
    assert torch.equal(attacks.fgsm(linear, x, y, eps=EPS), expected)


@pytest.mark.parametrize("model_fn,train", [(small_cnn, False), (tiny_nb201, True)])
@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_budget_range_and_loss_increase(model_fn, train, method):
    model = model_fn()
    x, y = batch()
    g = torch.Generator().manual_seed(1)
    adv = attacks.attack(model, x, y, method=method, eps=EPS, steps=5, random_start=method == "pgd", generator=g)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert linf(adv, x) <= EPS + 1e-12
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert linf(adv, x) > 0.5 * EPS  # it actually moved
    assert loss_of(model, adv, y, train) > loss_of(model, x, y, train)


def test_twice_perturbed_is_centred_on_the_first_attack():
    model = small_cnn()
    x, y = batch()
    once = attacks.fgsm(model, x, y, eps=EPS)
    twice = attacks.fgsm(model, once, y, eps=EPS)
    assert torch.equal(attacks.fgsm(model, x, y, eps=EPS, times=2), twice)
    assert linf(twice, once) <= EPS + 1e-12
    assert linf(twice, x) <= 2 * EPS + 1e-12
    assert linf(twice, x) > EPS + 1e-6  # the second ball is not the first one
    assert float(twice.min()) >= 0.0 and float(twice.max()) <= 1.0


def test_pgd_one_step_of_size_eps_is_fgsm():
    model = tiny_nb201()
    x, y = batch()
    one_step = attacks.pgd(model, x, y, eps=EPS, steps=1, step_size=EPS)
    assert torch.equal(one_step, attacks.fgsm(model, x, y, eps=EPS))


def test_seeded_and_independent_of_the_global_rng():
    model = small_cnn()
    x, y = batch()

    def run(seed: int) -> torch.Tensor:
        return attacks.pgd(model, x, y, eps=EPS, steps=2, random_start=True,
                           generator=torch.Generator().manual_seed(seed))

    state = torch.get_rng_state()
    first = run(3)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)  # a different global state must not matter
    assert torch.equal(run(3), first)
    assert not torch.equal(run(4), first)


def test_model_is_not_mutated():
    model = tiny_nb201()
    model.cells[1].eval()
    model.stem[0].weight.requires_grad_(False)
    with torch.no_grad():
        model(batch(seed=3)[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    x, y = batch()
    for bn in ("train", "eval"):
        attacks.pgd(model, x, y, eps=EPS, steps=2, bn=bn)
    for k, v in model.state_dict().items():
        assert torch.equal(before[k], v), k
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_constant_output_network_leaves_images_unchanged():
    arch = next(i for i in range(NB201.size()) if NB201.is_zero_output(i))
    torch.manual_seed(0)
    model = NB201.build(arch, num_classes=3, C=4, N=1).double()
    x, y = batch()
    assert torch.equal(attacks.fgsm(model, x, y, eps=EPS), x)


def test_bad_inputs_are_named():
    model = small_cnn()
    x, y = batch()
    with pytest.raises(ValueError, match="method"):
        attacks.attack(model, x, y, method="cw")
    with pytest.raises(ValueError, match="eps"):
        attacks.fgsm(model, x, y, eps=8)
    with pytest.raises(ValueError, match=r"\[0, 1\] pixels"):
        attacks.fgsm(model, x * 255, y)
    with pytest.raises(ValueError, match="labels"):
        attacks.fgsm(model, x, y[:3])
    with pytest.raises(ValueError, match="labels must lie"):
        attacks.fgsm(model, x, y + 3)
    with pytest.raises(ValueError, match="generator"):
        attacks.pgd(model, x, y, random_start=True)
    with pytest.raises(ValueError, match="steps"):
        attacks.pgd(model, x, y, steps=0)
    with pytest.raises(ValueError, match="times"):
        attacks.fgsm(model, x, y, times=0)
