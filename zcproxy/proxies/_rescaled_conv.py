"""Float32 convolutions inside a float64 network, with float64's range kept by exact power-of-two rescaling.

PyTorch has no oneDNN kernel for float64 convolutions on CPU; they run the im2col path, about 10x slower
per convolution than float32. A network with every weight made positive and BatchNorm removed (CRoZe)
needs float64's range, not its precision: its logits reach ~1e47, beyond float32's 3.4e38. Here each
``nn.Conv2d`` of such a network computes

    conv(x, W) = s_x * s_W * conv32(x / s_x, W / s_W)

with s = 1 when max|t| lies in [2^-64, 2^64] and otherwise the power of two at or above max|t| (dividing
by a power of two is exact), the float32 convolution's result returned as float64; the backward pass
rescales the output gradient the same way. Everything outside the convolutions stays float64. The price
is float32 rounding inside each convolution (relative error ~1e-7 per output; entries below 2^-126 of a
tensor's scale flush to zero).
"""
from __future__ import annotations

import math
import types

import torch
import torch.nn.functional as F
from torch import nn

_SAFE_EXPONENT = 64  # |t| within [2^-64, 2^64] converts to float32 as it is (float32 reaches 2^127)


def _scale(t: torch.Tensor) -> float:
    """1.0, or the power of two at or above max|t| when max|t| is outside [2^-64, 2^64] (0 and non-finite: 1)."""
    if not t.numel():
        return 1.0
    lo, hi = torch.aminmax(_flat(t))
    top = max(-float(lo), float(hi))
    if top == 0.0 or not math.isfinite(top):
        return 1.0
    exponent = math.frexp(top)[1]
    return 1.0 if -_SAFE_EXPONENT <= exponent <= _SAFE_EXPONENT else math.ldexp(1.0, exponent)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """A 1-d view of a contiguous or channels-last tensor (reductions over a channels-last tensor taken in
    its logical order run ~10x slower), else a flat copy."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).reshape(-1)
    return t.reshape(-1)


def _to32(t: torch.Tensor, scale: float) -> torch.Tensor:
    return t.float() if scale == 1.0 else (t * (1.0 / scale)).float()


def _to64(t: torch.Tensor, dtype: torch.dtype, scale: float) -> torch.Tensor:
    out = t.to(dtype)
    return out if scale == 1.0 else out.mul_(scale)


class _RescaledConv2d(torch.autograd.Function):
    """conv2d without bias, computed in float32 on rescaled operands; forward and backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, stride: tuple, padding: tuple, dilation: tuple,
                groups: int) -> torch.Tensor:
        sx, sw = _scale(x), _scale(weight)
        ctx.save_for_backward(x, weight)  # the float64 tensors the graph holds anyway; float32 copies are remade
        ctx.conv = (sx, sw, stride, padding, dilation, groups)
        out = F.conv2d(_to32(x, sx), _to32(weight, sw), None, stride, padding, dilation, groups)
        return _to64(out, x.dtype, sx * sw)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple:
        x, weight = ctx.saved_tensors
        sx, sw, stride, padding, dilation, groups = ctx.conv
        sg = _scale(grad)
        gx, gw, _ = torch.ops.aten.convolution_backward(
            _to32(grad, sg), _to32(x, sx), _to32(weight, sw), None, stride, padding, dilation, False,
            [0] * len(stride), groups, [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False])
        gx = _to64(gx, grad.dtype, sg * sw) if gx is not None else None
        gw = _to64(gw, grad.dtype, sg * sx) if gw is not None else None
        return gx, gw, None, None, None, None


def _rescaled_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    out = _RescaledConv2d.apply(x, self.weight, self.stride, self.padding, self.dilation, self.groups)
    return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def float32_convolutions(model: nn.Module) -> int:
    """Make every float64 ``nn.Conv2d`` of ``model`` (zero padding, numeric padding) compute as above, in
    place; returns how many were changed. Forward hooks still fire (only the layer's ``forward`` changes)."""
    count = 0
    for m in model.modules():
        if (type(m) is nn.Conv2d and m.padding_mode == "zeros" and not isinstance(m.padding, str)
                and m.weight.dtype == torch.float64):
            m.forward = types.MethodType(_rescaled_forward, m)
            count += 1
    return count
