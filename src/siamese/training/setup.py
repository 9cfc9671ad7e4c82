"""From a `RunConfig` to the parts of a training run: the data and its validation split, the
model's architecture spec, the batch plan and the augmentation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from siamese.config import AugmentConfig, RunConfig
from siamese.data.folder_index import default_workers
from siamese.data.labeled import LabeledData
from siamese.data.pk_sampler import PKSampler
from siamese.data.splits import split_data
from siamese.data.streamed_folder import StreamedImages, load_batches
from siamese.data.tuples import TupleBatches
from siamese.errors import ConfigError
from siamese.models.builder import SELF_STANDARDISING
from siamese.training.distributed import ProcessGroup


def load_training_data(
    config: RunConfig,
) -> tuple[LabeledData, LabeledData | None, dict[str, Any]]:
    """The training examples, the validation examples (None when `data.validation` is none)
    and the record of the split for `split.json`."""
    from siamese.data.sources import load_dataset

    data_cfg = config.data
    data = load_source(config)
    record: dict[str, Any] = {"dataset": data_cfg.name, "split": data_cfg.split}
    if data_cfg.test_fraction:
        data, test = split_off_test_classes(data, config)
        record["test"] = {
            "fold": data_cfg.test_fold,
            "folds": round(1 / data_cfg.test_fraction),
            "classes": len(test.class_ids),
            "examples": len(test),
            "class_names": [test.classes[c] for c in test.class_ids.tolist()],
        }
    if data_cfg.validation == "none":
        return data, None, {**record, "method": "none"}
    if data_cfg.validation == "pairs":
        # Training and held-out pairs both come from all examples (`protocol_pairs`).
        pairs = {"pairs": data_cfg.pairs, "fraction": data_cfg.validation_fraction}
        return data, None, {**record, "method": "pairs", **pairs, "seed": config.seed}
    if data_cfg.validation == "split":
        data_dir = Path(data_cfg.data_dir) if data_cfg.data_dir else None
        val = load_dataset(data_cfg.name, data_cfg.validation_split, data_dir, **data_cfg.options)
        return data, val, {**record, "method": "split", "validation": data_cfg.validation_split}
    by = "class" if data_cfg.validation == "classes" else "sample"
    f = data_cfg.validation_fraction
    split = split_data(data, {"train": 1 - f, "validation": f}, by=by, seed=config.seed)
    return split.parts["train"], split.parts["validation"], {**record, **split.record()}


def load_source(config: RunConfig) -> LabeledData:
    """The run's dataset (its `data.name`, `split` and options), before any part is set apart."""
    from siamese.data.sources import load_dataset

    data_cfg = config.data
    data_dir = Path(data_cfg.data_dir) if data_cfg.data_dir else None
    return load_dataset(data_cfg.name, data_cfg.split, data_dir, **data_cfg.options)


def split_off_test_classes(data: LabeledData, config: RunConfig) -> tuple[LabeledData, LabeledData]:
    """(rest, test): the classes of fold `data.test_fold` of round(1 / test_fraction)
    disjoint class folds are the test part. The folds come from one seeded permutation of
    the classes, so the runs of every fold of one seed partition the classes."""
    folds = round(1 / config.data.test_fraction)
    classes = data.class_ids
    order = classes[
        torch.randperm(classes.numel(), generator=torch.Generator().manual_seed(config.seed))
    ]
    test_ids = order[config.data.test_fold :: folds]
    is_test = torch.isin(data.y, test_ids)
    return data.subset(torch.nonzero(~is_test).flatten()), data.subset(
        torch.nonzero(is_test).flatten()
    )


