"""L-infinity adversarial examples for networks at initialisation: FGSM and PGD in [0, 1] pixel space.

FGSM (Goodfellow et al., ICLR 2015): x' = clip_[0,1](x + eps * sign(grad_x CE(f(x), y))).
PGD (Madry et al., ICLR 2018): from x (or a uniform random start in the eps-ball), ``steps`` signed
gradient steps of size ``step_size``, each followed by projection onto the eps-ball around the start
point intersected with [0, 1]. FGSM is the one-step case with step size eps.

zcproxy networks normalise [0, 1] pixels in their first layer, so eps is in pixel units (8/255 = 8
grey levels). The loss is the cross-entropy on the true labels. Applying an attack to its own output,
``attack(model, attack(model, x, y), y)``, gives the "twice perturbed" A(A(x)) of Wu et al. (ICLR
2024): the second ball is centred at A(x), so ||A(A(x)) - x||_inf <= 2 eps.

BatchNorm during the attack (``bn``): ``"train"`` (default) normalises with the statistics of the batch
being attacked, as the NTK proxies' networks do at initialisation (fresh running statistics, mean 0 and
variance 1, describe no real activations); ``"eval"`` uses the model's running statistics. Attacks run
on a private copy, so the caller's model (weights, buffers, modes, flags) is never changed, and
randomness comes only from the ``generator`` argument.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["attack", "fgsm", "pgd", "METHODS", "BN_MODES"]

METHODS = ("fgsm", "pgd")
BN_MODES = ("train", "eval")


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str = "fgsm", eps: float = 8 / 255,
           steps: int = 10, step_size: float | None = None, random_start: bool = False,
           generator: torch.Generator | None = None, bn: str = "train", times: int = 1,
           device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Adversarial version of the [0, 1] images ``x`` (labels ``y``), applied ``times`` times in a row.

    ``method="fgsm"`` takes one step of size eps (``steps`` / ``step_size`` ignored); ``"pgd"`` takes
    ``steps`` steps of ``step_size`` (default 2.5 * eps / steps). ``random_start`` starts from a uniform
    point of the eps-ball drawn from ``generator`` (required then). ``times=2`` gives A(A(x)). Runs in
    ``dtype`` (default: x's dtype) on ``device``; returns a detached tensor of that dtype.
    """
    if method not in METHODS:
        raise ValueError(f"attack method must be one of {list(METHODS)}, got {method!r}")
    if bn not in BN_MODES:
        raise ValueError(f"attack bn must be one of {list(BN_MODES)}, got {bn!r}")
    eps = _check_eps(eps)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError(f"times must be a positive int (2 = attack the adversarial example again), got {times!r}")
    if method == "fgsm":
        steps, step_size = 1, eps
    else:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"PGD steps must be a positive int, got {steps!r}")
        step_size = 2.5 * eps / steps if step_size is None else _check_step(step_size)
    if random_start and generator is None:
        raise ValueError("random_start=True needs a seeded torch.Generator (generator=...); "
                         "attacks never use the global RNG")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    device = torch.device(device)
    x = _check_pixels(x)
    dtype = dtype or x.dtype
    x = x.to(device=device, dtype=dtype)
    net = copy.deepcopy(model).to(device=device, dtype=dtype)
    for p in net.parameters():
        p.requires_grad_(False)
    if bn == "train":
        _without_running_statistics(net)
    net.train(bn == "train")
    y = _check_labels(y, x.shape[0], device)
    adversarial = x
    for _ in range(times):
        adversarial = _projected_steps(net, adversarial, y, eps, steps, step_size, random_start, generator)
    return adversarial


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 8 / 255, **kwargs) -> torch.Tensor:
    """FGSM: ``attack(..., method="fgsm")``."""
    return attack(model, x, y, method="fgsm", eps=eps, **kwargs)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 8 / 255, steps: int = 10,
        step_size: float | None = None, **kwargs) -> torch.Tensor:
    """L-infinity PGD: ``attack(..., method="pgd")``."""
    return attack(model, x, y, method="pgd", eps=eps, steps=steps, step_size=step_size, **kwargs)


def _projected_steps(net: nn.Module, start: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                     step_size: float, random_start: bool, generator: torch.Generator | None) -> torch.Tensor:
    lower = (start - eps).clamp(0.0, 1.0)
    upper = (start + eps).clamp(0.0, 1.0)
    current = start
    if random_start:
        noise = torch.rand(start.shape, generator=generator, dtype=start.dtype, device="cpu")
        current = torch.maximum(torch.minimum(start + (2 * noise.to(start.device) - 1) * eps, upper), lower)
    for _ in range(steps):
        current = current.detach().requires_grad_(True)
        logits = net(current)
        if logits.dim() != 2 or int(y.max()) >= logits.shape[1] or int(y.min()) < 0:
            raise ValueError(f"labels must lie in [0, {logits.shape[-1] - 1}] for a model with "
                             f"{logits.shape[-1]} outputs, got labels in [{int(y.min())}, {int(y.max())}]")
        loss = F.cross_entropy(logits, y, reduction="sum")
        (direction,) = torch.autograd.grad(loss, current)
        stepped = current.detach() + step_size * direction.sign()
        current = torch.maximum(torch.minimum(stepped, upper), lower)
    return current.detach()


def _without_running_statistics(net: nn.Module) -> None:
    for layer in net.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.track_running_stats = False
            layer.running_mean = None
            layer.running_var = None
            layer.num_batches_tracked = None


def _check_eps(eps: object) -> float:
    try:
        value = float(eps)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a number in [0, 1] (pixel units, e.g. 8/255), got {eps!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"eps must be in [0, 1] (pixel units, e.g. 8/255), got {eps!r}")
    return value


def _check_step(step: object) -> float:
    try:
        value = float(step)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"PGD step_size must be a positive number, got {step!r}") from None
    if not value > 0.0:
        raise ValueError(f"PGD step_size must be a positive number, got {step!r}")
    return value


def _check_pixels(x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"attack images must be a tensor N x C x H x W, got {getattr(x, 'shape', type(x).__name__)}")
    if not x.is_floating_point():
        raise ValueError(f"attack images must be floating point in [0, 1], got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("attack images contain NaN or inf")
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"attack images must be [0, 1] pixels (the model normalises them itself), "
                         f"got values in [{low:.3g}, {high:.3g}]")
    return x.detach()


def _check_labels(y: object, n: int, device: torch.device) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != n:
        got = getattr(y, "shape", type(y).__name__)
        raise ValueError(f"labels must be a 1-D tensor of {n} class indices, got {got}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    return y.to(device=device, dtype=torch.long)
