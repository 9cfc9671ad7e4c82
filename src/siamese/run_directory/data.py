"""A run's data: the examples a run trains on, the part it validates on and the record of that
split (`split.json`), and the fixed pairs of the pair protocol, all derived from the run's
`config.yaml` alone. Training reads them to train; evaluation, export and `siamese calibrate`
read them to know which examples the run never trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from siamese.config import RunConfig
from siamese.data.labeled import LabeledData
from siamese.data.splits import split_data


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


def protocol_pairs(
    config: RunConfig, labels: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """With `data.validation: pairs`, the run's fixed (training, held-out) pairs over all
    examples (`siamese.data.sampling.pair_protocol.pair_split`), the same for training and evaluation.

    Returns:
        (train, test): each `(i, j, same)`, (P,) int64.
    """
    from siamese.data.sampling.pair_protocol import pair_split

    data_cfg = config.data
    return pair_split(labels, data_cfg.pairs, data_cfg.validation_fraction, config.seed)
