"""The training loop: batches of indices → embeddings → loss → optimiser step.

`TrainingLoop` is the engine both `siamese train` (with a run directory, checkpoints and
validation, `siamese.run_training`) and the library's `fit` use. The hot path has no Python
loop over samples and no host synchronisation: a step's statistics stay tensors until a
logging step (every `log_every` steps) turns them into floats — which is also where a NaN or
infinite loss is caught.

Its position (`Position`: step, epoch, batches done in the epoch) together with the model,
optimiser, schedule and random-generator states is everything a checkpoint needs to continue
exactly: the batch order depends only on (seed, epoch), and a resumed loop skips the batches
of the epoch already done.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from siamese.data.labeled import LabeledData
from siamese.data.transforms import Transform
from siamese.devices import autocast, check_precision, grad_scaler, model_device, to_device
from siamese.errors import ConfigError, TrainingDivergedError
from siamese.losses import LossOutput
from siamese.training.distributed import ProcessGroup, average_gradients, gather_keeping_gradient
from siamese.training.objectives import Objective

LossFn = Callable[[torch.Tensor, torch.Tensor], LossOutput]
_INPUTS_PER_ROW = {"pk": 1, "pairs": 2, "triplets": 3}


class Batches(Protocol):
    """A batch plan: `PKSampler` or `TupleBatches` (`siamese.data.sampling.offline_tuples`)."""

    def set_epoch(self, epoch: int) -> None: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Any: ...


@dataclass
class Position:
    """Where a training run is: optimiser steps done, the current epoch (0-based) and the
    batches of that epoch already done."""

    step: int = 0
    epoch: int = 0
    batch: int = 0


@dataclass
class TrainingHistory:
    """What the loop measured. `records` holds one dict per logging step: `step`, `epoch`,
    `loss`, `active_fraction`, `mean_pos_dist`, `mean_neg_dist`, `embedding_norm`,
    `embedding_variance`, `lr`, `images_per_s` (means over the steps since the last record)."""

    records: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    images: int = 0


class TrainingLoop:
    """Trains `model` with `objective` on `data`, batch by batch, for `total_steps` steps.

    Args:
        model: maps (B, ...) inputs to (B, D) embeddings.
        objective: the loss for the batch kind (`siamese.training.objectives.Objective`).
        data: the training examples; batches index `data.x` and `data.y`.
        batches: the batch plan; `set_epoch` is called before each epoch.
        optimizer, schedule: stepped once per batch.
        total_steps: the budget in optimiser steps.
        augment: a batch transform applied to the inputs, drawing from `augment_generator`.
        precision: "fp32", "bf16" or "fp16" (autocast of the model's forward pass; fp16,
            on a GPU only, with a gradient scaler).
        grad_clip: clip the global gradient norm to this (None: no clipping).
        log_every: steps between records (and host synchronisations).
        group: this process's rank and the world size.
        device: where the model is (None: the device of its parameters). The data stays in
            host memory; each batch's inputs are copied there (`siamese.devices.to_device`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        objective: Objective,
        data: LabeledData,
        batches: Batches,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        total_steps: int,
        augment: Transform | None = None,
        augment_generator: torch.Generator | None = None,
        precision: str = "fp32",
        grad_clip: float | None = None,
        log_every: int = 20,
        group: ProcessGroup | None = None,
        device: torch.device | None = None,
    ) -> None:
        if total_steps < 0:  # 0: a pretrained encoder saved as it is
            raise ConfigError(f"the training budget must be >= 0 steps, got {total_steps}")
        if len(batches) < 1:
            raise ConfigError("the batch plan yields no batch: the training set is too small")
        self.device = device if device is not None else model_device(model)
        check_precision(precision, self.device, "precision")
        self.scaler = grad_scaler(self.device, precision)
        self.model, self.objective, self.data, self.batches = model, objective, data, batches
        self.labels = data.y.to(self.device)
        self.optimizer, self.schedule = optimizer, schedule
        self.total_steps, self.log_every = total_steps, log_every
        self.augment = augment
        self.augment_generator = augment_generator or torch.Generator().manual_seed(0)
        self.precision, self.grad_clip = precision, grad_clip
        self.group = group or ProcessGroup()
        self._objective_parameters = [p for p in objective.parameters() if p.requires_grad]
        self.parameters = [
            *(p for p in model.parameters() if p.requires_grad),
            *self._objective_parameters,
        ]
        self._inputs: torch.Tensor | None = None  # the current step's inputs, on the device
        self.position = Position()
        self.history = TrainingHistory()
        self.session_images = 0  # since this process started (a resumed run's history has more)
        self._pending: list[dict[str, torch.Tensor]] = []
        self._images_since_log = 0
        self._last_log_time = time.perf_counter()

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps (batches of this process) in one epoch."""
        return len(self.batches)

    @property
    def total_epochs(self) -> int:
        """Epochs the budget reaches into (the last one may be partial)."""
        return -(-self.total_steps // self.steps_per_epoch)

    def train(
        self,
        on_record: Callable[[dict[str, float]], None] | None = None,
        after_step: Callable[[Position], bool] | None = None,
        after_epoch: Callable[[Position], bool] | None = None,
        progress: Progress | None = None,
    ) -> TrainingHistory:
        """Train from `self.position` to the budget.

        Args:
            on_record: called with every logging record.
            after_step: called after every step; returning True stops training.
            after_epoch: called after every complete epoch (position.batch is then 0 and
                position.epoch the next epoch); returning True stops training.
            progress: a rich progress bar to update (None: no bar).
        Raises:
            TrainingDivergedError: the loss became NaN or infinite.
        """
        start = time.perf_counter()
        self._last_log_time = start
        task = None
        if progress is not None:
            task = progress.add_task(
                "training", total=self.total_steps, completed=self.position.step, status=""
            )
        self.model.train()
        stop = False
        while self.position.step < self.total_steps and not stop:
            self.batches.set_epoch(self.position.epoch)
            for index, batch, inputs in self._epoch():
                self._step(batch, inputs)
                self.position.step += 1
                self.position.batch = index + 1
                if self.position.step % self.log_every == 0 or (
                    self.position.step == self.total_steps
                ):
                    record = self._record()
                    if on_record is not None:
                        on_record(record)
                    if progress is not None and task is not None:
                        progress.update(
                            task,
                            completed=self.position.step,
                            status=progress_status(
                                self.position.epoch + 1, self.total_epochs, record
                            ),
                        )
                if (after_step is not None and after_step(self.position)) or (
                    self.position.step >= self.total_steps
                ):
                    stop = True
                    break
            else:
                self.position.epoch += 1
                self.position.batch = 0
                if after_epoch is not None and after_epoch(self.position):
                    stop = True
        if self.position.batch == self.steps_per_epoch:  # the budget ended with an epoch
            self.position.epoch += 1
            self.position.batch = 0
            if after_epoch is not None:
                after_epoch(self.position)
        self.check_finite()
        self.history.seconds += time.perf_counter() - start
        self.model.eval()
        return self.history

    def _epoch(self) -> Iterator[tuple[int, tuple[torch.Tensor, ...], torch.Tensor | None]]:
        """(index in the epoch, batch, its inputs or None) for the batches of the current
        epoch not done yet (a resumed run skips those done before its checkpoint, without
        reading them). Streamed images arrive decoded by DataLoader workers, a few batches
        ahead; in-memory inputs are read by `_step`."""
        pending = (
            (index, batch if isinstance(batch, tuple) else (torch.as_tensor(batch),))
            for index, batch in enumerate(self.batches)
            if index >= self.position.batch
        )
        if isinstance(self.data.x, torch.Tensor):
            for index, batch in pending:
                yield index, batch, None
            return
        from siamese.data.batches import load_batches

        todo = list(pending)  # the workers are handed the epoch's batches up front

        loader = load_batches(
            self.data.x,
            [self.input_index(batch) for _, batch in todo],
            workers=getattr(self.data.x, "workers", 0),
            pin_memory=self.device.type == "cuda",
        )
        try:
            for (index, batch), inputs in zip(todo, loader, strict=True):
                yield index, batch, inputs
        finally:
            loader.close()  # the budget may end mid-epoch: stop the workers

    def _embed(self, index: torch.Tensor) -> torch.Tensor:
        """The model on the step's inputs (which `_step` put on the device: `index`, the
        same examples on the device, is not looked up again)."""
        inputs = self._inputs
        if inputs is None or inputs.shape[0] != index.shape[0]:
            raise RuntimeError("the objective embedded other examples than the step's batch")
        if self.augment is not None:
            inputs = self.augment(inputs, generator=self.augment_generator)
        with autocast(self.device, self.precision):
            return self.model(inputs).float()

    def step_inputs(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """(B', ...) the host-memory inputs of every example a batch's objective embeds, in
        the order it embeds them: the pk batch's indices, the pairs' i then j, the triplets'
        anchors, positives then negatives."""
        return self.data.x[self.input_index(batch)]

    def input_index(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """(B',) int64: the examples `step_inputs` reads, in that order."""
        return torch.cat(batch[: _INPUTS_PER_ROW[self.objective.kind]])

    def _step(self, batch: tuple[torch.Tensor, ...], inputs: torch.Tensor | None = None) -> None:
        """One optimiser step on `batch` (index tensors in host memory); `inputs`, when
        given, are its `step_inputs` already read (by DataLoader workers)."""
        gather = gather_keeping_gradient if self.group.distributed else None
        inputs = self.step_inputs(batch) if inputs is None else inputs
        self._inputs = to_device(inputs, self.device)
        on_device = tuple(to_device(t, self.device) for t in batch)
        try:
            out = self.objective.step(self._embed, self.labels, on_device, gather)
        finally:
            self._inputs = None
        loss = out.loss
        if self.group.distributed and self.objective.gathers:
            loss = loss * self.group.world_size  # each rank holds a share of the gradient
        self.optimizer.zero_grad(set_to_none=True)
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        self.reduce_gradients()  # an overflow on one rank reaches every rank's gradients
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when a gradient overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self.schedule.step()
        z = out.embeddings
        self._pending.append(
            {
                "loss": out.loss.detach(),
                **out.stats,
                "embedding_norm": z.norm(dim=1).mean(),
                "embedding_variance": z.var(dim=0).mean() if z.shape[0] > 1 else z.new_zeros(()),
            }
        )
        images = _INPUTS_PER_ROW[self.objective.kind] * batch[0].numel()
        self._images_since_log += images
        self.history.images += images
        self.session_images += images

    def reduce_gradients(self) -> None:
        """Under torchrun: average the gradients across ranks (after a backward pass of the
        loss scaled by the world size when the objective gathers the global batch)."""
        if not self.group.distributed:
            return
        average_gradients(self.parameters, self.group.world_size)
        if self.objective.gathers:
            # The loss's own parameters (the pair head) saw the whole global batch on every
            # rank: their gradient was already complete before the ×world_size.
            for p in self._objective_parameters:
                p.grad.div_(self.group.world_size)

    def check_finite(self) -> None:
        """Raise `TrainingDivergedError` if a loss since the last record is NaN or infinite
        (a host synchronisation: call it before saving a checkpoint)."""
        # (1, the bad value) or (0, 0): NaN and ±inf travel as themselves in a float tensor.
        found = torch.zeros(2, dtype=torch.float64)
        if self._pending:
            losses = torch.stack([p["loss"] for p in self._pending]).cpu().double()
            bad = losses[~torch.isfinite(losses)]
            if bad.numel():
                found = torch.stack([torch.ones((), dtype=torch.float64), bad[0]])
        if self.group.distributed:  # every rank stops together, or none does
            # NCCL moves only GPU tensors; gloo, CPU ones.
            wire = self.device if self.device.type == "cuda" else torch.device("cpu")
            flags = [
                torch.zeros(2, dtype=torch.float64, device=wire)
                for _ in range(self.group.world_size)
            ]
            torch.distributed.all_gather(flags, found.to(wire))
            found = next((f for f in flags if f[0] == 1), found).cpu()
        if found[0] == 1:
            value = float(found[1])
            raise TrainingDivergedError(
                f"the loss became {value} near step {self.position.step}: lower the learning rate "
                "(optimizer.lr), clip the gradients (train.grad_clip), or check the input data "
                "for NaN/inf values"
            )

    def telemetry_state(self) -> dict[str, Any]:
        """The statistics gathered since the last record, for a checkpoint: a resumed run's
        next record then averages the same steps as an uninterrupted run's."""
        return {"pending": list(self._pending), "images_since_log": self._images_since_log}

    def load_telemetry_state(self, state: dict[str, Any]) -> None:
        """Restore `telemetry_state` (saved on any device: its tensors move to this one)."""
        self._pending = [
            {name: value.to(self.device) for name, value in pending.items()}
            for pending in state["pending"]
        ]
        self._images_since_log = int(state["images_since_log"])

    def _record(self) -> dict[str, float]:
        self.check_finite()
        now = time.perf_counter()
        names = self._pending[0].keys()
        record: dict[str, float] = {
            "step": float(self.position.step),
            "epoch": float(self.position.epoch + 1),
        }
        for name in names:
            record[name] = float(torch.stack([p[name] for p in self._pending]).mean())
        record["lr"] = float(self.optimizer.param_groups[0]["lr"])
        record["images_per_s"] = self._images_since_log / max(now - self._last_log_time, 1e-9)
        self.history.records.append(record)
        self._pending, self._images_since_log, self._last_log_time = [], 0, now
        return record


def progress_status(epoch: int, epochs: int, record: dict[str, float]) -> str:
    """The progress bar's status text: short, so that the whole bar fits in 80 columns."""
    return (
        f"ep {epoch}/{epochs} loss {record['loss']:.4f} act {record['active_fraction']:.0%} "
        f"{record['images_per_s']:,.0f} img/s"
    )


_FIXED_COLUMNS_WIDTH = 70
"""Width of the progress bar's columns besides the bar itself (counts, status, two clocks)."""


def progress_bar(show: bool, console: Console | None = None) -> contextlib.AbstractContextManager:
    """A rich progress bar for `TrainingLoop.train` (a no-op context when not `show`).

    The bar itself takes what the terminal leaves beside the other columns (10 to 40
    characters), so that an 80-column terminal shows the clocks whole."""
    if not show:
        return contextlib.nullcontext(None)
    console = console or Console()
    bar_width = max(10, min(40, console.width - _FIXED_COLUMNS_WIDTH))
    return Progress(
        BarColumn(bar_width=bar_width),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up from 0 to 1, then cosine decay to 0."""
    from siamese.config import ScheduleConfig
    from siamese.training.optimization import lr_factor

    fraction = warmup_steps / max(1, total_steps)
    return lr_factor(ScheduleConfig("cosine", warmup_fraction=fraction), total_steps, 1)


def fit(
    model: torch.nn.Module,
    data: LabeledData,
    loss_fn: LossFn,
    sampler: Batches,
    epochs: int,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    warmup_fraction: float = 0.05,
    log_every: int = 10,
    show_progress: bool = True,
    augment: Transform | None = None,
    seed: int = 0,
) -> TrainingHistory:
    """Train `model` on P×K batches of `data` with AdamW and a warm-up + cosine schedule — the
    library's short way; `siamese train` adds configs, checkpoints and validation.

    Args:
        model: maps (B, ...) inputs to (B, D) embeddings.
        data: the training examples (x is indexed by the sampler's batches).
        loss_fn: `(embeddings (B, D), labels (B,)) -> LossOutput`, e.g. `TripletLoss()`.
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

    Example:
        >>> import torch
        >>> from siamese import EmbeddingNet, PKSampler, TripletLoss, build_encoder
        >>> from siamese import fit, load_dataset
        >>> _ = torch.manual_seed(0)
        >>> data = load_dataset("digits").subset(torch.arange(100))
        >>> net = EmbeddingNet(build_encoder("mlp", (1, 8, 8), hidden=[16]), embedding_dim=8)
        >>> sampler = PKSampler(data.y, p=4, k=2, seed=0)  # 12 batches of 8
        >>> loss_fn = TripletLoss(margin=0.2, mining="semihard")
        >>> history = fit(net, data, loss_fn, sampler, epochs=1, log_every=4, show_progress=False)
        >>> len(history.records), history.images, history.records[-1]["step"]
        (3, 96, 12.0)
        >>> sorted(history.records[-1])[:4]
        ['active_fraction', 'embedding_norm', 'embedding_variance', 'epoch']
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    objective = Objective(
        "pk", loss_fn if isinstance(loss_fn, torch.nn.Module) else _Wrapped(loss_fn)
    ).to(model_device(model))
    parameters: Iterable[torch.nn.Parameter] = [*model.parameters(), *objective.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    total_steps = epochs * len(sampler)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total_steps, max(1, round(warmup_fraction * total_steps)))
    )
    loop = TrainingLoop(
        model,
        objective,
        data,
        sampler,
        optimizer,
        schedule,
        total_steps,
        augment=augment,
        augment_generator=torch.Generator().manual_seed(seed),
        log_every=log_every,
    )
    with progress_bar(show_progress) as progress:
        return loop.train(progress=progress)


class _Wrapped(torch.nn.Module):
    """A plain loss function as a module, so that an `Objective` can hold it."""

    def __init__(self, fn: LossFn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        return self.fn(embeddings, labels)
