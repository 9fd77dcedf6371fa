"""Static facts about the datasets NAS-Bench-201 uses: classes, image size, normalisation."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _scaled(values: tuple[float, float, float]) -> tuple[float, float, float]:
    return tuple(v / 255.0 for v in values)  # type: ignore[return-value]


# Normalisation constants of the NAS-Bench-201 training code (get_datasets in xautodl).
DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, 32, _scaled((125.3, 123.0, 113.9)), _scaled((63.0, 62.1, 66.7))),
    "cifar100": DatasetInfo("cifar100", 100, 32, _scaled((129.3, 124.1, 112.4)), _scaled((68.2, 65.4, 70.4))),
    "ImageNet16-120": DatasetInfo(
        "ImageNet16-120", 120, 16, _scaled((122.68, 116.66, 104.01)), _scaled((63.22, 61.26, 65.09))
    ),
}

_ALIASES = {
    "cifar10": "cifar10", "cifar-10": "cifar10",
    "cifar100": "cifar100", "cifar-100": "cifar100",
    "imagenet16-120": "ImageNet16-120", "imagenet16": "ImageNet16-120", "imagenet": "ImageNet16-120",
}


def dataset_info(name: str) -> DatasetInfo:
    """Look up a dataset by name (case-insensitive; 'imagenet' means ImageNet16-120)."""
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[key]


def dataset_for_classes(num_classes: int) -> DatasetInfo:
    for info in DATASETS.values():
        if info.num_classes == num_classes:
            return info
    return DATASETS["cifar10"]
