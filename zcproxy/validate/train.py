"""Adversarial training and robust evaluation of NAS-Bench-201 networks (the verification subset).

Default recipe = NAS-RobBench-201 (Wu et al., ICLR 2024, arXiv 2403.13134): PGD-7 adversarial training
(Madry et al. 2018) with eps 8/255, step 2/255 and a uniform random start, the attack generated with the
model in eval mode and the update taken in train mode; SGD (momentum 0.9, weight decay 5e-4, no Nesterov),
batch 256, PyTorch ``OneCycleLR`` (max lr 0.1, its default momentum cycling 0.85-0.95) stepped every batch;
random crop (zero padding 4) and horizontal flip; pixels in [0, 1], the network normalises them itself.
(Optimizer, schedule and attack settings as in the authors' public training script, TT2408/nasrobbench201.)
``method="fgsm-rs"`` is the cheaper fast adversarial training of Wong et al. (ICLR 2020): one FGSM step
of size 1.25 eps from a uniform random start in [-eps, eps].

Evaluation (model in eval mode) reports the benchmark's metrics on held-out test images: clean accuracy,
FGSM (one step of size eps, no random start) and PGD-20 (step 2.5 eps / 20, random start) at eps 3/255 and
8/255. An image counts as robust only when the clean image and every attack iterate are classified
correctly (a per-image early stop that saves most of the cost and makes the attack no weaker than the
benchmark's, which scores the last iterate only).

Every epoch is checkpointed (model, optimizer, scheduler, RNG state) under a run directory; calling
:func:`train` again with the same settings resumes after the last completed epoch and reproduces the
uninterrupted run bit for bit on CPU.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._datasets import dataset_info
from ..errors import ZcproxyError
from ..space import get_space

NB201 = get_space("nb201")  # verify trains NAS-Bench-201 networks with the benchmark's recipe

__all__ = ["TrainConfig", "EvalConfig", "TrainedModel", "train", "evaluate", "verify_arch", "METRICS",
           "select_archs"]

METHODS = ("pgd", "fgsm-rs")
METRICS = ("clean", "fgsm_3", "pgd_3", "fgsm_8", "pgd_8")
_CHECKPOINT = "checkpoint.pt"
_RESULT = "result.json"
# Fixed seeds of the image subsets, so every architecture and training seed sees the same images.
_TRAIN_SUBSET_SEED = 20240301
_EVAL_SUBSET_SEED = 20240302


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained network (the checkpoint key)."""

    method: str = "pgd"
    epochs: int = 50
    train_size: int | None = None
    batch_size: int = 256
    eps: float = 8 / 255
    step: float = 2 / 255
    attack_steps: int = 7
    lr_max: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    augment: bool = True
    seed: int = 0
    dataset: str = "cifar10"
    C: int = 16
    N: int = 5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        for name in ("epochs", "batch_size", "attack_steps", "C", "N"):
            _check_positive_int(name, getattr(self, name))
        if self.train_size is not None:
            _check_positive_int("train_size", self.train_size)
        _check_positive_int("seed", self.seed, minimum=0)
        for name in ("eps", "step", "lr_max"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        dataset_info(self.dataset)

    @property
    def attack(self) -> tuple[float, float, int]:
        """(eps, step, steps) of the training attack: PGD as configured, or FGSM-RS (step 1.25 eps, 1 step)."""
        if self.method == "fgsm-rs":
            return self.eps, 1.25 * self.eps, 1
        return self.eps, self.step, self.attack_steps

    def key(self, arch: int) -> str:
        """Run-directory name: arch index plus a hash of every setting."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return f"{arch:05d}-{self.method}-{hashlib.sha256(blob).hexdigest()[:10]}"


@dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation: ``eval_size`` test images (None = all), FGSM and PGD at each eps."""

    eval_size: int | None = 2000
    eps: tuple[float, ...] = (3 / 255, 8 / 255)
    pgd_steps: int = 20
    batch_size: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.eval_size is not None:
            _check_positive_int("eval_size", self.eval_size)
        _check_positive_int("pgd_steps", self.pgd_steps)
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("seed", self.seed, minimum=0)
        if not self.eps or any(not (math.isfinite(e) and e > 0) for e in self.eps):
            raise ValueError(f"eps must be positive finite numbers, got {self.eps!r}")


@dataclass
class TrainedModel:
    """A trained network with its per-epoch history and the epoch training resumed from (0 = fresh)."""

    model: nn.Module
    config: TrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0
    run_dir: Path | None = None

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    @property
    def complete(self) -> bool:
        return self.epochs_done >= self.config.epochs

    @property
    def train_seconds(self) -> float:
        return float(sum(h["seconds"] for h in self.history))


def _check_positive_int(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


# ------------------------------------------------------------------------------------------ augmentation


def _draw_augmentation(n: int, generator: torch.Generator, pad: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image crop offsets (n x 2, each in 0..2*pad) and horizontal-flip flags (n)."""
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    return offsets, flips


def _crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Random crop of the zero-padded image at ``offsets`` (row, col), then flip where ``flips``."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, 0:1] + torch.arange(h)
    cols = offsets[:, 1:2] + torch.arange(w)
    batch = torch.arange(n)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return torch.where(flips[:, None, None, None], cropped.flip(3), cropped).contiguous()


# --------------------------------------------------------------------------------------------- attacks


def _random_start(x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """Uniform noise in [-eps, eps], cut so that x + delta stays in [0, 1]."""
    delta = (torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1) * eps
    return (x + delta).clamp(0, 1) - x


def _attack_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, eps: float,
                 step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One signed-gradient ascent step on the summed cross-entropy; returns (new delta, logits at delta)."""
    delta = delta.detach().requires_grad_(True)
    logits = model(x + delta)
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), delta)
    new = (delta.detach() + step * grad.sign()).clamp(-eps, eps)
    return (x + new).clamp(0, 1) - x, logits.detach()


def _adversarial_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float, steps: int,
                       generator: torch.Generator) -> torch.Tensor:
    """L-inf PGD from a random start (FGSM-RS when steps=1), in the model's current mode."""
    delta = _random_start(x, eps, generator)
    for _ in range(steps):
        delta, _ = _attack_step(model, x, y, delta, eps, step)
    return (x + delta).detach()


