"""zcproxy.score invariants that every registered proxy must keep (the list is read at run time)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import zcproxy
from zcproxy import proxies
from zcproxy.scoring import planned_settings
from zcproxy.space import NB201


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return torch.rand(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)


MIXED = "|avg_pool_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|skip_connect~1|nor_conv_3x3~2|"


def tiny(arch: int | str = MIXED) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        return NB201.build(arch, C=4, N=1)


def _state(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()],
            [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            [p.requires_grad for p in model.parameters()],
            [len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules()])


@pytest.mark.parametrize("name", proxies.available())
def test_proxy_keeps_model_is_deterministic_and_nan_free(name, batch):
    model = tiny()
    model.eval()
    first_param = next(model.parameters())
    first_param.grad = torch.ones_like(first_param)
    before = _state(model)
    rng = torch.random.get_rng_state()
    first = zcproxy.score(model, [name], batch=batch)
    second = zcproxy.score(model, [name], batch=batch)
    after = _state(model)
    assert torch.equal(rng, torch.random.get_rng_state()), "global RNG was advanced"
    for key in before[0]:
        assert torch.equal(before[0][key], after[0][key]), key
    assert before[1] == after[1] and before[3] == after[3] and before[4] == after[4]
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(before[2], after[2]))
    assert set(first) == set(proxies.spec(name).outputs)
    for output, result in first.items():
        assert not math.isnan(result.value), output
        assert result.value == second[output].value, f"{output} differs between two identical calls"
        assert result.higher_is_better is proxies.spec(name).orientation[output]


@pytest.mark.data
@pytest.mark.parametrize("arch", [13714, MIXED])
def test_all_proxies_on_real_nb201_and_cifar10(arch, data_dir):
    out = zcproxy.score(arch, "all", batch_size=16, data_dir=str(data_dir))
    assert set(out) == set(proxies.outputs())
    for output, result in out.items():
        proxy_name = proxies.outputs()[output][0]
        assert not math.isnan(result.value), output
        assert result.seconds >= 0
        assert result.settings == planned_settings(proxy_name, batch_size=16), output
    if arch == 13714:  # NAS-Bench-201's published size of this network
        assert out["params"].value == pytest.approx(1.073466, abs=1e-9)