def input_statistics(
    x: torch.Tensor | StreamedImages, seed: int = 0, max_examples: int = 10_000, chunk: int = 256
) -> tuple[float, float]:
    """Mean and standard deviation of the inputs (uint8 scaled to [0, 1]) over a seeded
    sample of up to `max_examples` examples, accumulated `chunk` examples at a time so that
    large images never exist in float64 all at once.

    Args:
        x: (N, ...) uint8 or float inputs; streamed images (`StreamedImages`) are decoded
            in worker processes.
    Returns:
        (mean, std); std is 1.0 when the inputs are constant.
    """
    n = x.shape[0]
    picked = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_examples]
    scale = 1 / 255.0 if x.dtype == torch.uint8 else 1.0
    total = squares = torch.zeros((), dtype=torch.float64)
    count = 0
    chunks = list(torch.split(picked, chunk))
    workers = default_workers() if isinstance(x, StreamedImages) else 0
    for inputs in load_batches(x, chunks, workers=workers):
        part = inputs.float() * scale
        total = total + part.sum(dtype=torch.float64)
        squares = squares + part.square().sum(dtype=torch.float64)
        count += part.numel()
    mean = float(total / max(count, 1))
    variance = float(squares / max(count, 1)) - mean * mean
    std = max(variance, 0.0) ** 0.5
    return mean, std if std > 1e-8 else 1.0


def model_spec(config: RunConfig, data: LabeledData) -> dict[str, Any]:
    """The `EmbeddingNet` spec of the run, standardising inputs with `input_statistics` of
    the training data."""
    if config.model.encoder in SELF_STANDARDISING:
        mean, std = 0.0, 1.0
    else:
        mean, std = input_statistics(data.x, seed=config.seed)
    return {
        "encoder": config.model.encoder,
        "encoder_options": dict(config.model.options),
        "embedding_dim": config.model.embedding_dim,
        "normalize": config.model.normalize,
        "output_activation": config.model.output_activation,
        "mean": mean,
        "std": std,
        "projection": config.model.projection,
    }


def protocol_pairs(
    config: RunConfig, labels: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """With `data.validation: pairs`, the run's fixed (training, held-out) pairs over all
    examples (`siamese.data.pair_protocol.pair_split`), the same for training and evaluation.

    Returns:
        (train, test): each `(i, j, same)`, (P,) int64.
    """
    from siamese.data.pair_protocol import pair_split

    data_cfg = config.data
    return pair_split(labels, data_cfg.pairs, data_cfg.validation_fraction, config.seed)


def build_batches(config: RunConfig, labels: torch.Tensor, group: ProcessGroup) -> Any:
    """The batch plan of `batches.kind`: `PKSampler` or `TupleBatches`, sharded by rank."""
    b = config.batches
    if b.kind == "pk":
        return PKSampler(labels, b.p, b.k, config.seed, group.rank, group.world_size)
    per_epoch = b.per_epoch or labels.numel()
    fixed = protocol_pairs(config, labels)[0] if config.data.validation == "pairs" else None
    return TupleBatches(
        labels, b.kind, b.size, per_epoch, config.seed, group.rank, group.world_size, fixed
    )


def build_augmentation(config: AugmentConfig, input_shape: tuple[int, ...]) -> Any:
    """The batch transform of the `augment` section, or None when it asks for nothing.

    Raises:
        ConfigError: augmentation asked for on inputs that are not images (C, H, W).
    """
    from siamese.data import transforms as T

    affine = bool(config.degrees or config.translate or config.shear) or tuple(config.scale) != (
        1.0,
        1.0,
    )
    if config.preset == "none" and not (affine or config.crop_padding or config.hflip):
        return None
    if len(input_shape) != 3:
        raise ConfigError(
            f"augment applies to images (C, H, W); this data has examples of shape "
            f"{input_shape}. Remove the augment section."
        )
    if config.preset == "koch":
        return T.koch_omniglot_augmentation(image_size=int(input_shape[1]))
    steps: list[Any] = []
    if affine:
        steps.append(
            T.RandomAffine(
                degrees=config.degrees,
                translate=(config.translate, config.translate),
                scale=tuple(config.scale),
                shear=config.shear,
            )
        )
    if config.crop_padding:
        steps.append(T.RandomCrop(tuple(input_shape[1:]), padding=config.crop_padding))
    if config.hflip:
        steps.append(T.RandomHorizontalFlip(config.hflip))
    return T.Compose(steps)