def _robust_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clean_correct: torch.Tensor, eps: float,
                    step: float, steps: int, random_start: bool, generator: torch.Generator) -> torch.Tensor:
    """Per image: correct on the clean image and on every PGD iterate (stops attacking once fooled).

    Needs an eval-mode model, so each image's trajectory is independent of the others in the batch.
    """
    delta = _random_start(x, eps, generator) if random_start else torch.zeros_like(x)
    alive = clean_correct.clone()
    for _ in range(steps):
        idx = alive.nonzero().squeeze(1)
        if idx.numel() == 0:
            return alive
        new, logits = _attack_step(model, x[idx], y[idx], delta[idx], eps, step)
        delta[idx] = new
        alive[idx] = logits.argmax(1) == y[idx]
    idx = alive.nonzero().squeeze(1)
    if idx.numel():
        with torch.no_grad():
            alive[idx] = model(x[idx] + delta[idx]).argmax(1) == y[idx]
    return alive


# ---------------------------------------------------------------------------------------------- data


def _subset(n_total: int, size: int | None, seed: int, what: str) -> np.ndarray:
    if size is None:
        return np.arange(n_total)
    if size > n_total:
        raise ValueError(f"{what} {size} exceeds the {n_total} images available; ask for at most {n_total}")
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:size])


def _load_images(dataset: str, split: str, size: int | None, seed: int, data_dir) -> tuple[torch.Tensor, torch.Tensor]:
    from ..data import load_split

    images, labels, _ = load_split(dataset, split, data_dir=data_dir)
    keep = torch.from_numpy(_subset(labels.shape[0], size, seed, f"{split}_size"))
    return images[keep], labels[keep]


# -------------------------------------------------------------------------------------------- training


def _build(arch: int, config: TrainConfig) -> nn.Module:
    info = dataset_info(config.dataset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return NB201.build(arch, num_classes=info.num_classes, C=config.C, N=config.N, dataset=info.name)


def _optimizer(model: nn.Module, config: TrainConfig, total_steps: int):
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr_max, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.nesterov)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr_max, total_steps=total_steps)
    return optimizer, scheduler


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, config: TrainConfig) -> dict | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ZcproxyError(f"checkpoint {path} holds objects other than tensors and plain types, so it was "
                           f"refused unread ({str(exc).splitlines()[0]}); zcproxy never writes such files: "
                           "delete its folder to restart this run from scratch") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
        raise ZcproxyError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); "
                           "delete it to restart this run from scratch") from None
    if not isinstance(state, dict) or state.get("config") != asdict(config):
        raise ZcproxyError(f"checkpoint {path} was written with other settings; delete its folder "
                           "to restart, or use another run directory")
    return state


