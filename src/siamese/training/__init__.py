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

from typing import TYPE_CHECKING

from siamese.lazy_exports import lazy_getattr, public_names

_PUBLIC = public_names(
    {
        "siamese.training.loop": ("fit", "warmup_cosine", "TrainingLoop", "TrainingHistory"),
        "siamese.training.training_run": ("train_run", "RunResult"),
    }
)
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from siamese.training.loop import TrainingHistory, TrainingLoop, fit, warmup_cosine
    from siamese.training.training_run import RunResult, train_run

__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())
