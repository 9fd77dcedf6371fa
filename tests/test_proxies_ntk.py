"""The five NTK proxies: brute-force oracle, shared computation, beta identities, degenerate archs, options."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import zcproxy.attacks
import zcproxy.ntk
from zcproxy import proxies
from zcproxy.errors import ProxyError
from zcproxy.proxies.ntk import ntk_scores, ntk_scores_over_eps
from zcproxy.scoring import score
from zcproxy.space import NB201

F64 = torch.float64
NAMES = ["ntk_clean", "ntk_robust", "ntk_joint_clean", "ntk_joint_robust", "ntk_cond"]
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
EPS = 0.03


def tiny_nb201(arch: str | int = ARCH) -> nn.Module:
    torch.manual_seed(11)
    return NB201.build(arch, num_classes=10, C=4, N=1)


def batch(n: int = 6, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def values(results) -> dict[str, float]:
    return {k: r.value for k, r in results.items()}


def test_matches_a_brute_force_oracle():
    """No BatchNorm: every Jacobian row is a plain per-sample gradient and FGSM has a two-line reference."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 64, 4)).double()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, 3, 8, 8, generator=g, dtype=F64)
    y = torch.randint(0, 4, (5,), generator=g)
    params = list(model.parameters())

    def fgsm(inputs):
        inputs = inputs.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(F.cross_entropy(model(inputs), y, reduction="sum"), inputs)
        return (inputs + EPS * gx.sign()).clamp(inputs - EPS, inputs + EPS).clamp(0, 1).detach()

    def rows(inputs):
        out = []
        for i in range(inputs.shape[0]):
            grads = torch.autograd.grad(model(inputs[i:i + 1]).sum(), params)
            out.append(torch.cat([gr.reshape(-1) for gr in grads]))
        return torch.stack(out).numpy()

    x1 = fgsm(x)
    j0, j1, j2 = rows(x), rows(x1), rows(fgsm(x1))

    def lam(a, b, beta):
        jb = (1 - beta) * a + beta * b
        return np.linalg.eigvalsh(jb @ jb.T)

    got = ntk_scores(model, x, y, eps=EPS, betas=(0.0, 0.4, 1.0), dtype=F64)
    eig0 = np.linalg.eigvalsh(j0 @ j0.T)
    assert got["ntk_clean"] == pytest.approx(eig0[0], rel=1e-8)
    assert got["ntk_cond"] == pytest.approx(eig0[-1] / eig0[0], rel=1e-8)
    assert got["ntk_robust"] == pytest.approx(np.linalg.eigvalsh(j1 @ j1.T)[0], rel=1e-8)
    for beta in (0.0, 0.4, 1.0):
        assert got[f"ntk_joint_clean@{beta:g}"] == pytest.approx(lam(j0, j1, beta)[0], rel=1e-8)
        assert got[f"ntk_joint_robust@{beta:g}"] == pytest.approx(lam(j1, j2, beta)[0], rel=1e-8)
    assert got["ntk_robust"] != pytest.approx(got["ntk_clean"], rel=1e-3)  # the attack changed the kernel


def test_one_score_call_computes_each_attack_and_jacobian_once(monkeypatch):
    calls = {"jacobian": 0, "attack": 0}
    real_jacobian, real_attack = zcproxy.ntk.jacobian, zcproxy.attacks.attack

    def counting_jacobian(*args, **kwargs):
        calls["jacobian"] += 1
        return real_jacobian(*args, **kwargs)

    def counting_attack(*args, **kwargs):
        calls["attack"] += 1
        return real_attack(*args, **kwargs)

    monkeypatch.setattr(zcproxy.ntk, "jacobian", counting_jacobian)
    monkeypatch.setattr(zcproxy.attacks, "attack", counting_attack)
    results = score(tiny_nb201(), NAMES, batch=batch(), eps=EPS, beta=0.5)
    assert calls == {"jacobian": 3, "attack": 2}
    assert set(results) == set(NAMES)
    calls.update(jacobian=0, attack=0)
    score(tiny_nb201(), ["ntk_clean", "ntk_cond"], batch=batch())
    assert calls == {"jacobian": 1, "attack": 0}


