"""Training: the loop and `fit` (`loop`), and a whole run from a config (`training_run`:
checkpoints, RNG state, metrics, early stopping, resuming, thresholds at the end).

Modules: `loop` (TrainingLoop, fit, the progress bar), `training_run` (train_run), `setup`
(model spec, batch plan and augmentation from a config), `checkpoints` (atomic, CRC-checked,
weights-only), `rng_state`, `collapse_alarm`, `objectives` (a loss for a batch kind),
`optimization` (optimisers and schedules), `distributed` (torchrun process groups),
`allocator` (the glibc setting the CLI applies). The run directory itself (its layout, data
and metrics.csv) is `siamese.run_directory`. May import `config`, `data`, `models`, `losses`,
`distances`, `evaluation`, `faces`, `recognition` (the thresholds a trained model carries) and
`run_directory`; nothing imports it but `cli` and `experiments`.

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
    "train_run": "siamese.training.training_run",
    "RunResult": "siamese.training.training_run",
}
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from siamese.training.loop import TrainingHistory, TrainingLoop, fit, warmup_cosine
    from siamese.training.training_run import RunResult, train_run


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'siamese.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
