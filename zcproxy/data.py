"""Image data for proxies and training: the official CIFAR-10, CIFAR-100 and ImageNet16 pickle layouts.

Images are returned as ``uint8`` tensors ``N x 3 x H x W`` and batches as floats in [0, 1]; the
network's first layer normalises with the NAS-Bench-201 constants of :mod:`zcproxy._datasets`.

Folders (under a data directory, see :func:`zcproxy._paths.data_dirs`):

* ``cifar-10-batches-py/data_batch_{1..5}`` (whichever exist) and ``test_batch``;
* ``cifar-100-python/train`` and ``test`` (``fine_labels``);
* ``ImageNet16/train_data_batch_{1..10}`` and ``val_data`` (the downsampled-ImageNet 16x16 pickles of
  Chrabaszcz et al. 2017; labels 1..1000, of which NAS-Bench-201's ImageNet16-120 keeps 1..120 as 0..119).
  For ImageNet16-120 the ``"test"`` split is ``val_data``.

Pickles are read with a restricted unpickler that only rebuilds numpy arrays, so a foreign file cannot
run code.
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ._datasets import dataset_info
from ._paths import data_dirs
from .errors import DataFormatError, DataNotFoundError

__all__ = ["Batch", "load_cifar10", "load_cifar100", "load_imagenet16", "load_split", "proxy_batch", "iterate",
           "downsample2x"]

SPLITS = ("train", "test")


@dataclass(frozen=True)
class _Layout:
    folder: str
    files: dict[str, tuple[str, ...]]
    label_key: str
    image_size: int
    fetch_hint: str


_LAYOUTS: dict[str, _Layout] = {
    "cifar10": _Layout(
        "cifar-10-batches-py",
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        "labels", 32, "run `zcproxy fetch --only cifar10`",
    ),
    "cifar100": _Layout(
        "cifar-100-python", {"train": ("train",), "test": ("test",)},
        "fine_labels", 32, "run `zcproxy fetch --only cifar100`",
    ),
    "ImageNet16-120": _Layout(
        "ImageNet16",
        {"train": tuple(f"train_data_batch_{i}" for i in range(1, 11)), "test": ("val_data",)},
        "labels", 16,
        "download the ImageNet16 folder of NAS-Bench-201 (Google Drive folder "
        "1L0Lzq8rWpZLPfiQGd6QR8q5xLV88emU7) into the data directory",
    ),
}
_IMAGENET16_CLASSES = 120


@dataclass(frozen=True)
class Batch:
    """A fixed mini-batch: ``x`` float pixels in [0, 1] (N x 3 x H x W), ``y`` int64 labels, ``meta`` provenance."""

    x: torch.Tensor
    y: torch.Tensor
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- reading


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only reconstructs numpy arrays, dtypes and scalars."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle protocol
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            obj = _ArrayUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataFormatError(
            f"{path} is not a readable dataset pickle ({type(exc).__name__}: {exc}); the file is truncated or "
            "not in the official python layout - delete it and download it again"
        ) from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path} holds a {type(obj).__name__}, expected a dict with 'data' and labels")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _decode_file(path: Path, label_key: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 3 x s x s uint8) and labels (int64) of one official pickle, validated."""
    content = _read_pickle(path)
    for key in ("data", label_key):
        if key not in content:
            raise DataFormatError(f"{path} lacks the key {key!r} (has {sorted(map(str, content))})")
    data = np.asarray(content["data"])
    row = 3 * image_size * image_size
    if data.ndim != 2 or data.shape[1] != row:
        raise DataFormatError(
            f"{path}: 'data' has shape {data.shape}, expected (N, {row}) rows of 3x{image_size}x{image_size} "
            "uint8 pixels in CHW order"
        )
    if data.dtype != np.uint8:
        if data.size and (not np.issubdtype(data.dtype, np.integer) or data.min() < 0 or data.max() > 255):
            raise DataFormatError(f"{path}: 'data' must hold uint8 pixels 0..255, got dtype {data.dtype}")
        data = data.astype(np.uint8)
    try:
        labels = np.asarray(content[label_key], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DataFormatError(f"{path}: {label_key!r} is not a list of integer labels") from None
    if labels.shape[0] != data.shape[0]:
        raise DataFormatError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels in {label_key!r}")
    return data.reshape(-1, 3, image_size, image_size), labels


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=2)
def _decoded_split(dataset: str, keys: tuple[tuple[str, int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated read-only arrays of one split; keyed by (path, mtime, size) so edited files are re-read."""
    layout = _LAYOUTS[dataset]
    images, labels = [], []
    for path, _, _ in keys:
        x, y = _decode_file(Path(path), layout.label_key, layout.image_size)
        if dataset == "ImageNet16-120":
            keep = (y >= 1) & (y <= _IMAGENET16_CLASSES)
            x, y = x[keep], y[keep] - 1
        images.append(x)
        labels.append(y)
    x_all = np.concatenate(images) if len(images) > 1 else images[0]
    y_all = np.concatenate(labels) if len(labels) > 1 else labels[0]
    num_classes = dataset_info(dataset).num_classes
    if y_all.size and (y_all.min() < 0 or y_all.max() >= num_classes):
        bad = int(y_all.min() if y_all.min() < 0 else y_all.max())
        raise DataFormatError(
            f"{keys[0][0]}: label {bad} is outside 0..{num_classes - 1} for {dataset}; is this the right dataset?"
        )
    x_all.setflags(write=False)
    y_all.setflags(write=False)
    return x_all, y_all


def _locate(dataset: str, split: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """The split's files in the first data directory that holds any of them."""
    layout = _LAYOUTS[dataset]
    searched = data_dirs(data_dir)
    for root in searched:
        present = [root / layout.folder / name for name in layout.files[split]]
        present = [p for p in present if p.is_file()]
        if present:
            return present
    wanted = ", ".join(layout.files[split])
    hint = "" if dataset == "cifar10" else " Or pass stand_in=True to use CIFAR-10 images in its place."
    raise DataNotFoundError(
        f"{dataset} {split} images not found: no {layout.folder}/{{{wanted}}} in "
        f"{', '.join(str(d) for d in searched)}. To get them, {layout.fetch_hint}, or set ZCPROXY_DATA to the "
        f"folder that holds {layout.folder}/.{hint}"
    )


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _arrays(dataset: str, split: str, data_dir) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    paths = _locate(dataset, _check_split(split), data_dir)
    x, y = _decoded_split(dataset, tuple(_file_key(p) for p in paths))
    return x, y, paths


def _to_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.array(x, copy=True)), torch.from_numpy(np.array(y, copy=True))


def load_cifar10(data_dir: str | os.PathLike | None = None, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 ``(images uint8 N x 3 x 32 x 32, labels int64)`` from ``cifar-10-batches-py``.

    The train split concatenates whichever of ``data_batch_1..5`` are present (in that order).
    """
    x, y, _ = _arrays("cifar10", split, data_dir)
    return _to_tensors(x, y)


def load_cifar100(data_dir: str | os.PathLike | None = None, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-100 ``(images uint8 N x 3 x 32 x 32, fine labels int64 0..99)`` from ``cifar-100-python``."""
    x, y, _ = _arrays("cifar100", split, data_dir)
    return _to_tensors(x, y)


def load_imagenet16(data_dir: str | os.PathLike | None = None, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet16-120 ``(images uint8 N x 3 x 16 x 16, labels int64 0..119)`` from ``ImageNet16``.

    Reads ``train_data_batch_1..10`` (train) or ``val_data`` (test), keeps the images whose 1-based label
    is at most 120 and shifts labels to 0..119, as NAS-Bench-201 does.
    """
    x, y, _ = _arrays("ImageNet16-120", split, data_dir)
    return _to_tensors(x, y)


# ------------------------------------------------------------------------------------------- stand-ins


def downsample2x(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """2x2 average pooling of ``uint8`` images ``N x C x H x W`` (H, W even), rounded half up to uint8."""
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[2] % 2 or arr.shape[3] % 2:
        raise ValueError(f"downsample2x needs N x C x H x W images with even H and W, got shape {arr.shape}")
    n, c, h, w = arr.shape
    total = arr.astype(np.uint16).reshape(n, c, h // 2, 2, w // 2, 2).sum(axis=(3, 5))
    return ((total + 2) // 4).astype(np.uint8)


def _keep(images: np.ndarray) -> np.ndarray:
    return images


def _split_source(dataset: str, split: str, data_dir, stand_in: bool
                  ) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray], dict]:
    """Read-only (possibly shared) arrays of a split, the resize to apply to selected images, and provenance.

    Falls back to the CIFAR-10 stand-in when allowed; its images are 2x2-pooled only once selected.
    """
    info = dataset_info(dataset)
    _check_split(split)
    resize = _keep
    try:
        x, y, paths = _arrays(info.name, split, data_dir)
        source, used_stand_in = f"{info.name} {split} images", False
    except DataNotFoundError:
        if not stand_in or info.name == "cifar10":
            raise
        x, y, paths = _arrays("cifar10", split, data_dir)
        if info.image_size != x.shape[-1]:
            resize = downsample2x
        source = f"cifar10 {split} images standing in for {info.name} (labels are the CIFAR-10 labels 0..9)"
        used_stand_in = True
    meta = {
        "dataset": info.name, "split": split, "stand_in": used_stand_in, "source": source,
        "image_size": info.image_size, "num_classes": info.num_classes,
        "label_classes": 10 if used_stand_in else info.num_classes, "files": [str(p) for p in paths],
    }
    return x, y, resize, meta


def load_split(dataset: str, split: str = "train", data_dir: str | os.PathLike | None = None,
               stand_in: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """``(uint8 images, int64 labels, meta)`` of a dataset split.

    With ``stand_in=True`` and the dataset's own images absent, CIFAR-10 images are used instead (2x2
    average-pooled to 16x16 for ImageNet16-120) with their CIFAR-10 labels, which are valid targets for any
    head with at least 10 classes; ``meta["stand_in"]`` then is True and ``meta["source"]`` says so.
    """
    x, y, resize, meta = _split_source(dataset, split, data_dir, stand_in)
    images, labels = _to_tensors(resize(x), y)
    return images, labels, meta


# ----------------------------------------------------------------------------------------------- batches


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _pick(labels: np.ndarray, n: int, rng: np.random.Generator, balanced: bool, label_classes: int,
          what: str) -> np.ndarray:
    if not balanced:
        if n > labels.shape[0]:
            raise ValueError(f"n={n} exceeds the {labels.shape[0]} images of {what}; ask for fewer")
        return rng.choice(labels.shape[0], size=n, replace=False)
    if n % label_classes:
        raise ValueError(
            f"balanced=True needs n divisible by the {label_classes} classes of {what}, got n={n}; "
            f"use n={label_classes * max(1, round(n / label_classes))}"
        )
    per_class = n // label_classes
    chosen = []
    for c in range(label_classes):
        members = np.flatnonzero(labels == c)
        if members.shape[0] < per_class:
            raise ValueError(
                f"balanced=True needs {per_class} images of class {c} in {what}, it has {members.shape[0]}; "
                "use a smaller n or balanced=False"
            )
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return rng.permutation(np.concatenate(chosen))


def proxy_batch(dataset: str = "cifar10", n: int = 64, seed: int = 0, *, split: str = "train",
                balanced: bool = False, stand_in: bool = False, data_dir: str | os.PathLike | None = None,
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Batch:
    """A reproducible batch of ``n`` images for scoring architectures.

    Draws ``n`` distinct images with ``numpy.random.default_rng(seed)`` (independent of global RNG state).
    ``balanced=True`` draws ``n / k`` images of each of the ``k`` label classes (``n`` must be divisible by
    ``k``, and each class must hold that many images), then shuffles their order. Pixels are scaled to
    [0, 1]; see :func:`load_split` for ``stand_in``.
    """
    n = _check_count("n", n, 1)
    seed = _check_count("seed", seed, 0)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch dtype, got {dtype!r}")
    x, y, resize, meta = _split_source(dataset, split, data_dir, stand_in)
    rng = np.random.default_rng(seed)
    idx = _pick(y, n, rng, balanced, meta["label_classes"], f"the {meta['source']}")
    images = torch.from_numpy(resize(x[idx])).to(device=device, dtype=dtype).div_(255.0)
    labels = torch.from_numpy(y[idx]).to(device=device)
    batch_meta = {"dataset": meta["dataset"], "n": n, "seed": seed, "split": split, "balanced": bool(balanced),
                  "stand_in": meta["stand_in"], "source": meta["source"], "image_size": meta["image_size"],
                  "num_classes": meta["num_classes"]}
    return Batch(images, labels, batch_meta)


def iterate(dataset: str, split: str = "train", batch_size: int = 256, *, shuffle: bool = True, seed: int = 0,
            drop_last: bool = False, data_dir: str | os.PathLike | None = None, stand_in: bool = False,
            device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x in [0, 1], y)`` mini-batches covering a split once (one epoch), seeded order if ``shuffle``."""
    batch_size = _check_count("batch_size", batch_size, 1)
    x, y, resize, _ = _split_source(dataset, split, data_dir, stand_in)
    order = np.random.default_rng(_check_count("seed", seed, 0)).permutation(y.shape[0]) if shuffle \
        else np.arange(y.shape[0])
    stop = (y.shape[0] // batch_size) * batch_size if drop_last else y.shape[0]
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield (torch.from_numpy(resize(x[idx])).to(device=device, dtype=dtype).div_(255.0),
               torch.from_numpy(y[idx]).to(device=device))
