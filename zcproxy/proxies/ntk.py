"""NTK proxies of Wu et al., ICLR 2024 ("Robust NAS under adversarial training", NAS-RobBench-201) and the
TE-NAS condition number (Chen et al., ICLR 2021).

With X the proxy batch, A = A_eps the attack (FGSM by default, eps = 8/255) and J(.) the Jacobian of the
summed output at initialisation (:mod:`zcproxy.ntk`, frozen BatchNorm statistics by default):

- ``ntk_clean``        = lambda_min(K),  K = J(X) J(X)^T
- ``ntk_robust``       = lambda_min(K~), K~ = J(A(X)) J(A(X))^T
- ``ntk_joint_clean``  = lambda_min(K_all(beta)), K_all = (1-b)^2 K + b(1-b)(K_ + K_^T) + b^2 K~ with the
  cross kernel K_ = J(X) J(A(X))^T; computed as J_b J_b^T with J_b = (1-b) J(X) + b J(A(X)).
- ``ntk_joint_robust`` = the same with (A(X), A(A(X))) in place of (X, A(X)): the paper's kernel for
  robust accuracy.
- ``ntk_cond``         = lambda_max(K) / lambda_min(K) (TE-NAS's score, lower is better) of the same kernel K
  as ``ntk_clean``. With the default ``ntk_bn="frozen"`` this is NOT TE-NAS's number: TE-NAS differentiates
  through train-mode batch statistics, which ``ntk_bn="batch"`` reproduces. On the 100 architectures of the
  NTK sweep (results/correlation/stores/ntk_sweep.sqlite) the frozen-statistics condition number is a
  median 4.5x the batch-statistics one (interquartile 2.8-5.9x), and Kendall tau with CIFAR-10 PGD-8
  accuracy is 0.488 (frozen) against 0.539 (batch) (results/correlation/ntk_sweep_bn.md); the batch
  kernel costs N backward passes (results/perf/perf_ratios.md gives the ratio).

Attack precision (``attack_dtype``, default ``"float64"``): FGSM steps by sign(grad_x CE). In float32 a
fraction of the input-gradient components are smaller than their own rounding error (on CIFAR-10 NB201
networks 0.01-0.7 % of them change sign between a float32 and a float64 gradient), so any change of
floating-point kernel (another CPU instruction set, library version or memory layout) flips their signs and
moves A(X); lambda_min of the adversarial kernels then moved by up to 9.5 % on rescoring while the clean one
moved by 0.4 % (results/stability/ntk_attack_precision.md). ``"float64"`` computes the attack's forward and
backward on a float64 copy of the network (the Jacobians stay in the proxy dtype): its rounding error is ~1e-16
relative, far below the smallest measured gradient component, so A(X) no longer depends on the kernel. Cost:
a float64 attack takes ~2.6x a float32 one on CPU, about +20 % on ``ntk_robust`` and ``ntk_joint_robust``
(the Jacobians dominate). ``"float32"`` is the behaviour before this option existed (stored rows without the
option were computed that way and are migrated to say so, :mod:`zcproxy.store`).

Higher lambda_min predicts higher accuracy. beta defaults to 1.0 (the benchmark's pure adversarial
training), where ``ntk_joint_clean`` equals ``ntk_robust``. Within one ``score()`` call X, A(X), A(A(X))
and each Jacobian are computed once and shared by all five proxies; unless the call's beta is strictly
between 0 and 1 (the only case that mixes two Jacobians), a Jacobian is dropped once its kernel's spectrum is
known, so one Jacobian is alive at a time. A singular kernel (constant-output
networks) gives lambda_min = 0, cond = inf and the "degenerate" flag.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from .. import attacks as _attacks
from .. import ntk as _ntk
from ._hooks import check_batch
from ._registry import ProxyContext, proxy

__all__ = ["ntk_clean", "ntk_robust", "ntk_joint_clean", "ntk_joint_robust", "ntk_cond", "ntk_scores"]

_REFERENCE = "Wu, Liu, Simon-Gabriel, Chrysos & Cevher, ICLR 2024 (NAS-RobBench-201), arXiv 2403.13134"
_JACOBIAN_DEFAULTS: dict[str, Any] = {"ntk_output": "sum", "ntk_bn": "frozen", "ntk_params": "all"}
_ATTACK_DEFAULTS: dict[str, Any] = {"attack": "fgsm", "eps": 8 / 255, "pgd_steps": 10, "pgd_step_size": None,
                                    "random_start": False, "attack_bn": "train",
                                    "attack_dtype": "float64"}
_NORMALIZE = (None, "trace")
ATTACK_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Frozen-BN Jacobian rows are differentiated 16 samples at a time and written into one buffer when the
# batch is a multiple of 16: the same bits as the whole batch at once (tests/test_shared_passes.py; chunks
# of 2, 8 and 16 samples are, odd chunk sizes take another convolution path and are not), a similar time,
# and about 0.6 GB less peak memory on a 1M-parameter network at N = 64.
_FROZEN_ROWS_PER_PASS = 16


@proxy("ntk_clean", needs=("data",), bn="train", dtype=torch.float32, higher_is_better=True, cost="jacobian",
       reference=_REFERENCE, defaults={**_JACOBIAN_DEFAULTS, "normalize": None})
def ntk_clean(ctx: ProxyContext) -> float:
    """lambda_min(J(X) J(X)^T) (divided by its trace when normalize="trace")."""
    return _lambda_min(ctx, ("clean",))


@proxy("ntk_robust", needs=("data", "labels"), bn="train", dtype=torch.float32, higher_is_better=True,
       cost="attack", reference=_REFERENCE, defaults={**_JACOBIAN_DEFAULTS, **_ATTACK_DEFAULTS, "normalize": None})
def ntk_robust(ctx: ProxyContext) -> float:
    """lambda_min(J(A(X)) J(A(X))^T)."""
    return _lambda_min(ctx, ("single", 1))


@proxy("ntk_joint_clean", needs=("data", "labels"), bn="train", dtype=torch.float32, higher_is_better=True,
       cost="attack", reference=_REFERENCE,
       defaults={**_JACOBIAN_DEFAULTS, **_ATTACK_DEFAULTS, "beta": 1.0, "normalize": None})
def ntk_joint_clean(ctx: ProxyContext) -> float:
    """lambda_min(J_b J_b^T), J_b = (1 - beta) J(X) + beta J(A(X))."""
    return _lambda_min(ctx, ("joint", 0, _ntk._check_beta(ctx.options["beta"])))


@proxy("ntk_joint_robust", needs=("data", "labels"), bn="train", dtype=torch.float32, higher_is_better=True,
       cost="attack", reference=_REFERENCE,
       defaults={**_JACOBIAN_DEFAULTS, **_ATTACK_DEFAULTS, "beta": 1.0, "normalize": None})
def ntk_joint_robust(ctx: ProxyContext) -> float:
    """lambda_min(J_b J_b^T), J_b = (1 - beta) J(A(X)) + beta J(A(A(X)))."""
    return _lambda_min(ctx, ("joint", 1, _ntk._check_beta(ctx.options["beta"])))


@proxy("ntk_cond", needs=("data",), bn="train", dtype=torch.float32, higher_is_better=False, cost="jacobian",
       reference="Chen, Gong & Wang, ICLR 2021 (TE-NAS): NTK condition number, here of the frozen-BN kernel "
                 "(median 4.5x TE-NAS's value on NB201); ntk_bn=\"batch\" gives TE-NAS's kernel",
       defaults=dict(_JACOBIAN_DEFAULTS))
def ntk_cond(ctx: ProxyContext) -> float:
    """lambda_max(K) / lambda_min(K) of the clean kernel; inf (flag "degenerate") when K is singular.

    TE-NAS's own kernel (train-mode batch statistics) is ``ntk_bn="batch"``; the default frozen-statistics
    kernel is the cheap one (see the module docstring for how far apart the two are)."""
    if ctx.zero_output:
        ctx.flag("degenerate")
        return math.inf
    s = _spectrum(ctx, ("clean",))
    if s.degenerate:
        ctx.flag("degenerate")
    return s.cond


def ntk_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack: str = "fgsm", eps: float = 8 / 255,
               betas: Iterable[float] = (0.0, 0.25, 0.5, 0.75, 1.0), bn: str = "frozen", output: str = "sum",
               params: str = "all", pgd_steps: int = 10, pgd_step_size: float | None = None,
               random_start: bool = False, attack_bn: str = "train", attack_dtype: str = "float64",
               normalize: str | None = None, seed: int = 0, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Every NTK score of one network for several beta at once (for sweeps), from three Jacobians.

    Returns ``ntk_clean``, ``ntk_robust``, ``ntk_cond`` and ``ntk_joint_clean@<beta>`` /
    ``ntk_joint_robust@<beta>`` for each beta (formatted with ``:g``). The joint kernels are assembled
    from the Gram blocks, (1-b)^2 K00 + b(1-b)(K01 + K01^T) + b^2 K11, so extra betas cost only an
    eigendecomposition each. Singular kernels give 0 (cond: inf). Random starts (``random_start``) draw
    from generators seeded by ``seed`` and the attack level.
    """
    return ntk_scores_over_eps(model, x, y, eps_values=(eps,), attack=attack, betas=betas, bn=bn, output=output,
                               params=params, pgd_steps=pgd_steps, pgd_step_size=pgd_step_size,
                               random_start=random_start, attack_bn=attack_bn, attack_dtype=attack_dtype,
                               normalize=normalize, seed=seed, device=device, dtype=dtype)[0]


