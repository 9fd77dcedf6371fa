"""Float32 convolutions with float64 range (zcproxy/proxies/_rescaled_conv.py), as CRoZe uses them."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zcproxy.proxies._rescaled_conv import float32_convolutions


def _pair(layer: nn.Conv2d) -> tuple[nn.Conv2d, nn.Conv2d]:
    ref = layer.double()
    fast = nn.Conv2d(ref.in_channels, ref.out_channels, ref.kernel_size, ref.stride, ref.padding, ref.dilation,
                     ref.groups, bias=ref.bias is not None).double()
    fast.load_state_dict(ref.state_dict())
    assert float32_convolutions(fast) == 1
    return ref, fast


def _values_and_grads(layer: nn.Conv2d, x: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = layer(x)
    (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
    grads = [x.grad, layer.weight.grad] + ([layer.bias.grad] if layer.bias is not None else [])
    return [out.detach(), *grads]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_values_and_gradients_match_float64_within_float32_rounding():
    torch.manual_seed(0)
    for layer in (nn.Conv2d(6, 8, 3, padding=1), nn.Conv2d(6, 6, 3, stride=2, padding=2, dilation=2, groups=3),
                  nn.Conv2d(6, 4, 1, bias=False)):
        ref, fast = _pair(layer)
        x = torch.randn(5, 6, 9, 9, dtype=torch.float64)
        for a, b in zip(_values_and_grads(fast, x), _values_and_grads(ref, x)):
            assert a.dtype == torch.float64 and _rel(a, b) < 1e-6


def test_magnitudes_beyond_float32_are_rescaled_exactly():
    torch.manual_seed(1)
    ref, fast = _pair(nn.Conv2d(4, 4, 3, padding=1, bias=False))
    with torch.no_grad():
        for layer in (ref, fast):
            layer.weight.mul_(1e30)
    x = torch.rand(3, 4, 6, 6, dtype=torch.float64) * 1e40  # outputs ~1e70: inf or nan in plain float32
    assert not torch.isfinite(F.conv2d(x.float(), ref.weight.float(), padding=1)).all()
    for a, b in zip(_values_and_grads(fast, x), _values_and_grads(ref, x)):
        assert torch.isfinite(a).all() and _rel(a, b) < 1e-6


def test_only_float64_zero_padded_convolutions_change_and_hooks_still_fire():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding="same"),
                        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.Linear(6, 2)).double()
    seen = []
    net[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    assert float32_convolutions(net) == 1
    assert float32_convolutions(nn.Conv2d(3, 3, 1)) == 0  # float32 layers are left alone
    net[:2](torch.rand(2, 3, 6, 6, dtype=torch.float64))
    assert seen == [torch.float64]
