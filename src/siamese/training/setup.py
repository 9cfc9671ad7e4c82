"""From a `RunConfig` to the parts of a training run: the model's architecture spec (inputs
standardised by the training data's statistics), the batch plan and the augmentation. The run's
data itself comes from `siamese.run_directory.data`."""

from __future__ import annotations

from typing import Any

import torch

from siamese.config import AugmentConfig, RunConfig
from siamese.data.batches import load_batches
from siamese.data.folders.listing import default_workers
from siamese.data.labeled import ImageSource, Inputs, LabeledData
from siamese.data.sampling.offline_tuples import TupleBatches
from siamese.data.sampling.pk_sampler import PKSampler
from siamese.errors import ConfigError
from siamese.models.builder import SELF_STANDARDISING
from siamese.run_directory.data import protocol_pairs
from siamese.training.distributed import ProcessGroup


def input_statistics(
    x: Inputs, seed: int = 0, max_examples: int = 10_000, chunk: int = 256
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
    workers = default_workers() if isinstance(x, ImageSource) else 0
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