def ntk_scores_over_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps_values: Iterable[float],
                        attack: str = "fgsm", betas: Iterable[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
                        bn: str = "frozen", output: str = "sum", params: str = "all", pgd_steps: int = 10,
                        pgd_step_size: float | None = None, random_start: bool = False, attack_bn: str = "train",
                        attack_dtype: str = "float64", normalize: str | None = None, seed: int = 0,
                        device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> list[dict[str, float]]:
    """:func:`ntk_scores` for each eps of ``eps_values`` (same order), sharing the clean Jacobian J(X).

    A sweep over k radii costs 1 + 2k Jacobians and 2k attacks instead of 3k Jacobians; each entry equals
    ``ntk_scores(..., eps=e)`` exactly (the attacks of one radius never depend on another's).
    """
    eps_values = tuple(eps_values)
    if not eps_values:
        raise ValueError("eps_values must hold at least one attack radius, got an empty sequence")
    betas = tuple(_ntk._check_beta(b) for b in betas)
    _check_normalize(normalize)
    precision = _attack_precision(attack_dtype)
    device = torch.device(device)
    x = check_batch(x, "ntk_scores").to(device=device, dtype=dtype)
    j_clean = _ntk.jacobian(model, x, output=output, bn=bn, params=params, dtype=dtype, device=device)
    k00 = _ntk.gram(j_clean)
    clean = _ntk.spectrum(k00)
    per_eps = []
    for eps in eps_values:
        settings = dict(method=attack, eps=eps, steps=pgd_steps, step_size=pgd_step_size,
                        random_start=random_start, bn=attack_bn, device=device, dtype=precision)
        adversarial = [x]
        for level in (1, 2):
            generator = _seeded_generator(seed, level) if random_start else None
            adversarial.append(_attacks.attack(model, adversarial[-1], y, generator=generator, **settings))
        j_once, j_twice = (_ntk.jacobian(model, a, output=output, bn=bn, params=params, dtype=dtype, device=device)
                           for a in adversarial[1:])
        k11, k22 = _ntk.gram(j_once), _ntk.gram(j_twice)
        k01, k12 = _ntk.gram(j_clean, j_once), _ntk.gram(j_once, j_twice)
        del j_once, j_twice
        scores = {"ntk_clean": _normalized(clean, normalize), "ntk_cond": clean.cond,
                  "ntk_robust": _normalized(_ntk.spectrum(k11), normalize)}
        for beta in betas:
            for name, (ka, kab, kb) in (("ntk_joint_clean", (k00, k01, k11)),
                                        ("ntk_joint_robust", (k11, k12, k22))):
                joint = (1 - beta) ** 2 * ka + beta * (1 - beta) * (kab + kab.T) + beta ** 2 * kb
                scores[f"{name}@{beta:g}"] = _normalized(_ntk.spectrum(joint), normalize)
        per_eps.append(scores)
    return per_eps


# --------------------------------------------------------------------------------------------- helpers
def _check_normalize(normalize: object) -> None:
    if normalize not in _NORMALIZE:
        raise ValueError("normalize must be None or 'trace' (divide lambda_min by the kernel trace), "
                         f"got {normalize!r}")


def _attack_precision(attack_dtype: object) -> torch.dtype:
    if not isinstance(attack_dtype, str) or attack_dtype not in ATTACK_DTYPES:
        raise ValueError(f"option attack_dtype must be one of {list(ATTACK_DTYPES)} (the precision of the attack's "
                         f"input gradient), got {attack_dtype!r}")
    return ATTACK_DTYPES[attack_dtype]


def _normalized(s: _ntk.Spectrum, normalize: str | None) -> float:
    if normalize == "trace":
        return s.lambda_min / s.trace if s.trace > 0 else 0.0
    return s.lambda_min


def _seeded_generator(seed: int, offset: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed) * 1_000_003 + int(offset))
    return g


