"""The fit loop: P×K batches through an embedding model into a mining loss.

The hot path has no Python loop over samples and no host synchronisation: a step's statistics
stay tensors until a logging step (every `log_every` steps) turns them into floats.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from siamese.data.labeled import LabeledData
from siamese.data.transforms import Transform
from siamese.errors import ConfigError, TrainingDivergedError
from siamese.losses import LossOutput
from siamese.sampling import PKSampler

LossFn = Callable[[torch.Tensor, torch.Tensor], LossOutput]


@dataclass
class TrainingHistory:
    """What `fit` measured. `records` holds one dict per logging step with `step`, `epoch`,
    `loss`, `lr`, `images_per_s` and the loss's statistics (means over the logged steps)."""

    records: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    images: int = 0


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up from 0 to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def fit(
    model: torch.nn.Module,
    data: LabeledData,
    loss_fn: LossFn,
    sampler: PKSampler,
    epochs: int,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    warmup_fraction: float = 0.05,
    log_every: int = 10,
    show_progress: bool = True,
    augment: Transform | None = None,
    seed: int = 0,
) -> TrainingHistory:
    """Train `model` on `data` with AdamW and a warm-up + cosine schedule.

    Args:
        model: maps (B, ...) inputs to (B, D) embeddings.
        data: the training examples (x is indexed by the sampler's batches).
        loss_fn: `(embeddings (B, D), labels (B,)) -> LossOutput`.
        sampler: yields lists of indices into `data`; `set_epoch` is called every epoch.
        epochs: passes of the sampler.
        lr, weight_decay: AdamW's.
        warmup_fraction: share of the steps spent warming the learning rate up.
        log_every: steps between records (and host synchronisations).
        show_progress: draw a rich progress bar with loss, active fraction and images/s.
        augment: a batch transform (`siamese.data.transforms`) applied to every batch of
            inputs before the model, with per-sample random parameters.
        seed: seed of the augmentation's random generator.
    Returns:
        TrainingHistory.
    Raises:
        TrainingDivergedError: the loss became NaN or inf.
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    total_steps = epochs * len(sampler)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total_steps, max(1, round(warmup_fraction * total_steps)))
    )
    history = TrainingHistory()
    pending: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = []
    model.train()
    start = last_log_time = time.perf_counter()
    images_since_log = 0
    step = 0
    generator = torch.Generator().manual_seed(seed)
    with _progress(show_progress) as progress:
        task = progress.add_task("training", total=total_steps, status="")
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for batch in sampler:
                index = torch.as_tensor(batch)
                inputs = data.x[index]
                if augment is not None:
                    inputs = augment(inputs, generator=generator)
                out = loss_fn(model(inputs), data.y[index])
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                optimizer.step()
                schedule.step()
                pending.append((out.loss.detach(), out.stat_tensors))
                images_since_log += len(batch)
                history.images += len(batch)
                step += 1
                if step % log_every == 0 or step == total_steps:
                    now = time.perf_counter()
                    record = _summarise(
                        pending, step, epoch, optimizer, images_since_log / (now - last_log_time)
                    )
                    history.records.append(record)
                    pending, images_since_log, last_log_time = [], 0, now
                    progress.update(
                        task,
                        completed=step,
                        status=f"epoch {epoch + 1}/{epochs}  loss {record['loss']:.4f}  "
                        f"active {record['active_fraction']:.0%}  {record['images_per_s']:,.0f} img/s",
                    )
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


def _summarise(
    pending: list[tuple[torch.Tensor, dict[str, torch.Tensor]]],
    step: int,
    epoch: int,
    optimizer: torch.optim.Optimizer,
    images_per_s: float,
) -> dict[str, float]:
    losses = torch.stack([loss for loss, _ in pending])
    if not torch.isfinite(losses).all():
        raise TrainingDivergedError(
            f"the loss became {float(losses[~torch.isfinite(losses)][0])} near step {step}: "
            "lower the learning rate or check the input data for NaN/inf values"
        )
    record = {"step": float(step), "epoch": float(epoch + 1), "loss": float(losses.mean())}
    for name in pending[0][1]:
        record[name] = float(torch.stack([stats[name] for _, stats in pending]).mean())
    record["lr"] = float(optimizer.param_groups[0]["lr"])
    record["images_per_s"] = images_per_s
    return record


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not show,
        transient=False,
    )
