"""Optimisers and learning-rate schedules from the run config.

Every schedule is a `LambdaLR` factor of the step, so its state in a checkpoint is two
numbers (the step and the base rates) and resuming rebuilds the same function from the config.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from siamese.config import OptimizerConfig, RunConfig, ScheduleConfig
from siamese.errors import ConfigError
from siamese.losses.catalog import loss_entry


def build_optimizer(
    parameters: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], config: OptimizerConfig
) -> torch.optim.Optimizer:
    """The optimiser `config.name` over `parameters`: tensors, or parameter groups (dicts with
    `params` and their own `lr`, as a run gives the model's and the loss's).

    Adam and AdamW use `betas`; SGD and RMSprop use `momentum` (SGD also `nesterov`). Weight
    decay is decoupled for AdamW and an L2 term for the others, as in torch. A group is kept
    even when empty (a loss without parameters), so the groups' order is fixed: checkpoints
    and resumed runs see the same layout.
    """
    items = list(parameters)
    params: Any
    if items and isinstance(items[0], dict):
        params = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in items]
    else:
        params = [p for p in items if p.requires_grad]
    if config.name == "adam":
        return torch.optim.Adam(
            params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
    if config.name == "adamw":
        return torch.optim.AdamW(
            params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
    if config.name == "sgd":
        if config.nesterov and config.momentum <= 0:
            raise ConfigError("optimizer.nesterov needs optimizer.momentum > 0")
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    if config.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    raise ConfigError(f"unknown optimizer {config.name!r}: choose adam, adamw, sgd or rmsprop")


def loss_learning_rate(config: RunConfig) -> float:
    """The peak learning rate of the loss's own parameters: `loss.lr`, else `optimizer.lr` ×
    the loss's factor in the catalog (100 for the proxy losses, as their papers train them)."""
    if config.loss.lr is not None:
        return float(config.loss.lr)
    return config.optimizer.lr * loss_entry(config.loss.name).lr_factor


def lr_factor(
    config: ScheduleConfig, total_steps: int, steps_per_epoch: int
) -> Callable[[int], float]:
    """The learning-rate multiplier at each optimiser step (0-based), for `LambdaLR`.

    - `constant`: 1 after the warm-up.
    - `cosine`: half a cosine from 1 down to `min_lr_fraction` after the warm-up.
    - `step`: ×`gamma` every `step_epochs` epochs (after the warm-up, counted from step 0).
    - `onecycle` (Smith and Topin 2019): cosine rise from 1/25 to 1 over the first 30 % of the
      steps, then cosine decay to 1/25 000 (its own warm-up; `warmup_fraction` is unused).
    Warm-up rises linearly over `warmup_fraction` of the steps.
    """
    warmup = round(config.warmup_fraction * total_steps) if config.name != "onecycle" else 0
    decay_steps = max(1, total_steps - warmup)

    def after_warmup(step: int) -> float:
        if config.name == "constant":
            return 1.0
        if config.name == "cosine":
            progress = min(1.0, (step - warmup) / decay_steps)
            low = config.min_lr_fraction
            return low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if config.name == "step":
            return config.gamma ** (step // (config.step_epochs * steps_per_epoch))
        if config.name == "onecycle":
            peak = max(1, round(0.3 * total_steps))
            if step < peak:
                return _cosine_between(1 / 25, 1.0, step / peak)
            return _cosine_between(
                1.0, 1 / 25_000, min(1.0, (step - peak) / max(1, total_steps - peak))
            )
        raise ConfigError(
            f"unknown schedule {config.name!r}: choose constant, cosine, onecycle or step"
        )

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return after_warmup(step)

    return factor


def _cosine_between(start: float, end: float, progress: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_schedule(
    optimizer: torch.optim.Optimizer, config: ScheduleConfig, total_steps: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR` stepping `lr_factor` once per optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(config, total_steps, max(1, steps_per_epoch))
    )