def _jacobian_key(options: Mapping[str, Any]) -> tuple:
    return tuple(options[k] for k in _JACOBIAN_DEFAULTS)


def _attack_key(options: Mapping[str, Any]) -> tuple:
    return tuple(options[k] for k in _ATTACK_DEFAULTS)


def _adversarial(ctx: ProxyContext, level: int) -> torch.Tensor:
    """A^level(X): level 1 = A(X), level 2 = A(A(X)), each attack run once per score() call.

    The attack and the Jacobian engine take ``ctx.model`` itself: both work on their own private deep copy
    in the mode they need and never change the model, so a ``model_copy()`` first would only copy twice."""
    options = ctx.options
    dtype = _attack_precision(options["attack_dtype"])

    def compute() -> torch.Tensor:
        start = check_batch(ctx.x, ctx.spec.name if ctx.spec else "ntk") if level == 1 else _adversarial(ctx, level - 1)
        return _attacks.attack(
            ctx.model, start, ctx.y, method=options["attack"], eps=options["eps"],
            steps=options["pgd_steps"], step_size=options["pgd_step_size"], random_start=options["random_start"],
            generator=ctx.generator(offset=level) if options["random_start"] else None, bn=options["attack_bn"],
            device=ctx.device, dtype=dtype)

    return ctx.shared(("ntk.adversarial", level, _attack_key(options), dtype), compute)


