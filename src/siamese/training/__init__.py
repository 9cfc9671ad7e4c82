"""Training: the loop and `fit` (`loop`), and a whole run from a config (`run`: the run
directory, checkpoints, RNG state, telemetry, early stopping, resuming).

Modules: `loop` (TrainingLoop, fit, the progress bar), `run` (train_run), `setup` (data,
model spec, batch plan and augmentation from a config), `run_directory` (claiming a folder),
`checkpoints` (atomic, CRC-checked, weights-only), `rng_state`, `telemetry` (metrics.csv, the
collapse alarm), `objectives` (a loss for a batch kind), `optimization` (optimisers and
schedules), `distributed` (torchrun process groups), `allocator` (the glibc setting the CLI
applies). May import `config`, `data`, `models`, `losses`, `mining`, `distances` and
`evaluation.validation`; nothing imports it but `cli` and `pipelines`.

Names are imported on first use, so that the CLI's allocator setting does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC: dict[str, str] = {
    "fit": "siamese.training.loop",
    "warmup_cosine": "siamese.training.loop",
    "TrainingLoop": "siamese.training.loop",
    "TrainingHistory": "siamese.training.loop",
    "train_run": "siamese.training.run",
    "RunResult": "siamese.training.run",
}
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from siamese.training.loop import TrainingHistory, TrainingLoop, fit, warmup_cosine
    from siamese.training.run import RunResult, train_run


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'siamese.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