def test_proxies_agree_with_the_sweep_function_and_its_block_formula():
    model, (x, y) = tiny_nb201(), batch()
    for beta in (0.5, 1.0):
        got = values(score(model, NAMES, batch=(x, y), eps=EPS, beta=beta))
        sweep = ntk_scores(model, x, y, eps=EPS, betas=(beta,))
        assert got["ntk_clean"] == pytest.approx(sweep["ntk_clean"], rel=1e-9)
        assert got["ntk_cond"] == pytest.approx(sweep["ntk_cond"], rel=1e-9)
        assert got["ntk_robust"] == pytest.approx(sweep["ntk_robust"], rel=1e-9)
        # proxies use J_b J_b^T, the sweep uses the Gram blocks: equal up to float64 round-off
        assert got["ntk_joint_clean"] == pytest.approx(sweep[f"ntk_joint_clean@{beta:g}"], rel=1e-6)
        assert got["ntk_joint_robust"] == pytest.approx(sweep[f"ntk_joint_robust@{beta:g}"], rel=1e-6)
        assert all(v > 0 and math.isfinite(v) for v in got.values())
    # beta = 1 (the default): the joint clean kernel is the robust kernel
    default = values(score(model, NAMES, batch=(x, y), eps=EPS))
    assert default["ntk_joint_clean"] == default["ntk_robust"]


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_eps_grid_equals_one_call_per_eps(attack):
    """Sharing J(X) across radii changes nothing: each entry equals its own ntk_scores call."""
    model, (x, y) = tiny_nb201(), batch()
    radii = (1 / 255, 4 / 255, 8 / 255)
    grid = ntk_scores_over_eps(model, x, y, eps_values=radii, attack=attack, betas=(0.0, 0.5, 1.0), pgd_steps=3,
                               random_start=True, seed=5)
    assert len(grid) == len(radii)
    for eps, got in zip(radii, grid):
        alone = ntk_scores(model, x, y, eps=eps, attack=attack, betas=(0.0, 0.5, 1.0), pgd_steps=3,
                           random_start=True, seed=5)
        assert got == alone
    assert grid[0]["ntk_robust"] != grid[2]["ntk_robust"]
    with pytest.raises(ValueError, match="eps_values"):
        ntk_scores_over_eps(model, x, y, eps_values=())


def test_condition_number_and_trace_normalisation():
    model, (x, y) = tiny_nb201(), batch()
    kernel = zcproxy.ntk.gram(zcproxy.ntk.jacobian(model, x))
    eig = torch.linalg.eigvalsh(kernel)
    got = values(score(model, ["ntk_clean", "ntk_cond"], batch=(x, y)))
    assert got["ntk_clean"] == pytest.approx(float(eig[0]), rel=1e-9)
    assert got["ntk_cond"] == pytest.approx(float(eig[-1] / eig[0]), rel=1e-9)
    normed = score(model, ["ntk_clean"], batch=(x, y), normalize="trace")["ntk_clean"]
    assert normed.value == pytest.approx(float(eig[0] / torch.trace(kernel)), rel=1e-9)
    assert normed.settings["normalize"] == "trace"


def test_seeded_random_start_is_reproducible():
    model, b = tiny_nb201(), batch()
    opts = dict(attack="pgd", pgd_steps=2, random_start=True, eps=EPS)
    first = values(score(model, ["ntk_robust"], batch=b, seed=1, **opts))
    assert values(score(model, ["ntk_robust"], batch=b, seed=1, **opts)) == first
    assert values(score(model, ["ntk_robust"], batch=b, seed=2, **opts)) != first


def test_zero_output_architecture_is_flagged_not_nan():
    arch = next(i for i in range(NB201.size()) if NB201.is_zero_output(i))
    results = score(arch, NAMES, batch=batch(4, 32))
    for name in NAMES:
        r = results[name]
        assert r.degenerate
        assert r.value == (math.inf if name == "ntk_cond" else 0.0)
    # computed rather than short-cut, the kernel is singular as well and gets the same values
    model = NB201.build(arch, num_classes=10, C=4, N=1)
    x, y = batch()
    computed = ntk_scores(model, x, y, betas=(0.5,))
    assert computed["ntk_cond"] == math.inf
    assert all(v == 0.0 for k, v in computed.items() if k != "ntk_cond")


def test_specs_and_recorded_settings():
    for name in NAMES:
        s = proxies.spec(name)
        assert s.higher_is_better is (name != "ntk_cond")
        assert s.outputs == (name,)
    r = score(tiny_nb201(), ["ntk_joint_robust"], batch=batch(), eps=3 / 255, beta=0.25)["ntk_joint_robust"]
    for key, value in {"attack": "fgsm", "eps": 3 / 255, "beta": 0.25, "ntk_output": "sum", "ntk_bn": "frozen",
                       "ntk_params": "all", "pgd_steps": 10, "random_start": False, "normalize": None,
                       "attack_dtype": "float64", "torch_threads": torch.get_num_threads()}.items():
        assert r.settings[key] == value, key


@pytest.mark.parametrize("option,value,words", [("attack", "cw", "attack must be one of"),
                                                ("beta", 2.0, "beta must be in"),
                                                ("normalize", "max", "normalize must be"),
                                                ("ntk_bn", "train", "bn must be one of"),
                                                ("attack_dtype", "float16", "attack_dtype must be one of")])
def test_bad_options_are_named(option, value, words):
    with pytest.raises(ProxyError, match=words):
        score(tiny_nb201(), ["ntk_joint_clean"], batch=batch(), strict=True, **{option: value})


@pytest.mark.data
def test_real_cifar_batch_on_a_full_network(data_dir):
    from zcproxy.data import proxy_batch

    b = proxy_batch("cifar10", n=8, seed=0, data_dir=data_dir)
    results = score(NB201.index(ARCH), NAMES, batch=b, seed=0)
    assert all(math.isfinite(r.value) and r.value > 0 and not r.degenerate for r in results.values())
    assert results["ntk_joint_clean"].value == results["ntk_robust"].value