def _jacobian(ctx: ProxyContext, level: int, keep: bool = True) -> _ntk.Jacobian:
    """J(A^level(X)), computed once per score() call for given settings; ``keep=False`` does not hold it
    for later proxies (a kernel's spectrum is cached instead)."""
    options = ctx.options
    dtype = ctx.spec.dtype if ctx.spec else torch.float32
    attack_key = _attack_key(options) if level > 0 else None

    def compute() -> _ntk.Jacobian:
        inputs = check_batch(ctx.x, ctx.spec.name if ctx.spec else "ntk") if level == 0 else _adversarial(ctx, level)
        frozen = options["ntk_bn"] == "frozen"
        chunk = _FROZEN_ROWS_PER_PASS if frozen and inputs.shape[0] % _FROZEN_ROWS_PER_PASS == 0 else None
        return _ntk.jacobian(ctx.model, inputs, output=options["ntk_output"], bn=options["ntk_bn"],
                             params=options["ntk_params"], chunk_size=chunk, dtype=dtype, device=ctx.device)

    return ctx.shared(("ntk.jacobian", level, _jacobian_key(options), attack_key, dtype), compute, keep=keep)


def _spectrum(ctx: ProxyContext, kernel: tuple) -> _ntk.Spectrum:
    """Spectrum of ("clean",), ("single", level) or ("joint", level, beta): J_b J_b^T for the pair
    (A^level(X), A^(level+1)(X))."""
    options = ctx.options
    dtype = ctx.spec.dtype if ctx.spec else torch.float32
    kind = kernel[0]
    if kind == "joint":
        levels: tuple[int, ...] = (kernel[1], kernel[1] + 1)
    else:
        levels = (0,) if kind == "clean" else (kernel[1],)
    attack_key = _attack_key(options) if max(levels) > 0 else None

    def compute() -> _ntk.Spectrum:
        if kind == "joint":
            first, second = (_jacobian(ctx, level) for level in levels)
            return _ntk.spectrum(_ntk.gram(_ntk.mix(first, second, kernel[2])))
        # Only a joint kernel with 0 < beta < 1 mixes two Jacobians; when the call asks for none, a single
        # kernel's Jacobian is dropped once its spectrum is known, so one Jacobian is alive at a time (a few
        # hundred MB each on full-size NB201).
        mixed = float(ctx.call_options.get("beta", 1.0)) not in (0.0, 1.0)
        return _ntk.spectrum(_ntk.gram(_jacobian(ctx, levels[0], keep=mixed)))

    return ctx.shared(("ntk.spectrum", kernel, _jacobian_key(options), attack_key, dtype), compute)


def _canonical(kernel: tuple) -> tuple:
    """Joint kernels at beta = 0 or 1 are single kernels: share their cached spectrum."""
    if kernel[0] == "joint" and kernel[2] in (0.0, 1.0):
        level = kernel[1] + int(kernel[2])
        return ("clean",) if level == 0 else ("single", level)
    return kernel


def _lambda_min(ctx: ProxyContext, kernel: tuple) -> float:
    if ctx.zero_output:  # constant output: every Jacobian is zero, so K is singular without computing it
        ctx.flag("degenerate")
        return 0.0
    _check_normalize(ctx.options.get("normalize"))
    if kernel[0] != "clean" and ctx.options["attack"] not in _attacks.METHODS:
        raise ValueError(f"option attack must be one of {list(_attacks.METHODS)}, got {ctx.options['attack']!r}")
    if kernel[0] != "clean":
        _attack_precision(ctx.options["attack_dtype"])
    s = _spectrum(ctx, _canonical(kernel))
    if s.degenerate:
        ctx.flag("degenerate")
    return _normalized(s, ctx.options.get("normalize"))
