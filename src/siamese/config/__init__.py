"""The run config: what `siamese train` reads from YAML.

Owns the schema (`schema`: typed dataclasses, every field with a default, the checks across
keys, what a resumed run may change), the generic loading machinery (`loading`: dict → typed
dataclasses, `--set` overrides, errors naming the key), the YAML dialect (`yaml_dialect`:
strict reading, duplicate keys refused, atomic writing) and the option table of `--help`
(`help`). The loss section is generated from the loss catalog (`siamese.losses.catalog`,
torch-free). Imports only `siamese.errors`, `siamese.atomic_files`, `siamese.devices` and the
loss catalog: nothing here needs torch.
"""

from __future__ import annotations

from siamese.config.schema import (
    RESUME_CHANGEABLE,
    AugmentConfig,
    BatchConfig,
    DataConfig,
    EarlyStopConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
    ScheduleConfig,
    TrainConfig,
    check_config,
    check_resume_changes,
    config_changes,
    load_config,
    loss_options,
)

__all__ = [
    "RESUME_CHANGEABLE",
    "AugmentConfig",
    "BatchConfig",
    "DataConfig",
    "EarlyStopConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "RunConfig",
    "ScheduleConfig",
    "TrainConfig",
    "check_config",
    "check_resume_changes",
    "config_changes",
    "load_config",
    "loss_options",
]
