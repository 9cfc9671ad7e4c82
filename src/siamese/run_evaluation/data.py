"""Which examples a run is evaluated on.

By default the run is evaluated on data it never trained on: the dataset's other split when it
has one (mnist/fashion-mnist `test`, omniglot `evaluation`, glyphs `test`), else the run's
validation part (held-out classes for a class-disjoint split), recomputed from its seed. A run
with `data.validation: pairs` is evaluated on its held-out pairs (`protocol_pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from siamese.config import RunConfig
from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError


@dataclass
class ChosenData:
    """The evaluation examples, a description for the report, and where they came from:
    "pairs" (the run's held-out pairs), "named" (`--data`), "test" (the run's held-out test
    classes, `data.test_fraction`), "other_split" (the dataset's split the run did not train
    on) or "validation" (the run's validation part)."""

    data: LabeledData
    description: str
    source: str


def evaluation_data(
    config: RunConfig,
    data_name: str | None = None,
    split: str | None = None,
    data_options: dict[str, Any] | None = None,
    training: tuple[LabeledData, LabeledData | None] | None = None,
) -> ChosenData:
    """The examples to evaluate on, a description for the report, and their source.
    `data_options` are source options for `data_name` (e.g. a folder's image_size, channels),
    over the run's own when it is the run's dataset. `training` is the run's (training,
    validation) examples when the caller has loaded them already (else loaded when needed).

    Raises:
        ConfigError: `split` given without `data_name` for a dataset without splits.
    """
    from siamese.data.datasets.catalog import DATASETS
    from siamese.data.sources import TRAINING_ONLY_OPTIONS, load_dataset
    from siamese.run_directory.data import load_training_data

    # The run's source options less those that only shape training data (e.g. Omniglot's
    # rotated_classes: the evaluation alphabets are evaluated as they are).
    run_options = {k: v for k, v in config.data.options.items() if k not in TRAINING_ONLY_OPTIONS}

    def training_parts() -> tuple[LabeledData, LabeledData | None]:
        if training is not None:
            return training
        train, validation, _ = load_training_data(config)
        return train, validation

    data_dir = Path(config.data.data_dir) if config.data.data_dir else None
    if is_pair_protocol(config, data_name, split):
        data = training_parts()[0]
        share = f"{config.data.validation_fraction:.0%}"
        return ChosenData(
            data,
            f"{config.data.name} (the run's held-out {share} of {config.data.pairs:,} pairs)",
            "pairs",
        )
    if data_options and data_name is None:
        raise ConfigError("--data-option sets options of the dataset named by --data: give --data")
    if data_name is not None:
        # The run's own dataset keeps the run's source options (e.g. its image_size); any
        # other keeps its face step: a model trained on face crops never sees whole photos.
        options = run_options if data_name == config.data.name else {}
        if data_name != config.data.name and "face" in run_options:
            options = {"face": run_options["face"]}
        data = load_dataset(data_name, split, data_dir, **{**options, **(data_options or {})})
        return ChosenData(data, f"{data_name} ({split or 'default split'})", "named")
    name = config.data.name
    if config.data.test_fraction and split is None:
        from siamese.run_directory.data import split_off_test_classes

        everything = load_dataset(name, config.data.split, data_dir, **run_options)
        _, test = split_off_test_classes(everything, config)
        folds = round(1 / config.data.test_fraction)
        description = f"{name} (held-out test classes: fold {config.data.test_fold} of {folds})"
        return ChosenData(test, description, "test")
    if split is None and config.data.validation == "split":
        split = config.data.validation_split
        data = load_dataset(name, split, data_dir, **run_options)
        return ChosenData(data, f"{name} ({split}, the run's validation split)", "validation")
    info = DATASETS.get(name)
    if split is None and info is not None and len(info.splits) > 1:
        trained = config.data.split or info.default_split
        # A split other than the trained one; none is disjoint from "all".
        others = [s for s in info.splits if s not in (trained, "all")]
        split = others[0] if others and trained != "all" else None
    if split is not None:
        data = load_dataset(name, split, data_dir, **run_options)
        return ChosenData(data, f"{name} ({split})", "other_split")
    validation = training_parts()[1]
    if validation is None:
        raise ConfigError(
            f"the run trained on all of {name} and validated on nothing: name data to evaluate "
            "on with --data NAME [--split SPLIT]"
        )
    return ChosenData(validation, f"{name} (the run's held-out validation part)", "validation")


def is_pair_protocol(config: RunConfig, data_name: str | None, split: str | None) -> bool:
    """Whether the evaluation is the run's own held-out pairs (`data.validation: pairs` and
    no other data named)."""
    return data_name is None and split is None and config.data.validation == "pairs"


def protocol_pairs(
    config: RunConfig, labels: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """The run's held-out pairs, and how many of them the training pairs already held."""
    from siamese.run_directory.data import protocol_pairs

    train, test = protocol_pairs(config, labels)
    n = labels.numel()

    def keys(i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:  # unordered pair → one int
        return torch.minimum(i, j) * n + torch.maximum(i, j)

    seen = torch.isin(keys(test[0], test[1]), keys(train[0], train[1]))
    in_training = torch.zeros(n, dtype=torch.bool)
    in_training[train[0]] = in_training[train[1]] = True
    info = {
        "pairs": int(train[0].numel() + test[0].numel()),
        "training_pairs": int(train[0].numel()),
        "held_out_pairs": int(test[0].numel()),
        "held_out_pairs_also_training_pairs": float(seen.double().mean()),
        "held_out_pairs_with_both_examples_trained_on": float(
            (in_training[test[0]] & in_training[test[1]]).double().mean()
        ),
    }
    return test, info