def _kernel_pair(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A(X) of a C=16, N=5 NB201 network on 8 seeded 32x32 images, computed in ``dtype`` with the NCHW and with the
    channels-last convolution kernels (two float summation orders, as another CPU or thread count gives)."""
    torch.manual_seed(5)
    model = NB201.build(ARCH, num_classes=10, C=16, N=5)
    x, y = batch(n=8, size=32, seed=4)
    nchw = zcproxy.attacks.attack(model, x, y, dtype=dtype)
    nhwc = zcproxy.attacks.attack(model, x.contiguous(memory_format=torch.channels_last), y, dtype=dtype)
    return nchw, nhwc


def test_float64_attack_is_independent_of_the_float_kernel():
    """Issue 22: float32 input gradients have components below their rounding error, so FGSM's sign() flips
    with the kernel and A(X) moves; the float64 attack (the default) gives bit-identical A(X)."""
    old = _kernel_pair(torch.float32)
    assert not torch.equal(*old)  # the old behaviour: another summation order, another adversarial batch
    assert int((old[0] != old[1]).sum()) > 10
    new = _kernel_pair(torch.float64)
    assert torch.equal(*new)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # on the CPUs measured so far 2 threads change no bit even in float32
    try:
        assert torch.equal(_kernel_pair(torch.float64)[0], new[0])
    finally:
        torch.set_num_threads(before)


def test_attack_dtype_float32_is_the_old_behaviour_and_float64_the_default():
    model, (x, y) = tiny_nb201(), batch()
    old = values(score(model, ["ntk_robust"], batch=(x, y), attack_dtype="float32"))["ntk_robust"]
    legacy_attack = zcproxy.attacks.attack(model, x, y, eps=8 / 255)
    j = zcproxy.ntk.jacobian(model, legacy_attack, chunk_size=None)
    assert old == pytest.approx(zcproxy.ntk.spectrum(zcproxy.ntk.gram(j)).lambda_min, rel=1e-12)
    new = score(model, ["ntk_robust"], batch=(x, y))["ntk_robust"]
    assert new.settings["attack_dtype"] == "float64"
    strong = zcproxy.attacks.attack(model, x.double(), y, eps=8 / 255, dtype=F64)
    j = zcproxy.ntk.jacobian(model, strong.float(), chunk_size=None)
    assert new.value == pytest.approx(zcproxy.ntk.spectrum(zcproxy.ntk.gram(j)).lambda_min, rel=1e-12)
    assert ntk_scores(model, x, y)["ntk_robust"] == new.value
    assert ntk_scores(model, x, y, attack_dtype="float32")["ntk_robust"] == old


def _tracked_jacobians(monkeypatch) -> tuple[list, list]:
    """Wrap the engine's jacobian(): every call's result (weakly) and how many earlier ones were alive then."""
    import gc
    import weakref

    from zcproxy.proxies import ntk as ntk_proxies

    made, alive_at_call = [], []
    real = ntk_proxies._ntk.jacobian

    def tracked(*args, **kwargs):
        gc.collect()
        alive_at_call.append(sum(ref() is not None for ref in made))
        j = real(*args, **kwargs)
        made.append(weakref.ref(j.rows))
        return j

    monkeypatch.setattr(ntk_proxies._ntk, "jacobian", tracked)
    return made, alive_at_call


def test_one_jacobian_alive_at_a_time_with_the_default_beta(monkeypatch):
    """Memory (issue 20): at beta = 1 each kernel's Jacobian is dropped once its spectrum is known; values equal
    the three-Jacobian computation of ntk_scores()."""
    model, (x, y) = tiny_nb201(), batch()
    made, alive = _tracked_jacobians(monkeypatch)
    got = values(score(model, NAMES, batch=(x, y)))
    assert len(made) == 3 and alive == [0, 0, 0]
    monkeypatch.undo()
    expected = ntk_scores(model, x, y, betas=(1.0,))
    assert got["ntk_clean"] == expected["ntk_clean"] and got["ntk_robust"] == expected["ntk_robust"]
    assert got["ntk_joint_robust"] == pytest.approx(expected["ntk_joint_robust@1"], rel=1e-12)


def test_a_mixed_beta_keeps_the_jacobians_it_mixes(monkeypatch):
    model, (x, y) = tiny_nb201(), batch()
    made, alive = _tracked_jacobians(monkeypatch)
    got = values(score(model, NAMES, batch=(x, y), beta=0.5))
    assert len(made) == 3 and alive == [0, 1, 2]
    monkeypatch.undo()
    expected = ntk_scores(model, x, y, betas=(0.5,))
    for name in ("ntk_clean", "ntk_robust"):
        assert got[name] == expected[name]
    for name in ("ntk_joint_clean", "ntk_joint_robust"):
        assert got[name] == pytest.approx(expected[f"{name}@0.5"], rel=1e-6)  # float32 mix vs block formula
