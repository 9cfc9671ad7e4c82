"""A training run from a `RunConfig` into a run directory — what `siamese train` does.

The run directory holds `config.yaml` (the effective config), `split.json` (which classes or
examples went to training and validation), `metrics.csv` (telemetry and validation rows),
`train.log`, `checkpoints/` (`step-*.pt`, `last.pt`, `best.pt`) and, at the end,
`model.safetensors` + `model.json` (the best weights by the early-stopping metric when the run
validates, else the last ones), which `siamese.load_model(RUN)` rebuilds.

Checkpoints are written at the end of every epoch and every `train.checkpoint_every` steps;
`resume=True` continues from the newest good one exactly (same batches, same random draws),
so an interrupted run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from siamese.checkpoints import (
    load_latest_good,
    save_best,
    save_step_checkpoint,
)
from siamese.config import AugmentConfig, RunConfig
from siamese.config_yaml import save_config_atomic, to_dict
from siamese.data.labeled import LabeledData
from siamese.data.splits import split_data
from siamese.distributed import (
    ProcessGroup,
    average_buffers,
    broadcast_parameters,
    join_from_environment,
    leave,
)
from siamese.errors import CheckpointError, ConfigError, OutputError, TrainingDivergedError
from siamese.evaluation.validation import HIGHER_IS_BETTER, validate
from siamese.losses import PairClassifierLoss
from siamese.models.embedding import build_embedding_net
from siamese.objectives import Objective
from siamese.optimization import build_optimizer, build_schedule
from siamese.rng_state import capture_rng_state, restore_rng_state
from siamese.run_directory import (
    prepare_run_directory,
    save_model,
    save_pair_head,
    write_json_atomic,
)
from siamese.sampling import PKSampler, TupleBatches
from siamese.telemetry import CollapseAlarm, MetricsLog
from siamese.training import Position, TrainingLoop, progress_bar


@dataclass
class RunResult:
    """What a finished run reports: where it is, its budget and its validation."""

    run_dir: Path
    steps: int
    epochs_done: int
    seconds: float
    images_per_s: float
    stopped_early: bool
    best: dict[str, float] = field(default_factory=dict)
    last_validation: dict[str, float] = field(default_factory=dict)


@dataclass
class _Tracker:
    """The run's own resumable state besides the loop's position."""

    best_value: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    stale: int = 0
    collapse_warned: bool = False
    last_validation: dict[str, float] = field(default_factory=dict)


def train_run(
    config: RunConfig,
    out: Path,
    resume: bool = False,
    quiet: bool = False,
    console: Console | None = None,
) -> RunResult:
    """Train `config` into the run directory `out`.

    Args:
        config: the effective config (written to `out/config.yaml`).
        out: the run directory.
        resume: continue from the newest good checkpoint in `out/checkpoints/`.
        quiet: no progress bar; log lines only.
    Raises:
        OutputError: `out` already holds a run and `resume` is False, or cannot be written.
        CheckpointError: `resume` with no usable checkpoint.
        TrainingDivergedError: the loss became NaN or inf (the last good checkpoint stays).
        ConfigError, DataError: as the config and data demand.
    """
    console = console or Console()
    group = join_from_environment()
    try:
        return _train(config, out, resume, quiet, console, group)
    finally:
        leave(group)


def _train(
    config: RunConfig,
    out: Path,
    resume: bool,
    quiet: bool,
    console: Console,
    group: ProcessGroup,
) -> RunResult:
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    checkpoint_dir = out / "checkpoints"
    if group.is_main:
        prepare_run_directory(out)
        if not resume and ((out / "config.yaml").exists() or any(checkpoint_dir.glob("*.pt"))):
            raise OutputError(
                f"{out} already holds a run: pass --resume to continue it, or choose another "
                "--out (nothing was changed)"
            )
    log = _RunLog(out / "train.log" if group.is_main else None, console, quiet)
    torch.manual_seed(config.seed)

    train_data, val_data, split_record = _load_data(config)
    input_shape = tuple(train_data.x.shape[1:])
    model = build_embedding_net(_model_spec(config, train_data), input_shape)
    objective = Objective.from_config(
        config.batches.kind, config.loss, config.model.embedding_dim, seed=config.seed
    )
    batches = _batches(config, train_data, group)
    steps_per_epoch = len(batches)
    total_steps = config.train.steps or config.train.epochs * steps_per_epoch  # type: ignore[operator]
    optimizer = build_optimizer([*model.parameters(), *objective.parameters()], config.optimizer)
    schedule = build_schedule(optimizer, config.schedule, total_steps, steps_per_epoch)
    augment_generator = torch.Generator().manual_seed(config.seed * 1_000_003 + 17 + group.rank)
    loop = TrainingLoop(
        model,
        objective,
        train_data,
        batches,
        optimizer,
        schedule,
        total_steps,
        augment=_augmentation(config.augment, input_shape),
        augment_generator=augment_generator,
        precision=config.train.precision,
        grad_clip=config.train.grad_clip,
        log_every=config.train.log_every,
        group=group,
    )
    generators = {"augment": augment_generator}
    if objective.mining_generator is not None:
        generators["mining"] = objective.mining_generator
    tracker = _Tracker()

    def state() -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "objective": objective.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "position": vars(loop.position).copy(),
            "rng": capture_rng_state(generators),
            "tracker": {
                "best_value": tracker.best_value,
                "best_step": tracker.best_step,
                "best_metrics": tracker.best_metrics,
                "stale": tracker.stale,
                "collapse_warned": tracker.collapse_warned,
                "last_validation": tracker.last_validation,
            },
            "config": to_dict(config),
            "images": loop.history.images,
        }

    if resume:
        found = load_latest_good(checkpoint_dir)
        if found is None:
            raise CheckpointError(
                f"nothing to resume: {checkpoint_dir} holds no checkpoint. Start the run "
                "without --resume (or with another --out)."
            )
        path, saved = found
        model.load_state_dict(saved["model"])
        objective.load_state_dict(saved["objective"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        loop.position = Position(**saved["position"])
        loop.history.images = int(saved.get("images", 0))
        restore_rng_state(saved["rng"], generators)
        for name, value in saved["tracker"].items():
            setattr(tracker, name, value)
        log.line(f"resumed from {path} at step {loop.position.step}")
    elif group.is_main:
        save_config_atomic(out / "config.yaml", config)
        write_json_atomic(out / "split.json", split_record)
        log.line(
            f"training {config.model.encoder} on {config.data.name}: {len(train_data):,} "
            f"examples, {steps_per_epoch} steps/epoch, {total_steps} steps"
            + (f", validating on {len(val_data):,}" if val_data is not None else "")
        )
    if group.distributed:
        broadcast_parameters(model)
        broadcast_parameters(objective)

    metrics = MetricsLog(out, resume_step=loop.position.step) if group.is_main else None
    alarm = CollapseAlarm(objective.margin_for_alarm, config.model.embedding_dim)
    alarm.fired = tracker.collapse_warned
    early = config.train.early_stop
    metric_name = early.metric
    if metric_name not in HIGHER_IS_BETTER:
        raise ConfigError(
            f"train.early_stop.metric {metric_name!r} is not a validation metric: choose one of "
            f"{', '.join(HIGHER_IS_BETTER)}"
        )

    saved_at = {"checkpoint": -1, "validation": -1}

    def checkpoint(position: Position) -> None:
        loop.check_finite()  # never save weights that a NaN already reached
        saved_at["checkpoint"] = position.step
        if group.is_main:
            save_step_checkpoint(
                checkpoint_dir, position.step, state(), keep=config.train.keep_checkpoints
            )

    def on_record(record: dict[str, float]) -> None:
        if metrics is not None:
            metrics.write({**record, "kind": "train"})
        warning = alarm.check(record)
        if warning is not None:
            tracker.collapse_warned = True
            log.warn(warning)

    def after_step(position: Position) -> bool:
        every = config.train.checkpoint_every
        if every and position.step % every == 0 and position.batch < steps_per_epoch:
            checkpoint(position)  # epoch ends checkpoint in after_epoch
        return False

    def after_epoch(position: Position) -> bool:
        epochs_done = position.epoch
        final = position.step >= total_steps
        every = config.train.validate_every
        stop = False
        if val_data is not None and (final or (every and epochs_done % every == 0)):
            stop = _validate_and_track(position, epochs_done)
        checkpoint(position)
        if group.distributed:
            flag = torch.tensor([int(stop)])
            torch.distributed.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop

    def _validate_and_track(position: Position, epochs_done: int) -> bool:
        if group.distributed:
            average_buffers(model, group.world_size)
        saved_at["validation"] = position.step
        if not group.is_main:
            return False
        result = validate(model, val_data, config.loss.metric, seed=config.seed)
        tracker.last_validation = result
        row = {"step": position.step, "epoch": epochs_done, "kind": "validation"}
        row.update({f"val_{k}": v for k, v in result.items()})
        if metrics is not None:
            metrics.write(row)
        value = result[metric_name]
        log.line(
            f"epoch {epochs_done}: validation precision@1 {result['precision_at_1']:.4f}, "
            f"ROC AUC {result['roc_auc']:.4f}, EER {result['eer']:.4f}"
        )
        if math.isnan(value):
            return False
        sign = 1.0 if HIGHER_IS_BETTER[metric_name] else -1.0
        if tracker.best_value is None or sign * (value - tracker.best_value) > early.min_delta:
            tracker.best_value, tracker.best_step = value, position.step
            tracker.best_metrics = result
            tracker.stale = 0
            save_best(checkpoint_dir, state())
        else:
            tracker.stale += 1
        if early.patience and tracker.stale >= early.patience:
            log.line(
                f"early stop: {metric_name} did not improve for {tracker.stale} validations "
                f"(best {tracker.best_value:.4f} at step {tracker.best_step})"
            )
            return True
        return False

    start = time.perf_counter()
    stopped_early = False
    try:
        with progress_bar(not quiet and group.is_main, console) as progress:

            def epoch_hook(position: Position) -> bool:
                nonlocal stopped_early
                stopped_early = after_epoch(position) and position.step < total_steps
                return stopped_early

            history = loop.run(on_record, after_step, epoch_hook, progress)
            if saved_at["checkpoint"] != loop.position.step:  # the budget ended mid-epoch
                if val_data is not None and saved_at["validation"] != loop.position.step:
                    _validate_and_track(loop.position, loop.position.epoch + 1)
                checkpoint(loop.position)
    except TrainingDivergedError as err:
        last = checkpoint_dir / "last.pt"
        kept = f"; the last good checkpoint is {last}" if last.exists() else ""
        log.line(f"stopped: {err}{kept}")
        raise TrainingDivergedError(f"{err}{kept}") from None
    finally:
        if metrics is not None:
            metrics.close()
    seconds = time.perf_counter() - start

    if group.is_main:
        weights = "last"
        if tracker.best_step is not None and (checkpoint_dir / "best.pt").exists():
            from siamese.checkpoints import load_checkpoint

            model.load_state_dict(load_checkpoint(checkpoint_dir / "best.pt")["model"])
            weights = f"best {metric_name} at step {tracker.best_step}"
        save_model(
            out,
            model,
            input_shape,
            {
                "weights": weights,
                "trained_on": config.data.name,
                "loss": config.loss.name,
                "metric": config.loss.metric,
                "steps": loop.position.step,
            },
        )
        if isinstance(objective.loss, PairClassifierLoss):
            save_pair_head(out, objective.loss)
        log.line(f"done: {loop.position.step} steps in {seconds:.1f} s; model ({weights}) in {out}")
    images_per_s = history.images / history.seconds if history.seconds else 0.0
    return RunResult(
        run_dir=out,
        steps=loop.position.step,
        epochs_done=loop.position.epoch,
        seconds=seconds,
        images_per_s=images_per_s,
        stopped_early=stopped_early,
        best=tracker.best_metrics,
        last_validation=tracker.last_validation,
    )


def _load_data(config: RunConfig) -> tuple[LabeledData, LabeledData | None, dict[str, Any]]:
    from siamese.data.sources import load_dataset

    data_cfg = config.data
    data_dir = Path(data_cfg.data_dir) if data_cfg.data_dir else None
    data = load_dataset(data_cfg.name, data_cfg.split, data_dir, **data_cfg.options)
    record: dict[str, Any] = {"dataset": data_cfg.name, "split": data_cfg.split}
    if data_cfg.validation == "none":
        return data, None, {**record, "method": "none"}
    if data_cfg.validation == "split":
        val = load_dataset(data_cfg.name, data_cfg.validation_split, data_dir, **data_cfg.options)
        return data, val, {**record, "method": "split", "validation": data_cfg.validation_split}
    by = "class" if data_cfg.validation == "classes" else "sample"
    f = data_cfg.validation_fraction
    split = split_data(data, {"train": 1 - f, "validation": f}, by=by, seed=config.seed)
    return split.parts["train"], split.parts["validation"], {**record, **split.record()}


def _model_spec(config: RunConfig, data: LabeledData) -> dict[str, Any]:
    """The architecture spec, with the input standardisation measured on the training data
    (a seeded sample of up to 10,000 examples)."""
    g = torch.Generator().manual_seed(config.seed)
    n = len(data)
    sample = data.x[torch.randperm(n, generator=g)[: min(n, 10_000)]].double()
    if data.x.dtype == torch.uint8:
        sample = sample / 255.0
    mean, std = float(sample.mean()), float(sample.std())
    return {
        "encoder": config.model.encoder,
        "encoder_options": dict(config.model.options),
        "embedding_dim": config.model.embedding_dim,
        "normalize": config.model.normalize,
        "output_activation": config.model.output_activation,
        "mean": mean,
        "std": std if std > 1e-8 else 1.0,
    }


def _batches(config: RunConfig, data: LabeledData, group: ProcessGroup) -> Any:
    b = config.batches
    if b.kind == "pk":
        return PKSampler(data.y, b.p, b.k, config.seed, group.rank, group.world_size)
    per_epoch = b.per_epoch or len(data)
    return TupleBatches(
        data.y, b.kind, b.size, per_epoch, config.seed, group.rank, group.world_size
    )


def _augmentation(config: AugmentConfig, input_shape: tuple[int, ...]) -> Any:
    from siamese.data import transforms as T

    wanted = (
        config.preset != "none"
        or any((config.degrees, config.translate, config.shear, config.crop_padding, config.hflip))
        or tuple(config.scale) != (1.0, 1.0)
    )
    if not wanted:
        return None
    if len(input_shape) != 3:
        raise ConfigError(
            f"augment applies to images (C, H, W); this data has examples of shape "
            f"{input_shape}. Remove the augment section."
        )
    if config.preset == "koch":
        return T.koch_omniglot_augmentation(image_size=int(input_shape[1]))
    steps: list[Any] = []
    if config.degrees or config.translate or config.shear or tuple(config.scale) != (1.0, 1.0):
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


class _RunLog:
    """`train.log` lines (rank 0), echoed to the console when quiet (the bar shows progress
    otherwise)."""

    def __init__(self, path: Path | None, console: Console, quiet: bool) -> None:
        self.path, self.console, self.quiet = path, console, quiet

    def line(self, text: str) -> None:
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {text}"
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(stamped + "\n")
            self.console.print(text if not self.quiet else stamped, highlight=False)

    def warn(self, text: str) -> None:
        self.line(f"warning: {text}")
