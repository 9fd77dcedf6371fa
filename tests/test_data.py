"""Tests of zcproxy.data against tiny files written in the official CIFAR-10/100 and ImageNet16 layouts."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from zcproxy import data
from zcproxy.errors import DataFormatError, DataNotFoundError


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """A data folder that is the only one searched (no $ZCPROXY_DATA, no ~/.cache/zcproxy)."""
    monkeypatch.delenv("ZCPROXY_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = tmp_path / "data"
    root.mkdir()
    return root


def _images(ids: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Random rows of 3 x size x size CHW pixels whose top-left 2x2 blocks encode the image id."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(len(ids), 3, size, size), dtype=np.uint8)
    img[:, 0, :2, :2] = (ids % 256)[:, None, None]
    img[:, 1, :2, :2] = (ids // 256)[:, None, None]
    return img.reshape(len(ids), -1)


def _id_of(image: torch.Tensor) -> int:
    """Recover the id of a uint8 (or [0, 1] float) image written by :func:`_images`."""
    pixels = image if image.dtype == torch.uint8 else (image * 255).round()
    return int(pixels[0, 0, 0]) + 256 * int(pixels[1, 0, 0])


def _write(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=2)


def _cifar10(root: Path, per_batch=(30, 20), n_test=25) -> dict[str, np.ndarray]:
    """Two train batches and a test batch; labels cycle over 0..9 so every class is present."""
    folder = root / "cifar-10-batches-py"
    labels = {}
    start = 0
    for b, n in enumerate(per_batch, start=1):
        ids = np.arange(start, start + n)
        y = (ids * 3) % 10
        _write(folder / f"data_batch_{b}", {b"batch_label": b"x", b"data": _images(ids, 32, b), b"labels": y.tolist()})
        labels[f"train{b}"] = y
        start += n
    ids = np.arange(1000, 1000 + n_test)
    y = ids % 10
    _write(folder / "test_batch", {b"data": _images(ids, 32, 9), b"labels": y.tolist()})
    labels["test"] = y
    return labels


# ------------------------------------------------------------------------------------------------ loaders


def test_cifar10_train_concatenates_the_present_batches_in_order(isolated):
    labels = _cifar10(isolated)
    x, y = data.load_cifar10(isolated, "train")
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.uint8
    assert y.dtype == torch.int64
    assert y.tolist() == labels["train1"].tolist() + labels["train2"].tolist()
    assert [_id_of(img) for img in x] == list(range(50))


def test_cifar10_rows_are_channel_major(isolated):
    _cifar10(isolated)
    with open(isolated / "cifar-10-batches-py" / "test_batch", "rb") as handle:
        raw = pickle.load(handle, encoding="bytes")[b"data"]
    x, y = data.load_cifar10(isolated, "test")
    assert x.shape == (25, 3, 32, 32)
    assert x[3, 1, 5, 7] == raw[3, 1024 + 5 * 32 + 7]
    assert x[3, 2, 31, 0] == raw[3, 2048 + 31 * 32]
    assert y.tolist() == [i % 10 for i in range(1000, 1025)]


def test_cifar100_reads_fine_labels(isolated):
    ids = np.arange(40)
    fine, coarse = (ids * 7) % 100, ids % 20
    folder = isolated / "cifar-100-python"
    _write(folder / "train", {b"data": _images(ids, 32, 1), b"fine_labels": fine.tolist(),
                              b"coarse_labels": coarse.tolist()})
    _write(folder / "test", {b"data": _images(ids[:10], 32, 2), b"fine_labels": fine[:10].tolist(),
                             b"coarse_labels": coarse[:10].tolist()})
    x, y = data.load_cifar100(isolated)
    assert x.shape == (40, 3, 32, 32)
    assert y.tolist() == fine.tolist()
    assert data.load_cifar100(isolated, "test")[0].shape == (10, 3, 32, 32)


def _imagenet16(root: Path) -> None:
    folder = root / "ImageNet16"
    # 1-based labels over 1..1000; only 1..120 belong to ImageNet16-120. Batch 1 has str keys, batch 2 bytes keys.
    _write(folder / "train_data_batch_1", {"data": _images(np.arange(6), 16, 1),
                                           "labels": [1, 120, 121, 500, 5, 1000]})
    _write(folder / "train_data_batch_2", {b"data": _images(np.arange(6, 10), 16, 2),
                                           b"labels": [2, 999, 120, 60]})
    _write(folder / "val_data", {"data": _images(np.arange(20, 24), 16, 3), "labels": [3, 300, 119, 121]})


def test_imagenet16_keeps_labels_1_to_120_and_shifts_them(isolated):
    _imagenet16(isolated)
    x, y = data.load_imagenet16(isolated, "train")
    assert x.shape == (6, 3, 16, 16)
    assert y.tolist() == [0, 119, 4, 1, 119, 59]
    assert [_id_of(img) for img in x] == [0, 1, 4, 6, 8, 9]
    xv, yv = data.load_imagenet16(isolated, "test")
    assert yv.tolist() == [2, 118]
    assert [_id_of(img) for img in xv] == [20, 22]


def test_load_split_meta_and_copies(isolated):
    _cifar10(isolated)
    x, y, meta = data.load_split("cifar10", "train", isolated)
    assert meta["dataset"] == "cifar10" and meta["stand_in"] is False and meta["image_size"] == 32
    assert len(meta["files"]) == 2
    x[:] = 0  # the caller owns its copy: the next load is unaffected
    again, _, _ = data.load_split("cifar10", "train", isolated)
    assert again.sum() > 0


def test_edited_file_is_read_again(isolated):
    _cifar10(isolated)
    assert data.load_cifar10(isolated, "test")[0].shape[0] == 25
    ids = np.arange(7)
    _write(isolated / "cifar-10-batches-py" / "test_batch", {b"data": _images(ids, 32, 4), b"labels": [1] * 7})
    x, y = data.load_cifar10(isolated, "test")
    assert x.shape[0] == 7 and y.tolist() == [1] * 7


# ------------------------------------------------------------------------------------------------ batches


def test_proxy_batch_draws_real_images_with_their_labels(isolated):
    labels = _cifar10(isolated)
    all_labels = np.concatenate([labels["train1"], labels["train2"]])
    batch = data.proxy_batch("cifar10", 16, seed=3, data_dir=isolated)
    assert batch.x.shape == (16, 3, 32, 32) and batch.x.dtype == torch.float32
    assert batch.y.dtype == torch.int64
    assert 0.0 <= batch.x.min() and batch.x.max() <= 1.0
    ids = [_id_of(img) for img in batch.x]
    assert len(set(ids)) == 16
    assert batch.y.tolist() == [int(all_labels[i]) for i in ids]
    source, _ = data.load_cifar10(isolated)
    for row, i in enumerate(ids):
        torch.testing.assert_close(batch.x[row], source[i].float() / 255.0)
    assert batch.meta == {"dataset": "cifar10", "n": 16, "seed": 3, "split": "train", "balanced": False,
                          "stand_in": False, "source": "cifar10 train images", "image_size": 32, "num_classes": 10}


def test_proxy_batch_is_reproducible_and_ignores_global_rng(isolated):
    _cifar10(isolated)
    first = data.proxy_batch("cifar10", 12, seed=5, data_dir=isolated)
    torch.manual_seed(1234)
    np.random.seed(99)
    torch.rand(10)
    second = data.proxy_batch("cifar10", 12, seed=5, data_dir=isolated)
    assert torch.equal(first.x, second.x) and torch.equal(first.y, second.y)
    other = data.proxy_batch("cifar10", 12, seed=6, data_dir=isolated)
    assert not torch.equal(first.x, other.x)


def test_proxy_batch_dtype_and_test_split(isolated):
    _cifar10(isolated)
    batch = data.proxy_batch("cifar10", 5, split="test", data_dir=isolated, dtype=torch.float64)
    assert batch.x.dtype == torch.float64
    assert all(_id_of(img) >= 1000 for img in batch.x)


def test_balanced_batch_has_equal_class_counts(isolated):
    _cifar10(isolated)
    batch = data.proxy_batch("cifar10", 30, seed=1, balanced=True, data_dir=isolated)
    assert torch.bincount(batch.y, minlength=10).tolist() == [3] * 10
    assert batch.meta["balanced"] is True
    assert batch.y.tolist() != sorted(batch.y.tolist())  # classes are shuffled, not grouped


def test_balanced_batch_errors(isolated):
    _cifar10(isolated)
    with pytest.raises(ValueError, match="divisible by the 10 classes"):
        data.proxy_batch("cifar10", 25, balanced=True, data_dir=isolated)
    with pytest.raises(ValueError, match="needs 6 images of class"):
        data.proxy_batch("cifar10", 60, balanced=True, data_dir=isolated)  # each class has 5 images


@pytest.mark.parametrize("kwargs, words", [
    ({"n": 0}, "n must be an int >= 1"), ({"n": 2.5}, "n must be an int"), ({"seed": -1}, "seed must be"),
    ({"n": 51}, "exceeds the 50 images"), ({"split": "val"}, "split must be one of"),
    ({"dtype": torch.int64}, "floating torch dtype"), ({"dataset": "mnist"}, "unknown dataset"),
])
def test_proxy_batch_rejects_bad_arguments(isolated, kwargs, words):
    _cifar10(isolated)
    with pytest.raises(ValueError, match=words):
        data.proxy_batch(**{"dataset": "cifar10", "n": 4, "data_dir": isolated, **kwargs})


def test_missing_dataset_names_stand_in(isolated):
    _cifar10(isolated)
    with pytest.raises(DataNotFoundError, match="stand_in=True") as info:
        data.proxy_batch("cifar100", 8, data_dir=isolated)
    assert "cifar-100-python" in str(info.value) and str(isolated) in str(info.value)


def test_cifar100_stand_in_uses_cifar10_images(isolated):
    _cifar10(isolated)
    batch = data.proxy_batch("cifar100", 8, seed=2, stand_in=True, data_dir=isolated)
    assert batch.x.shape == (8, 3, 32, 32)
    assert batch.meta["stand_in"] is True and batch.meta["num_classes"] == 100
    assert "cifar10 train images standing in for cifar100" in batch.meta["source"]
    assert int(batch.y.max()) < 10


def _pool_by_hand(image: torch.Tensor) -> torch.Tensor:
    c, h, w = image.shape
    out = torch.empty(c, h // 2, w // 2, dtype=torch.uint8)
    for ch in range(c):
        for i in range(h // 2):
            for j in range(w // 2):
                block = image[ch, 2 * i:2 * i + 2, 2 * j:2 * j + 2].double()
                out[ch, i, j] = int(np.floor(block.mean().item() + 0.5))
    return out


def test_imagenet16_stand_in_is_2x2_average_pooled_cifar10(isolated):
    _cifar10(isolated)
    batch = data.proxy_batch("ImageNet16-120", 10, seed=4, stand_in=True, balanced=True, data_dir=isolated)
    assert batch.x.shape == (10, 3, 16, 16) and batch.meta["image_size"] == 16
    assert batch.meta["stand_in"] is True and "ImageNet16-120" in batch.meta["source"]
    assert torch.bincount(batch.y, minlength=10).tolist() == [1] * 10
    source, labels = data.load_cifar10(isolated)
    for row in range(3):
        i = _id_of(batch.x[row])
        torch.testing.assert_close(batch.x[row], _pool_by_hand(source[i]).float() / 255.0)
        assert int(batch.y[row]) == int(labels[i])


def test_stand_in_split_and_iterate_are_resized(isolated):
    _cifar10(isolated)
    x, y, meta = data.load_split("ImageNet16-120", "train", isolated, stand_in=True)
    source, labels = data.load_cifar10(isolated)
    assert x.shape == (50, 3, 16, 16) and meta["stand_in"] is True and meta["image_size"] == 16
    assert torch.equal(x[7], _pool_by_hand(source[7])) and torch.equal(y, labels)
    shapes = {tuple(xb.shape[1:]) for xb, _ in data.iterate("ImageNet16-120", "train", 20, data_dir=isolated,
                                                             stand_in=True)}
    assert shapes == {(3, 16, 16)}


def test_real_images_win_over_the_stand_in(isolated):
    _cifar10(isolated)
    _imagenet16(isolated)
    batch = data.proxy_batch("ImageNet16-120", 4, stand_in=True, data_dir=isolated)
    assert batch.meta["stand_in"] is False and batch.meta["source"] == "ImageNet16-120 train images"


def test_downsample2x_by_hand():
    block = np.array([[[[0, 1, 0, 0, 1, 1, 254, 255], [2, 3, 0, 1, 1, 2, 255, 255]]]], dtype=np.uint8)
    assert data.downsample2x(block).tolist() == [[[[2, 0, 1, 255]]]]  # means 1.5, 0.25, 1.25, 254.75
    with pytest.raises(ValueError, match="even H and W"):
        data.downsample2x(np.zeros((1, 3, 3, 4), dtype=np.uint8))


def test_iterate_covers_the_split_once(isolated):
    _cifar10(isolated)
    batches = list(data.iterate("cifar10", "train", 16, seed=1, data_dir=isolated))
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    ids = [_id_of(img) for x, _ in batches for img in x]
    assert sorted(ids) == list(range(50)) and ids != list(range(50))
    assert ids == [_id_of(img) for x, _ in data.iterate("cifar10", "train", 16, seed=1, data_dir=isolated)
                   for img in x]
    ordered = [_id_of(img) for x, _ in data.iterate("cifar10", "train", 16, shuffle=False, drop_last=True,
                                                    data_dir=isolated) for img in x]
    assert ordered == list(range(48))


# ------------------------------------------------------------------------------------------------- errors


def test_missing_folder_names_file_dirs_and_fetch(isolated):
    with pytest.raises(DataNotFoundError) as info:
        data.load_cifar10(isolated)
    message = str(info.value)
    assert "cifar-10-batches-py" in message and "data_batch_1" in message
    assert str(isolated) in message and "zcproxy fetch" in message


def test_truncated_pickle(isolated):
    _cifar10(isolated)
    path = isolated / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataFormatError, match="truncated") as info:
        data.load_cifar10(isolated)
    assert str(path) in str(info.value)


def test_wrong_row_length(isolated):
    _write(isolated / "cifar-10-batches-py" / "test_batch",
           {b"data": np.zeros((4, 3 * 16 * 16), dtype=np.uint8), b"labels": [0, 1, 2, 3]})
    with pytest.raises(DataFormatError, match=r"shape \(4, 768\), expected \(N, 3072\)"):
        data.load_cifar10(isolated, "test")


@pytest.mark.parametrize("content, words", [
    ({b"data": np.zeros((4, 3072), dtype=np.uint8), b"labels": [0, 1, 2]}, "4 images but 3 labels"),
    ({b"data": np.zeros((4, 3072), dtype=np.uint8)}, "lacks the key 'labels'"),
    ({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 10]}, "label 10 is outside 0..9"),
    ({b"data": np.full((2, 3072), 300, dtype=np.int32), b"labels": [0, 1]}, "uint8 pixels"),
    ([1, 2, 3], "holds a list"),
])
def test_malformed_content(isolated, content, words):
    _write(isolated / "cifar-10-batches-py" / "test_batch", content)
    with pytest.raises(DataFormatError, match=words):
        data.load_cifar10(isolated, "test")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_pickle_with_foreign_classes_is_refused(isolated):
    _write(isolated / "cifar-10-batches-py" / "test_batch", {b"data": _Exploit(), b"labels": []})
    with pytest.raises(DataFormatError, match="refusing to load"):
        data.load_cifar10(isolated, "test")


# --------------------------------------------------------------------------------------------- real data


@pytest.mark.data
def test_real_cifar10_test_split(data_dir):
    x, y = data.load_cifar10(data_dir, "test")
    assert x.shape == (10000, 3, 32, 32)
    assert torch.bincount(y).tolist() == [1000] * 10
    means = (x.double() / 255.0).mean(dim=(0, 2, 3))
    torch.testing.assert_close(means, torch.tensor([0.492, 0.483, 0.448], dtype=torch.float64), atol=0.01, rtol=0)


@pytest.mark.data
def test_real_cifar10_balanced_proxy_batch(data_dir):
    batch = data.proxy_batch("cifar10", 100, seed=0, balanced=True, data_dir=data_dir)
    assert torch.bincount(batch.y).tolist() == [10] * 10
    assert batch.meta["source"] == "cifar10 train images"
    assert 0.3 < batch.x.mean().item() < 0.6
