"""A training run from a `RunConfig` into a run directory — what `siamese train` does.

The run directory holds `config.yaml` (the effective config), `split.json` (which classes or
examples went to training and validation), `metrics.csv` (telemetry and validation rows),
`train.log`, `checkpoints/` (`step-*.pt`, `last.pt`, `best.pt`) and, at the end,
`model.safetensors` + `model.json` (the best weights by the early-stopping metric when the run
validates, else the last ones), which `siamese.load_model(RUN)` rebuilds; a run that trains
the pair classifier also keeps its head (`pair_head.safetensors`, `load_siamese_net`).

Checkpoints are written at the end of every epoch and every `train.checkpoint_every` steps;
`resume=True` continues from the newest good one exactly (same batches, same random draws,
same telemetry), so an interrupted run ends with the same weights and metrics as an
uninterrupted one. A resumed run may change its budget, bookkeeping and learning rate
(`siamese.config.RESUME_CHANGEABLE`), nothing else.

Under `torchrun`, every rank runs the same code path (collectives are never called on one
rank only); rank 0 alone writes the run directory.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.console import Console

from siamese.atomic_files import write_json_atomic
from siamese.config import RunConfig, check_resume_changes
from siamese.config.loading import from_dict
from siamese.config.yaml_dialect import save_config_atomic, to_dict
from siamese.devices import check_precision, describe_device, process_group_backend, resolve_device
from siamese.errors import (
    CheckpointError,
    DataError,
    OutputError,
    RunInterrupted,
    TrainingDivergedError,
)
from siamese.evaluation.embed import embed
from siamese.evaluation.validation import HIGHER_IS_BETTER, validate
from siamese.faces.preprocessing import face_step
from siamese.losses import PairClassifierLoss
from siamese.models.embedding import build_embedding_net
from siamese.models.files import read_model_files, save_model, save_pair_head
from siamese.recognition.thresholds import Thresholds, calibrate
from siamese.run_directory.data import load_training_data
from siamese.run_directory.layout import claim_run_directory
from siamese.run_directory.metrics import MetricsLog
from siamese.training.checkpoints import (
    best_checkpoint_path,
    load_checkpoint,
    load_latest_good,
    save_best,
    save_step_checkpoint,
)
from siamese.training.collapse_alarm import CollapseAlarm
from siamese.training.distributed import (
    ProcessGroup,
    average_buffers,
    broadcast_parameters,
    join_from_environment,
    leave,
)
from siamese.training.loop import Position, TrainingLoop, progress_bar
from siamese.training.objectives import Objective
from siamese.training.optimization import build_optimizer, build_schedule, loss_learning_rate
from siamese.training.rng_state import capture_rng_state, restore_rng_state
from siamese.training.setup import build_augmentation, build_batches, model_spec


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
    is_main: bool = True


@dataclass
class _Tracker:
    """The run's own resumable state besides the loop's position."""

    best_value: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    stale: int = 0
    collapse_warned: bool = False
    last_validation: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False


def train_run(
    config: RunConfig,
    out: Path,
    resume: bool = False,
    quiet: bool = False,
    console: Console | None = None,
    force: bool = False,
) -> RunResult:
    """Train `config` into the run directory `out`.

    Args:
        config: the effective config (written to `out/config.yaml`).
        out: the run directory.
        resume: continue from the newest good checkpoint in `out/checkpoints/` (from step 0
            when the run stopped before its first checkpoint).
        quiet: no progress bar; log lines only.
        force: replace a run already in `out` as a whole (its run files only).
    Raises:
        OutputError: `out` holds files that are not a run, or a run while neither `resume`
            nor `force` is given, or cannot be written. Nothing is changed then.
        RunInterrupted: Ctrl-C; the message names the checkpoint kept and the resume command.
        CheckpointError: `resume` with checkpoints that are all damaged or do not fit.
        TrainingDivergedError: the loss became NaN or inf (the last good checkpoint stays).
        ConfigError, DataError: as the config and data demand.
    """
    device = resolve_device(config.device, "device (the config's, or --device)")
    check_precision(config.train.precision, device)
    group = join_from_environment(process_group_backend(device))
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's collectives and object gathers use it
    try:
        run = TrainingRun(config, Path(out), group, console or Console(), quiet, device)
        return run.execute(resume, force)
    finally:
        leave(group)


class TrainingRun:
    """One run: its parts built from the config, the hooks the training loop calls, and the
    run directory they write. Use `train_run`."""

    def __init__(
        self,
        config: RunConfig,
        out: Path,
        group: ProcessGroup,
        console: Console,
        quiet: bool,
        device: torch.device | None = None,
    ) -> None:
        self.config, self.out, self.group = config, out, group
        self.device = device if device is not None else torch.device("cpu")
        self.checkpoint_dir = out / "checkpoints"
        self.log = _RunLog(out / "train.log" if group.is_main else None, console, quiet)
        self.quiet = quiet
        if config.train.threads is not None:
            torch.set_num_threads(config.train.threads)
        torch.manual_seed(config.seed)
        # Data warnings (classes of one example, skipped files) go to train.log as well as to
        # the console, once the directory is claimed.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.train_data, self.val_data, self.split_record = load_training_data(config)
        self.data_warnings = [str(w.message) for w in caught]
        self.input_shape = tuple(self.train_data.x.shape[1:])
        spec = model_spec(config, self.train_data)
        self.model = build_embedding_net(spec, self.input_shape).to(self.device)
        self.objective = Objective.from_config(
            config.batches.kind,
            config.loss,
            config.model.embedding_dim,
            seed=config.seed,
            train_labels=self.train_data.y,
        ).to(self.device)
        batches = build_batches(config, self.train_data.y, group)
        self.steps_per_epoch = len(batches)
        epochs = config.train.epochs or 0
        steps = config.train.steps
        self.total_steps = steps if steps is not None else epochs * self.steps_per_epoch
        # the loss's own parameters (class weights, proxies, a head) learn at their own rate
        groups = [{"params": list(self.model.parameters()), "lr": config.optimizer.lr}]
        if any(True for _ in self.objective.parameters()):
            groups.append(
                {"params": list(self.objective.parameters()), "lr": loss_learning_rate(config)}
            )
        self.optimizer = build_optimizer(groups, config.optimizer)
        self.schedule = build_schedule(
            self.optimizer, config.schedule, self.total_steps, self.steps_per_epoch
        )
        augment_generator = torch.Generator().manual_seed(config.seed * 1_000_003 + 17 + group.rank)
        self.loop = TrainingLoop(
            self.model,
            self.objective,
            self.train_data,
            batches,
            self.optimizer,
            self.schedule,
            self.total_steps,
            augment=build_augmentation(config.augment, self.input_shape),
            augment_generator=augment_generator,
            precision=config.train.precision,
            grad_clip=config.train.grad_clip,
            log_every=config.train.log_every,
            group=group,
            device=self.device,
        )
        self.generators = {"augment": augment_generator}
        if self.objective.mining_generator is not None:
            self.generators["mining"] = self.objective.mining_generator
        self.tracker = _Tracker()
        self.metric = config.train.early_stop.metric
        self.last_checkpoint_step = -1
        self.last_validation_step = -1
        self.metrics: MetricsLog | None = None
        self.alarm = CollapseAlarm(self.objective.margin_for_alarm, config.model.embedding_dim)

    # ----------------------------------------------------------------------------------------
    # The run

    def execute(self, resume: bool, force: bool = False) -> RunResult:
        """Prepare the directory, restore a checkpoint when resuming, train, save the model."""
        self._claim_directory(resume, force)
        for text in self.data_warnings:
            self.log.warn(text)
        restored = self._restore() if resume else False
        if not restored and self.group.is_main:
            save_config_atomic(self.out / "config.yaml", self.config)
            write_json_atomic(self.out / "split.json", self.split_record)
            val = self.val_data
            if self.total_steps == 0:
                self.log.line(
                    f"no training (train.steps 0): the pretrained {self.config.model.encoder} "
                    f"is saved as it is" + (f", validated on {len(val):,}" if val else "")
                )
            else:
                self.log.line(
                    f"training {self.config.model.encoder} on {self.config.data.name}: "
                    f"{len(self.train_data):,} examples, {self.steps_per_epoch} steps/epoch, "
                    f"{self.total_steps} steps"
                    + (f", validating on {len(val):,}" if val else "")
                    + f"; on {describe_device(self.device)}"
                    + (
                        f" in {self.config.train.precision}"
                        if self.config.train.precision != "fp32"
                        else ""
                    )
                )
        if self.group.distributed:
            broadcast_parameters(self.model)
            broadcast_parameters(self.objective)
        finished = self.loop.position.step >= self.total_steps or self.tracker.stopped_early
        if finished and restored and self.group.is_main and not self._model_files_intact():
            self.log.line(
                f"the run is complete at step {self.loop.position.step} but its model files are "
                "missing or damaged: rebuilding them from its checkpoints"
            )
            self._save_model()
            return self._result(0.0)
        if finished and (self.out / "model.safetensors").exists():
            self.log.line(
                f"the run is already complete at step {self.loop.position.step}; raise its "
                "budget (--set train.epochs=... or train.steps=...) to train further"
            )
            return self._result(0.0)
        start = time.perf_counter()
        if not finished:
            self._train()
        seconds = time.perf_counter() - start
        if self.group.is_main:
            self._save_model()
        return self._result(seconds)

    def _model_files_intact(self) -> bool:
        try:
            read_model_files(self.out)
        except CheckpointError:
            return False
        return True

    def _claim_directory(self, resume: bool, force: bool) -> None:
        """Rank 0 checks that `out` can be written and holds no other run (or replaces it with
        `force`); every rank learns the verdict, so all stop together."""
        problem = ""
        if self.group.is_main:
            try:
                claim_run_directory(self.out, resume=resume, force=force)
            except OutputError as err:
                problem = str(err)
        if self.group.distributed:
            verdict = [problem]
            dist.broadcast_object_list(verdict, src=0)
            problem = verdict[0]
        if problem:
            raise OutputError(problem)

    def _restore(self) -> bool:
        """Load the newest good checkpoint; False when there is none yet (the run stopped
        before its first one: it starts again from step 0)."""
        found = load_latest_good(self.checkpoint_dir)
        if found is None:
            self.log.line("no checkpoint yet: starting from step 0 with the run's config")
            return False
        path, saved = found
        changed = check_resume_changes(
            from_dict(RunConfig, saved["config"], str(path)), self.config, "--resume"
        )
        try:
            self.model.load_state_dict(saved["model"])
            self.objective.load_state_dict(saved["objective"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.schedule.load_state_dict(saved["schedule"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(
                f"{path} does not fit this run's model or optimiser ({err}); resume with the "
                "run's own config.yaml, or start a new run"
            ) from None
        if "optimizer.lr" in changed or "loss.lr" in changed:
            self._apply_learning_rates()
        self.loop.position = Position(**saved["position"])
        self.loop.history.images = int(saved["images"])
        self.loop.load_telemetry_state(saved["telemetry"])
        rng_states = saved["rng"]
        restore_rng_state(rng_states[min(self.group.rank, len(rng_states) - 1)], self.generators)
        self.tracker = _Tracker(**saved["tracker"])
        if self.loop.scaler is not None and saved.get("scaler"):
            self.loop.scaler.load_state_dict(saved["scaler"])
        if "train.early_stop.patience" in changed:  # a stopped run may go on with more patience
            self.tracker.stopped_early, self.tracker.stale = False, 0
        self.last_checkpoint_step = self.loop.position.step
        self.log.line(f"resumed from {path} at step {self.loop.position.step}")
        if changed:
            self.log.line(f"changed on resume: {', '.join(changed)}")
            if self.group.is_main:
                save_config_atomic(self.out / "config.yaml", self.config)
        return True

    def _apply_learning_rates(self) -> None:
        """New peak learning rates for a resumed run (the model's and the loss's), at the
        schedule's current factor."""
        factor = self.schedule.lr_lambdas[0](self.schedule.last_epoch)
        rates = [self.config.optimizer.lr, loss_learning_rate(self.config)]
        self.schedule.base_lrs = rates[: len(self.optimizer.param_groups)]
        for group, lr in zip(self.optimizer.param_groups, rates, strict=False):
            group["initial_lr"] = lr
            group["lr"] = lr * factor

    def _train(self) -> None:
        main = self.group.is_main
        self.metrics = MetricsLog(self.out, resume_step=self.loop.position.step) if main else None
        self.alarm.fired = self.tracker.collapse_warned
        try:
            with progress_bar(not self.quiet and main, self.log.console) as progress:
                self.loop.train(self._on_record, self._after_step, self._after_epoch, progress)
                self._finish()
        except TrainingDivergedError as err:
            last = self.checkpoint_dir / "last.pt"
            kept = f"; the last good checkpoint is {last}" if last.exists() else ""
            self.log.line(f"stopped: {err}{kept}")
            raise TrainingDivergedError(f"{err}{kept}") from None
        except KeyboardInterrupt:
            message = self._interrupted_message()
            self.log.line(f"stopped: {message}")
            raise RunInterrupted(message) from None
        finally:
            if self.metrics is not None:
                self.metrics.close()

    def _interrupted_message(self) -> str:
        """What a Ctrl-C kept, and the command that continues the run."""
        step = self.loop.position.step
        kept = self.last_checkpoint_step
        resume = f"siamese train --resume --out {self.out}"
        if kept < 0:
            return (
                f"interrupted at step {step} of {self.total_steps}, before the first checkpoint: "
                f"nothing to keep but the config; `{resume}` starts it again from step 0"
            )
        return (
            f"interrupted at step {step} of {self.total_steps}; the checkpoint of step {kept} "
            f"is kept in {self.checkpoint_dir}. Continue with: {resume}"
        )

    # ----------------------------------------------------------------------------------------
    # Hooks the training loop calls

    def _on_record(self, record: dict[str, float]) -> None:
        if self.metrics is not None:
            self.metrics.write({**record, "kind": "train"})
        if self.group.is_main:
            warning = self.alarm.check(record)
            if warning is not None:
                self.tracker.collapse_warned = True
                self.log.warn(warning)

    def _after_step(self, position: Position) -> bool:
        every = self.config.train.checkpoint_every
        if every and position.step % every == 0 and position.batch < self.steps_per_epoch:
            self._checkpoint(position)  # an epoch's end is checkpointed by _after_epoch
        return False

    def _after_epoch(self, position: Position) -> bool:
        self.loop.check_finite()  # a NaN is reported as such, not as bad validation data
        every = self.config.train.validate_every
        final = position.step >= self.total_steps
        if self.val_data is not None and (final or (every and position.epoch % every == 0)):
            self._validate(position, epochs_done=position.epoch, final=final)
        self._checkpoint(position)
        stop = self.tracker.stopped_early and not final
        if self.group.distributed:
            # NCCL moves only GPU tensors; gloo, CPU ones.
            wire = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
            flag = torch.tensor([int(stop)], device=wire)
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop

    def _finish(self) -> None:
        """Validate and checkpoint where the budget ended, if the last epoch's hooks did not."""
        position = self.loop.position
        self.loop.check_finite()
        validated = self.val_data is not None and self.last_validation_step != position.step
        if validated:
            self._validate(position, epochs_done=position.epoch + (position.batch > 0), final=True)
        if validated or self.last_checkpoint_step != position.step:
            self._checkpoint(position)  # holds the final validation's bookkeeping too

    # ----------------------------------------------------------------------------------------
    # Validation and checkpoints

    def _validate(self, position: Position, epochs_done: int, final: bool) -> None:
        self.last_validation_step = position.step
        if self.group.distributed:
            average_buffers(self.model, self.group.world_size)
        rng = self._rng_states()  # a collective: every rank, before rank 0 alone goes on
        if not self.group.is_main:
            return
        loss = self.objective.loss
        head = loss if isinstance(loss, PairClassifierLoss) else None
        result = validate(
            self.model, self.val_data, self.config.loss.metric, seed=self.config.seed, head=head
        )
        tracker = self.tracker
        tracker.last_validation = result
        if self.metrics is not None:
            row: dict[str, Any] = {
                "step": position.step,
                "epoch": epochs_done,
                "kind": "validation",
            }
            self.metrics.write({**row, **{f"val_{k}": v for k, v in result.items()}})
        self.log.line(
            f"epoch {epochs_done}: validation precision@1 {result['precision_at_1']:.4f}, "
            f"ROC AUC {result['roc_auc']:.4f}, EER {result['eer']:.4f}"
        )
        value = result[self.metric]
        if value != value:  # NaN: the validation data cannot give this metric
            return
        early = self.config.train.early_stop
        sign = 1.0 if HIGHER_IS_BETTER[self.metric] else -1.0
        if tracker.best_value is None or sign * (value - tracker.best_value) > early.min_delta:
            tracker.best_value, tracker.best_step = value, position.step
            tracker.best_metrics, tracker.stale = result, 0
            save_best(self.checkpoint_dir, self._state(rng))
        else:
            tracker.stale += 1
        if early.patience and tracker.stale >= early.patience and not final:
            tracker.stopped_early = True
            self.log.line(
                f"early stop: {self.metric} did not improve for {tracker.stale} validations "
                f"(best {tracker.best_value:.4f} at step {tracker.best_step})"
            )

    def _checkpoint(self, position: Position) -> None:
        self.loop.check_finite()  # never save weights that a NaN already reached
        self.last_checkpoint_step = position.step
        if self.group.distributed:
            # Equal batch-norm statistics on every rank, so a resume (which starts every rank
            # from rank 0's weights) continues exactly.
            average_buffers(self.model, self.group.world_size)
        rng = self._rng_states()
        if self.group.is_main:
            save_step_checkpoint(
                self.checkpoint_dir,
                position.step,
                self._state(rng),
                keep=self.config.train.keep_checkpoints,
            )

    def _rng_states(self) -> list[dict[str, Any]]:
        """Every rank's generator states, in rank order (a collective under torchrun)."""
        mine = capture_rng_state(self.generators)
        if not self.group.distributed:
            return [mine]
        states: list[Any] = [None] * self.group.world_size
        dist.all_gather_object(states, mine)
        return states

    def _state(self, rng: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "position": asdict(self.loop.position),
            "images": self.loop.history.images,
            "telemetry": self.loop.telemetry_state(),
            "rng": rng,
            "tracker": asdict(self.tracker),
            # fp16's loss scale and its growth count: a resumed run skips the same steps
            "scaler": self.loop.scaler.state_dict() if self.loop.scaler is not None else None,
            "config": to_dict(self.config),
        }

    # ----------------------------------------------------------------------------------------
    # The result

    def _save_model(self) -> None:
        weights = "last"
        best = best_checkpoint_path(self.checkpoint_dir)
        if self.tracker.best_step is not None and best.exists():
            self.model.load_state_dict(load_checkpoint(best)["model"])
            weights = f"best {self.metric} at step {self.tracker.best_step}"
        facts = {
            "weights": weights,
            "trained_on": self.config.data.name,
            "loss": self.config.loss.name,
            "metric": self.config.loss.metric,
            "steps": self.loop.position.step,
            "preprocessing": self._preprocessing(),
        }
        thresholds = self._calibrated_thresholds()
        if thresholds is not None:
            facts["thresholds"] = thresholds.as_dict()
        save_model(self.out, self.model, self.input_shape, facts)
        if isinstance(self.objective.loss, PairClassifierLoss):
            save_pair_head(self.out, self.objective.loss)
        self.log.line(f"done: {self.loop.position.step} steps; model ({weights}) in {self.out}")

    def _preprocessing(self) -> dict[str, Any]:
        """What model.json declares about turning images into inputs: the resize mode and
        the data source's face step, which `Recognizer` then applies to every image."""
        options = self.config.data.options
        declared: dict[str, Any] = {"resize": str(options.get("resize", "stretch"))}
        step = face_step(options.get("face"))
        if step is not None:
            declared["face"] = step.as_dict()
        return declared

    def _calibrated_thresholds(self) -> Thresholds | None:
        """Decision thresholds at stated false-accept rates, measured with the saved weights
        on the validation classes (never trained on); None without validation classes."""
        if self.val_data is None or self.config.data.validation != "classes":
            self.log.line(
                "no validation classes: the model carries no calibrated thresholds; measure "
                f"them with `siamese calibrate {self.out} --data ...` on labelled classes it "
                "did not train on"
            )
            return None
        loss = self.objective.loss
        head = loss if isinstance(loss, PairClassifierLoss) else None
        data = self.val_data
        z = embed(self.model, data.x)
        n_classes = int(torch.unique(data.y).numel())
        described = (
            f"the run's validation classes ({n_classes} classes, {len(data):,} examples, "
            "never trained on)"
        )
        try:
            thresholds = calibrate(z, data.y, self.config.loss.metric, described, head=head)
        except DataError as err:
            self.log.warn(f"thresholds not calibrated: {err}")
            return None
        rates = ", ".join(f"{f:g}" for f in thresholds.at_far) or "none"
        self.log.line(
            f"thresholds calibrated on {described}: FAR {rates}; EER {thresholds.eer:.4f}"
        )
        return thresholds

    def _result(self, seconds: float) -> RunResult:
        session = self.loop.history.seconds
        return RunResult(
            run_dir=self.out,
            steps=self.loop.position.step,
            epochs_done=self.loop.position.epoch,
            seconds=seconds,
            images_per_s=self.loop.session_images / session if session else 0.0,
            stopped_early=self.tracker.stopped_early,
            best=self.tracker.best_metrics,
            last_validation=self.tracker.last_validation,
            is_main=self.group.is_main,
        )


class _RunLog:
    """`train.log` lines (rank 0 only), echoed to the console with a time stamp when quiet
    (the progress bar shows the time otherwise)."""

    def __init__(self, path: Path | None, console: Console, quiet: bool) -> None:
        self.path, self.console, self.quiet = path, console, quiet

    def line(self, text: str) -> None:
        if self.path is None:
            return
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {text}"
        with self.path.open("a", encoding="utf-8") as f:
            f.write(stamped + "\n")
        self.console.print(stamped if self.quiet else text, highlight=False)

    def warn(self, text: str) -> None:
        self.line(f"warning: {text}")