def train(arch: int | str, config: TrainConfig, run_dir: str | os.PathLike | None = None, *,
          data_dir: str | os.PathLike | None = None, epoch_limit: int | None = None,
          log: Callable[[str], None] | None = None) -> TrainedModel:
    """Adversarially train NB201 ``arch`` with ``config``; resumable through ``run_dir``.

    Each step: draw crop/flip, craft adversarial images with the model in eval mode (PGD or FGSM-RS),
    then minimise their cross-entropy in train mode. With ``run_dir``, a checkpoint is written after every
    epoch to ``run_dir/<config.key(arch)>/`` and a later call continues from it. ``epoch_limit`` stops once
    that many epochs are complete (the run can be continued by a later call). The returned model is in
    eval mode; the global RNG is untouched (weights, data order, augmentation and attacks are seeded).
    """
    index = NB201.resolve(arch)
    if epoch_limit is not None:
        _check_positive_int("epoch_limit", epoch_limit, minimum=0)
    images, labels = _load_images(config.dataset, "train", config.train_size, _TRAIN_SUBSET_SEED, data_dir)
    n = labels.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    model = _build(index, config)
    optimizer, scheduler = _optimizer(model, config, config.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    folder = None if run_dir is None else Path(run_dir) / config.key(index)
    checkpoint = None if folder is None else folder / _CHECKPOINT
    state = None if checkpoint is None else _load_checkpoint(checkpoint, config)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        history = list(state["history"])
    resumed_from = len(history)
    stop = config.epochs if epoch_limit is None else min(config.epochs, epoch_limit)
    eps, step, attack_steps = config.attack
    for epoch in range(len(history), stop):
        start = time.perf_counter()
        order = torch.randperm(n, generator=generator)
        loss_sum, correct, seen = 0.0, 0, 0
        for begin in range(0, n, config.batch_size):
            idx = order[begin:begin + config.batch_size]
            x = images[idx].float().div_(255.0)
            y = labels[idx]
            if config.augment:
                x = _crop_flip(x, *_draw_augmentation(x.shape[0], generator))
            model.eval()
            x_adv = _adversarial_batch(model, x, y, eps, step, attack_steps, generator)
            model.train()
            logits = model(x_adv)
            loss = F.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                raise ZcproxyError(f"training arch {index} diverged at epoch {epoch + 1} (loss {loss.item()}); "
                                   "lower lr_max or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * y.shape[0]
            correct += int((logits.argmax(1) == y).sum())
            seen += y.shape[0]
        history.append({"epoch": epoch + 1, "adv_loss": loss_sum / seen, "adv_acc": correct / seen,
                        "seconds": time.perf_counter() - start})
        if checkpoint is not None:
            folder.mkdir(parents=True, exist_ok=True)
            _save_atomic({"config": asdict(config), "arch": index, "model": model.state_dict(),
                          "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                          "generator": generator.get_state(), "history": history}, checkpoint)
        if log is not None:
            h = history[-1]
            log(f"arch {index} epoch {h['epoch']}/{config.epochs}: adv loss {h['adv_loss']:.3f}, "
                f"adv acc {h['adv_acc']:.3f}, {h['seconds']:.0f}s")
    model.eval()
    return TrainedModel(model, config, history, resumed_from, folder)


# ------------------------------------------------------------------------------------------ evaluation


def _metric_name(kind: str, eps: float) -> str:
    return f"{kind}_{round(eps * 255):d}" if abs(eps * 255 - round(eps * 255)) < 1e-9 else f"{kind}_{eps:.6g}"


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: EvalConfig = EvalConfig()
             ) -> dict[str, float]:
    """Clean, FGSM and PGD accuracies (fractions) of ``model`` on ``images`` (uint8 or floats in [0, 1]).

    FGSM: x + eps sign(grad). PGD: ``pgd_steps`` steps of 2.5 eps / pgd_steps from a uniform random start,
    projected on the eps ball and [0, 1]. Robust = clean and every iterate classified correctly. The model
    runs in eval mode; its mode and parameters are restored/untouched. Keys: clean, fgsm_<eps*255>,
    pgd_<eps*255>.
    """
    if images.dim() != 4 or images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(f"images must be N x C x H x W with N = len(labels) > 0, got {tuple(images.shape)} "
                         f"and {tuple(labels.shape)} labels")
    if images.is_floating_point() and not (torch.isfinite(images).all() and images.min() >= 0
                                           and images.max() <= 1):
        raise ValueError("images must be uint8 pixels or floats in [0, 1] (the model normalises them); "
                         f"got floats in [{images.min().item():.3g}, {images.max().item():.3g}]")
    dtype = next(model.parameters()).dtype
    generator = torch.Generator().manual_seed(config.seed)
    counts = {"clean": 0}
    counts.update({_metric_name(k, e): 0 for e in config.eps for k in ("fgsm", "pgd")})
    was_training = model.training
    model.eval()
    try:
        for begin in range(0, labels.shape[0], config.batch_size):
            x = images[begin:begin + config.batch_size]
            x = x.to(dtype).div(255.0) if not x.is_floating_point() else x.to(dtype)
            y = labels[begin:begin + config.batch_size]
            with torch.no_grad():
                clean = model(x).argmax(1) == y
            counts["clean"] += int(clean.sum())
            for eps in config.eps:
                fgsm = _robust_correct(model, x, y, clean, eps, eps, 1, False, generator)
                pgd = _robust_correct(model, x, y, clean, eps, 2.5 * eps / config.pgd_steps, config.pgd_steps,
                                      True, generator)
                counts[_metric_name("fgsm", eps)] += int(fgsm.sum())
                counts[_metric_name("pgd", eps)] += int(pgd.sum())
    finally:
        model.train(was_training)
    return {k: v / labels.shape[0] for k, v in counts.items()}


def verify_arch(arch: int | str, config: TrainConfig, eval_config: EvalConfig = EvalConfig(), *,
                run_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or resume) ``arch``, evaluate it on held-out test images and write ``result.json``.

    A finished result with the same training and evaluation settings is returned without recomputation.
    Returns a flat record: arch, index, the metrics, seconds and every setting.
    """
    index = NB201.resolve(arch)
    folder = Path(run_dir) / config.key(index)
    result_path = folder / _RESULT
    settings = {"train": asdict(config), "eval": {**asdict(eval_config), "eps": list(eval_config.eps)}}
    if result_path.is_file():
        try:
            record = json.loads(result_path.read_text())
        except (OSError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict) and record.get("settings") == settings:
            return record
    trained = train(index, config, run_dir, data_dir=data_dir, log=log)
    images, labels = _load_images(config.dataset, "test", eval_config.eval_size, _EVAL_SUBSET_SEED, data_dir)
    start = time.perf_counter()
    metrics = evaluate(trained.model, images, labels, eval_config)
    eval_seconds = time.perf_counter() - start
    record = {
        "index": index, "arch": NB201.arch(index), "metrics": metrics,
        "params": int(sum(p.numel() for p in trained.model.parameters())),
        "train_seconds": trained.train_seconds, "eval_seconds": eval_seconds,
        "history": trained.history, "settings": settings, "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    tmp = result_path.with_name(_RESULT + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, result_path)
    if log is not None:
        log(f"arch {index}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
            + f" (train {trained.train_seconds:.0f}s, eval {eval_seconds:.0f}s)")
    return record


# ------------------------------------------------------------------------------------- arch selection


def select_archs(spec: str, truth=None, *, dataset: str = "cifar10", metric: str = "pgd_8",
                 data_dir: str | os.PathLike | None = None) -> list[int]:
    """NB201 indices named by ``spec`` in the one ``--archs`` grammar (:mod:`zcproxy.space.selection`).

    ``quantiles:K`` takes, among the 6,466 isomorphism representatives, the one closest to each of the K
    evenly spaced quantiles (k + 0.5) / K of the benchmark's ``dataset``/``metric`` accuracy (NAS-RobBench-201
    unless ``truth`` is given).
    """
    from ..space.selection import select_archs as select, split_items

    if truth is None and any(i.startswith("quantiles:") or i == "truth" for i in split_items(str(spec))):
        from ..truth import load_nasrobbench201

        truth = load_nasrobbench201(data_dir)
    column = None if truth is None else truth[(dataset, metric)]
    return [int(k) for k in select(str(spec), NB201, truth=column)]
