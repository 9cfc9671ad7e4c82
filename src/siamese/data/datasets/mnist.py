"""MNIST and Fashion-MNIST from their four IDX `.gz` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from siamese.data.datasets.catalog import dataset_info, missing_files_error
from siamese.data.datasets.idx import read_idx
from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError, DataError

FASHION_CLASSES: list[str] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def load_mnist_format(name: str, split: str, data_dir: Path) -> LabeledData:
    """MNIST or Fashion-MNIST, one split.

    Args:
        name: "mnist" or "fashion-mnist".
        split: "train" (60,000 images) or "test" (10,000).
        data_dir: the data directory; the files are read from `data_dir/<name>/`, gzipped
            as published or decompressed.
    Returns:
        LabeledData with x uint8 (N, 1, 28, 28) (ink 255 on 0), y int64 (N,) in 0..9.
    Raises:
        DataError: files missing, damaged, or images and labels of different counts.
    """
    info = dataset_info(name)
    if split not in info.splits:
        raise ConfigError(f"{name} has the splits 'train' and 'test', not {split!r}")
    folder = data_dir / info.folder
    found = info.find_layout(folder, split)
    if found is None:
        stem = info.split_stems[split]
        wanted = [f"{stem}-images-idx3-ubyte.gz", f"{stem}-labels-idx1-ubyte.gz"]
        raise DataError(missing_files_error(info, folder, wanted))
    images_path = found[1]
    labels_path = images_path.with_name(images_path.name.replace("-images-idx3", "-labels-idx1"))
    if not labels_path.is_file():
        raise DataError(missing_files_error(info, folder, [labels_path.name]))
    images = read_idx(images_path, expected_ndim=3)
    labels = read_idx(labels_path, expected_ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels; one of them is from another split or damaged: "
            "download both again"
        )
    if labels.size and int(labels.max()) > 9:
        raise DataError(f"{labels_path}: label {int(labels.max())} is not a digit 0-9")
    classes = FASHION_CLASSES if name == "fashion-mnist" else [str(d) for d in range(10)]
    return LabeledData(
        x=torch.from_numpy(np.ascontiguousarray(images)[:, None]),
        y=torch.from_numpy(labels.astype(np.int64)),
        classes=list(classes),
    )
