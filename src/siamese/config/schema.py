"""The run config: what `siamese train` reads from YAML, as typed dataclasses.

Every field has a default, so a recipe names only what differs. `load_config` reads a YAML
file, applies `--set a.b=c` overrides and checks every key and type
(`siamese.config.loading`): an unknown key names the nearest valid one, a wrong type names the
key and the type expected.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Literal

from siamese.errors import ConfigError
from siamese.losses.catalog import (
    COMMON_OPTIONS,
    LOSSES,
    METRICS,
    loss_entry,
    loss_names,
    option_types,
    options_of,
)


@dataclass
class DataConfig:
    """Where the examples come from and how validation examples are set apart."""

    name: str = "glyphs"
    """A `siamese.load_dataset` name: mnist, fashion-mnist, orl, omniglot, digits, glyphs,
    5-celebrity-faces, folder:PATH or arrays:PATH."""
    split: str | None = None
    """The dataset's split to train on (None: its default, e.g. `train`, `background`)."""
    data_dir: str | None = None
    """The data directory (None: $SIAMESE_DATA_DIR, else ~/.cache/siamese)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Extra options of the source (e.g. image_size, channels for folders)."""
    validation: Literal["classes", "samples", "split", "pairs", "none"] = "classes"
    """How validation examples are chosen: held-out classes (open-set, the default),
    a stratified share of every class, the dataset's own split (`validation_split`), held-out
    pairs (the pair tutorials' closed-set protocol: `pairs` fixed pairs over all examples, a
    share held out; needs batches.kind pairs; evaluation scores the held-out pairs), or none."""
    validation_fraction: float = 0.2
    """Share of the classes (or samples, or pairs) held out for validation."""
    pairs: int = 20000
    """With validation: pairs, how many fixed balanced pairs to draw (half genuine)."""
    validation_split: str | None = None
    """With validation: split, the dataset split to validate on (e.g. `test`)."""
    test_fraction: float = 0.0
    """Share of the classes held out as a test part that neither training nor validation
    sees (open-set recipes on datasets without a test split, e.g. ORL); `evaluate` reports on
    it, and validation (checkpoint, threshold) comes from the other classes. 0: none."""
    test_fold: int = 0
    """Which of the round(1 / test_fraction) disjoint class folds is the test part: train
    one run per fold (`siamese sweep --set data.test_fold=0,1,2,3`) and report the mean ±
    std over the folds."""


@dataclass
class AugmentConfig:
    """Random per-batch transforms of the training inputs (images only)."""

    preset: Literal["none", "koch"] = "none"
    """`koch`: Koch et al.'s Omniglot affine distortions; the fields below then are ignored."""
    degrees: float = 0.0
    """Rotation drawn from [-degrees, degrees]."""
    translate: float = 0.0
    """Shift drawn from ±translate × the image size, per axis."""
    scale: tuple[float, float] = (1.0, 1.0)
    """Zoom factor drawn from [low, high]."""
    shear: float = 0.0
    """Shear angle in degrees drawn from [-shear, shear]."""
    crop_padding: int = 0
    """Pad by this many pixels and crop back to the input size at a random place."""
    hflip: float = 0.0
    """Probability of a horizontal flip (faces: 0.5; never for characters or digits)."""


@dataclass
class ModelConfig:
    """The encoder and the embedding head (`siamese.models`)."""

    encoder: str = "convnet"
    """The encoder by name: mlp (vectors), seed_cnn (the tutorials' two conv layers), convnet
    (few-shot backbone), resnet (faces), lstm / gru (sequences, or images row by row),
    dlib_face_resnet (dlib's pretrained face network: 150×150 aligned RGB chips, 128-d;
    use it with projection false, embedding_dim 128, normalize false); or your own as
    `package.module:factory`, called as factory(input_shape, **options) and returning an
    nn.Module from (N, *input_shape) to (N, F) (its path goes into model.json, and loading the
    model imports it again: only load models you trust)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The encoder's own options (widths, hidden sizes, depth...; see `siamese.models`), or
    your factory's keyword arguments (JSON-able values)."""
    embedding_dim: int = 64
    """D, the size of the embedding."""
    normalize: bool = True
    """L2-normalise the embeddings (distances then lie in [0, 2])."""
    output_activation: Literal["none", "sigmoid", "relu"] = "none"
    """`sigmoid` squashes each embedding coordinate into (0, 1), as the Keras tutorial does;
    `relu` keeps them non-negative, as the ORL contrastive tutorial does."""
    projection: bool = True
    """A linear layer from the encoder's features to embedding_dim; false: the features are
    the embedding (a pretrained encoder's own output layer)."""


def _loss_option_help() -> dict[str, str]:
    """Each `loss.<key>`'s help: the common keys', and each option's per loss with defaults."""
    helps = {
        "name": "The loss: "
        + "; ".join(f"{e.name} ({e.summary})" for e in LOSSES)
        + ". Its options below apply to the losses named with them.",
        "metric": _sentence(COMMON_OPTIONS["metric"])
        + " (null: the loss's own, "
        + ", ".join(f"{e.name} {e.metric}" for e in LOSSES if e.uses_metric)
        + ", cosine for the others).",
        "lr": _sentence(COMMON_OPTIONS["lr"]) + ".",
    }
    for name in option_types():
        uses = [
            (entry.name, option)
            for entry in LOSSES
            for option in options_of(entry)
            if option.name == name
        ]
        if name == "memory":
            losses = ", ".join(entry for entry, _ in uses)
            helps[name] = f"{_sentence(COMMON_OPTIONS['memory'])} ({losses})."
            continue
        parts = []
        for entry, option in uses:
            valid = f"; {option.range_text}" if option.range_text else ""
            parts.append(f"{entry} {_yaml_value(option.default)} ({option.help}{valid})")
        helps[name] = "Default and meaning per loss: " + ", ".join(parts) + "."
    return helps


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _yaml_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else f"{value}"


def _loss_config_fields() -> list[tuple[str, Any, Any]]:
    def annotation(tp: Any) -> Any:
        return Literal[tp] if isinstance(tp, tuple) else tp  # type: ignore[valid-type]

    fields: list[tuple[str, Any, Any]] = [
        ("name", Literal[loss_names()], "triplet"),  # type: ignore[valid-type]
        ("metric", Literal[METRICS] | None, None),  # type: ignore[valid-type]
        ("lr", float | None, None),
    ]
    types = option_types()
    order = ["memory", *(n for n in types if n != "memory")]
    fields += [(name, annotation(types[name]) | None, None) for name in order]
    return fields


def _resolve_loss_defaults(self: Any) -> None:
    """Fill the options the chosen loss takes and the config left unset with its defaults."""
    try:
        entry = loss_entry(self.name)
    except KeyError as error:
        raise ConfigError(f"loss.name: {error.args[0]}") from None
    if self.metric is None:
        self.metric = entry.metric
    for option in options_of(entry):
        if getattr(self, option.name) is None:
            setattr(self, option.name, option.default)


LossConfig = make_dataclass(
    "LossConfig",
    _loss_config_fields(),
    namespace={
        "__doc__": "The loss (`siamese.losses.catalog`): `name`, the keys every loss has "
        "(`metric`, `lr`), and the options of the chosen loss, flat (`loss: {name: arcface, "
        "margin: 28.6, scale: 64}`). An option left unset takes the loss's default; an option "
        "the chosen loss does not take is an error (`check_config`). Generated from the "
        "catalog, so a new loss's options appear here without an edit.",
        "__post_init__": _resolve_loss_defaults,
        "__field_help__": _loss_option_help(),
        "__omit_none__": True,
        "__module__": __name__,
    },
)


def loss_options(config: Any) -> dict[str, Any]:
    """The chosen loss's options from a `LossConfig`, as its constructor's keyword arguments
    (without `memory`, which wraps the loss, and with `metric` where the loss trains on it)."""
    entry = loss_entry(config.name)
    options = {o.name: getattr(config, o.name) for o in entry.options}
    if entry.uses_metric:
        options["metric"] = config.metric
    return options


LEGACY_LOSS_KEYS: dict[str, Any] = {"mining": "semihard", "soft": False, "margin": 0.2}
"""What run configs written before the loss catalog held for every loss (the triplet's keys
were shared): a saved contrastive or pair-classifier run still loads, these values dropped."""


@dataclass
class BatchConfig:
    """How examples are grouped into training batches (`siamese.data.sampling.offline_tuples`)."""

    kind: Literal["pk", "pairs", "triplets"] = "pk"
    """`pk`: P classes × K examples, mined online; `pairs`: balanced genuine/impostor pairs;
    `triplets`: random (anchor, positive, negative) triplets."""
    p: int = 16
    """Classes per P×K batch."""
    k: int = 4
    """Examples per class in a P×K batch."""
    size: int = 128
    """Pairs or triplets per batch."""
    per_epoch: int | None = None
    """Pairs or triplets drawn per epoch (None: as many as there are training examples)."""


@dataclass
class OptimizerConfig:
    name: Literal["adam", "adamw", "sgd", "rmsprop"] = "adamw"
    """The optimiser (torch.optim's)."""
    lr: float = 1e-3
    """The peak learning rate (the schedule scales it)."""
    weight_decay: float = 1e-4
    """Decoupled for AdamW, an L2 term for the others."""
    momentum: float = 0.9
    """SGD's and RMSprop's momentum."""
    nesterov: bool = False
    """SGD with Nesterov momentum."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's and AdamW's."""


@dataclass
class ScheduleConfig:
    """The learning-rate schedule, stepped every optimiser step."""

    name: Literal["constant", "cosine", "onecycle", "step"] = "cosine"
    """constant, cosine (to min_lr_fraction), onecycle (Smith and Topin) or step (× gamma)."""
    warmup_fraction: float = 0.05
    """Share of all steps spent warming up linearly from 0 (cosine, step, constant)."""
    min_lr_fraction: float = 0.0
    """Cosine decays to lr × this."""
    step_epochs: int = 10
    """`step`: multiply the learning rate by `gamma` every this many epochs."""
    gamma: float = 0.1
    """`step`: the factor applied every `step_epochs` epochs."""


@dataclass
class EarlyStopConfig:
    metric: Literal["precision_at_1", "roc_auc", "eer"] = "precision_at_1"
    """The validation metric that picks `best` and stops early: precision_at_1, roc_auc
    or eer."""
    patience: int = 0
    """Validations without improvement before stopping (0: never stop early)."""
    min_delta: float = 0.0
    """An improvement smaller than this does not count."""


@dataclass
class TrainConfig:
    epochs: int | None = 10
    """The budget in passes over the training batches."""
    steps: int | None = None
    """A budget in optimiser steps; when set it wins over `epochs`. 0 with a pretrained
    encoder: no training, the published weights are saved as the run's model (calibrated
    and evaluated like any other), the baseline a fine-tuning run is compared with."""
    grad_clip: float | None = None
    """Clip the gradients' global L2 norm to this (None: no clipping)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """`bf16`: autocast the forward pass to bfloat16 (CPU or GPU); `fp16`: float16 with a
    gradient scaler (GPU only). Distances and losses stay float32."""
    log_every: int = 20
    """Steps between telemetry rows in metrics.csv (and host synchronisations)."""
    validate_every: int = 1
    """Epochs between validations (0: only at the end)."""
    checkpoint_every: int = 0
    """Steps between checkpoints (0: at the end of every epoch only)."""
    keep_checkpoints: int = 2
    """Newest step checkpoints kept (at least the newest one) besides `best` and `last`."""
    early_stop: EarlyStopConfig = field(default_factory=EarlyStopConfig)
    threads: int | None = None
    """torch intra-op threads (None: torch's default)."""


@dataclass
class RunConfig:
    """Everything a training run depends on. Same seed + same config ⇒ same metrics on CPU.

    Example:
        >>> from siamese import RunConfig
        >>> config = RunConfig()  # every field has a default
        >>> config.seed, config.data.name, config.model.encoder, config.train.epochs
        (0, 'glyphs', 'convnet', 10)
    """

    seed: int = 0
    """Seeds the split, the initial weights, the batches, the augmentation and the mining."""
    device: str = "auto"
    """Where the model trains: auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda,
    cuda:N or mps. Under torchrun on GPUs each process takes the GPU of its LOCAL_RANK.
    `siamese train --device` sets it; a run resumes on any device."""
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)  # type: ignore[valid-type]
    batches: BatchConfig = field(default_factory=BatchConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_config(path: Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML run config (or the defaults when `path` is None) and apply overrides.

    Args:
        path: a YAML file whose top-level keys are `RunConfig`'s fields.
        overrides: `a.b=c` strings; `c` is read as YAML (`0.1`, `true`, `[16, 32]`, `null`).
    Raises:
        ConfigError: unreadable file, invalid YAML, unknown key, wrong type or value.

    Example:
        >>> from siamese import load_config
        >>> overrides = ["data.name=digits", "model.embedding_dim=16", "batches.p=8"]
        >>> config = load_config(None, overrides)
        >>> config.data.name, config.model.embedding_dim, config.batches.p, config.batches.k
        ('digits', 16, 8, 4)
        >>> config.model.encoder, config.loss.name
        ('convnet', 'triplet')
    """
    from siamese.config.loading import apply_overrides, from_dict
    from siamese.config.yaml_dialect import read_yaml

    raw = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "the defaults"
    raw = apply_overrides(raw, overrides, RunConfig)
    config = from_dict(RunConfig, raw, source)
    check_config(config, source)
    return config


BUILT_IN_ENCODERS: tuple[str, ...] = (
    "mlp",
    "seed_cnn",
    "convnet",
    "resnet",
    "lstm",
    "gru",
    "dlib_face_resnet",
)
"""The built-in encoders' names, as `siamese.models.ENCODERS` lists them (the config layer does
not import the models; a test keeps the two equal)."""

ENCODER_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)
"""Your own encoder's path: `package.module:factory` (as `siamese.models.builder` reads it)."""


def check_encoder(value: str, source: str) -> None:
    """`model.encoder` is a built-in encoder's name or a `package.module:factory` path.

    Only the form is checked here; the path is imported when the model is built.

    Raises:
        ConfigError: naming the key, the value, the built-in names and the path's form, with
            the nearest built-in name or the path it was probably meant to be.
    """
    if value in BUILT_IN_ENCODERS or ENCODER_PATH.fullmatch(value):
        return
    hint = ""
    near = difflib.get_close_matches(value, BUILT_IN_ENCODERS, n=1, cutoff=0.6)
    module, dot, attribute = value.strip().rpartition(".")
    if near:
        hint = f"; did you mean {near[0]!r}?"
    elif ":" not in value and dot and ENCODER_PATH.fullmatch(f"{module}:{attribute}"):
        hint = f"; did you mean {module + ':' + attribute!r} (a colon before the factory)?"
    raise ConfigError(
        f"{source}: model.encoder = {value!r} is neither a built-in encoder "
        f"({', '.join(BUILT_IN_ENCODERS)}) nor your own as 'package.module:factory' (a dotted "
        f"module name, a colon, the factory's name){hint}"
    )


def check_config(config: RunConfig, source: str) -> None:
    """Value checks the types cannot express.

    Raises:
        ConfigError: naming the key, the value and the valid range.
    """
    train, batches, augment = config.train, config.batches, config.augment
    rules: list[tuple[str, object, bool, str]] = [
        ("train.epochs", train.epochs, train.epochs is None or train.epochs >= 1, ">= 1"),
        ("train.steps", train.steps, train.steps is None or train.steps >= 0, ">= 0"),
        ("train.log_every", train.log_every, train.log_every >= 1, ">= 1"),
        ("train.validate_every", train.validate_every, train.validate_every >= 0, ">= 0"),
        ("train.checkpoint_every", train.checkpoint_every, train.checkpoint_every >= 0, ">= 0"),
        ("train.keep_checkpoints", train.keep_checkpoints, train.keep_checkpoints >= 0, ">= 0"),
        (
            "train.grad_clip",
            train.grad_clip,
            train.grad_clip is None or train.grad_clip > 0,
            "> 0 or null",
        ),
        ("optimizer.lr", config.optimizer.lr, config.optimizer.lr > 0, "> 0"),
        (
            "optimizer.weight_decay",
            config.optimizer.weight_decay,
            config.optimizer.weight_decay >= 0,
            ">= 0",
        ),
        (
            "model.embedding_dim",
            config.model.embedding_dim,
            config.model.embedding_dim >= 1,
            ">= 1",
        ),
        ("batches.p", config.batches.p, config.batches.p >= 2, ">= 2"),
        ("batches.k", config.batches.k, config.batches.k >= 2, ">= 2"),
        ("batches.size", config.batches.size, config.batches.size >= 1, ">= 1"),
        (
            "data.validation_fraction",
            config.data.validation_fraction,
            0 < config.data.validation_fraction < 1,
            "between 0 and 1",
        ),
        (
            "schedule.warmup_fraction",
            config.schedule.warmup_fraction,
            0 <= config.schedule.warmup_fraction < 1,
            "in [0, 1)",
        ),
        (
            "schedule.step_epochs",
            config.schedule.step_epochs,
            config.schedule.step_epochs >= 1,
            ">= 1",
        ),
        (
            "schedule.min_lr_fraction",
            config.schedule.min_lr_fraction,
            0 <= config.schedule.min_lr_fraction <= 1,
            "in [0, 1]",
        ),
        ("schedule.gamma", config.schedule.gamma, config.schedule.gamma > 0, "> 0"),
        (
            "optimizer.momentum",
            config.optimizer.momentum,
            0 <= config.optimizer.momentum < 1,
            "in [0, 1)",
        ),
        (
            "optimizer.betas",
            config.optimizer.betas,
            all(0 <= b < 1 for b in config.optimizer.betas),
            "two numbers in [0, 1)",
        ),
        (
            "batches.per_epoch",
            batches.per_epoch,
            batches.per_epoch is None or batches.per_epoch >= 1,
            ">= 1 or null",
        ),
        (
            "train.threads",
            train.threads,
            train.threads is None or train.threads >= 1,
            ">= 1 or null",
        ),
        (
            "train.early_stop.patience",
            train.early_stop.patience,
            train.early_stop.patience >= 0,
            ">= 0",
        ),
        ("augment.degrees", augment.degrees, augment.degrees >= 0, ">= 0"),
        ("augment.translate", augment.translate, 0 <= augment.translate < 1, "in [0, 1)"),
        ("augment.shear", augment.shear, augment.shear >= 0, ">= 0"),
        ("augment.crop_padding", augment.crop_padding, augment.crop_padding >= 0, ">= 0"),
        ("augment.hflip", augment.hflip, 0 <= augment.hflip <= 1, "a probability in [0, 1]"),
        (
            "augment.scale",
            list(augment.scale),
            0 < augment.scale[0] <= augment.scale[1],
            "[low, high] with 0 < low <= high",
        ),
    ]
    for key, value, ok, expected in rules:
        if not ok:
            raise ConfigError(f"{source}: {key} = {value!r} must be {expected}")
    check_encoder(config.model.encoder, source)
    from siamese.devices import check_device_name

    check_device_name(config.device, f"{source}: device")
    if train.epochs is None and train.steps is None:
        raise ConfigError(f"{source}: set a budget, train.epochs or train.steps")
    if train.steps == 0 and not config.model.options.get("pretrained", False):
        raise ConfigError(
            f"{source}: train.steps = 0 saves the starting weights untrained, which only makes "
            "sense for a pretrained encoder (model.encoder dlib_face_resnet, options "
            "{pretrained: true}): give a budget of at least 1 step"
        )
    if config.data.test_fraction:
        folds = round(1 / config.data.test_fraction) if 0 < config.data.test_fraction < 1 else 0
        if folds < 2:
            raise ConfigError(
                f"{source}: data.test_fraction = {config.data.test_fraction}: give a share of the "
                "classes between 0 and 0.5 (e.g. 0.25 for 4 folds), or 0 for no test part"
            )
        if not 0 <= config.data.test_fold < folds:
            raise ConfigError(
                f"{source}: data.test_fold = {config.data.test_fold}, but test_fraction "
                f"{config.data.test_fraction} makes {folds} folds: choose 0 to {folds - 1}"
            )
        if config.data.validation in ("split", "pairs"):
            raise ConfigError(
                f"{source}: data.test_fraction holds out classes; it goes with data.validation "
                f"classes, samples or none, not {config.data.validation!r}"
            )
        if config.data.options.get("rotated_classes"):
            raise ConfigError(
                f"{source}: data.test_fraction with rotated_classes would hold out turned "
                "copies of training classes; use one of them"
            )
    if config.data.validation == "split" and not config.data.validation_split:
        raise ConfigError(
            f"{source}: data.validation is 'split' but data.validation_split is not set; "
            "name the dataset's split to validate on (e.g. test)"
        )
    if config.data.validation == "pairs" and config.batches.kind != "pairs":
        raise ConfigError(
            f"{source}: data.validation 'pairs' holds out pairs of a fixed pair set, which "
            f"needs batches.kind 'pairs' (got {config.batches.kind!r})"
        )
    if config.data.validation == "pairs":
        held_out = round(config.data.validation_fraction * (config.data.pairs // 2))
        if config.data.pairs < 4 or held_out < 2:
            raise ConfigError(
                f"{source}: data.pairs = {config.data.pairs} with validation_fraction "
                f"{config.data.validation_fraction} holds out {held_out} genuine pair(s); "
                "verification needs at least 2 genuine and 2 impostor pairs: raise data.pairs"
            )
        if config.batches.per_epoch:
            raise ConfigError(
                f"{source}: batches.per_epoch = {config.batches.per_epoch} does not apply with "
                "data.validation 'pairs' (an epoch is one pass over the training pairs); "
                "remove it and set data.pairs instead"
            )
    check_loss(config, source)


def check_loss(config: RunConfig, source: str) -> None:
    """The loss's options against the catalog, and whether the batches can feed it.

    Raises:
        ConfigError: an option the loss does not take (naming the losses that do), a value out
            of range, or a batch kind the loss cannot train on; each with the fix.
    """
    loss = config.loss
    entry = loss_entry(loss.name)
    own = {o.name: o for o in options_of(entry)}
    for name in option_types():
        value = getattr(loss, name)
        if value is None or name in own:
            continue
        if entry.name in ("contrastive", "pair_classifier"):
            if LEGACY_LOSS_KEYS.get(name, object()) == value:
                setattr(loss, name, None)  # a saved run's config from before the catalog
                continue
        takers = [e.name for e in LOSSES if any(o.name == name for o in options_of(e))]
        takes = ", ".join(own) or "none"
        raise ConfigError(
            f"{source}: loss.{name} does not apply to loss {loss.name!r} (its options: {takes}); "
            f"remove it, or choose a loss that takes it: {', '.join(takers)}"
        )
    for option in own.values():
        problem = option.check(getattr(loss, option.name))
        if problem:
            raise ConfigError(
                f"{source}: loss.{option.name} = {getattr(loss, option.name)!r} must be "
                f"{problem} for loss {loss.name!r} ({option.help})"
            )
    if loss.lr is not None and not loss.lr > 0:
        raise ConfigError(f"{source}: loss.lr = {loss.lr!r} must be > 0, or null")
    if loss.lr is not None and not entry.owns_parameters:
        raise ConfigError(
            f"{source}: loss.lr sets the learning rate of a loss's own parameters, and loss "
            f"{loss.name!r} has none; remove it (optimizer.lr trains the model)"
        )
    kind = config.batches.kind
    if kind not in entry.batches:
        feeds = {
            "pk": "batches.kind pk (P classes × K examples, mined online)",
            "pairs": "batches.kind pairs",
            "triplets": "batches.kind triplets",
        }
        need = " or ".join(feeds[b] for b in entry.batches)
        others = [e.name for e in LOSSES if kind in e.batches]
        raise ConfigError(
            f"{source}: loss.name {loss.name!r} cannot train on batches.kind {kind!r}: it needs "
            f"{need}; or keep batches.kind {kind!r} with loss.name {' or '.join(others)}"
        )
    if loss.memory and kind != "pk":
        raise ConfigError(
            f"{source}: loss.memory = {loss.memory} keeps embeddings of earlier P×K batches; it "
            f"needs batches.kind pk, not {kind!r} (or set loss.memory 0)"
        )


RESUME_CHANGEABLE: tuple[str, ...] = (
    "device",
    "train.precision",
    "train.epochs",
    "train.steps",
    "train.log_every",
    "train.validate_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.early_stop.patience",
    "train.early_stop.min_delta",
    "train.threads",
    "optimizer.lr",
    "loss.lr",
)
"""The keys a resumed run may change (`siamese train --resume --set KEY=VALUE`): its device
and precision, its budget, its bookkeeping and its learning rate; everything else would make the checkpoint a
different run."""


def config_changes(before: RunConfig, after: RunConfig) -> list[str]:
    """The dotted keys whose values differ between two configs, sorted."""
    from siamese.config.yaml_dialect import to_dict

    a, b = _flatten(to_dict(before)), _flatten(to_dict(after))
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def check_resume_changes(before: RunConfig, after: RunConfig, source: str) -> list[str]:
    """The keys `after` changes from the run's saved config `before`.

    Raises:
        ConfigError: a changed key is not in `RESUME_CHANGEABLE`.
    """
    changed = config_changes(before, after)
    refused = [k for k in changed if k not in RESUME_CHANGEABLE]
    if refused:
        raise ConfigError(
            f"{source} changes {', '.join(refused)} of the run being resumed; a resumed run can "
            f"change only {', '.join(RESUME_CHANGEABLE)}. Start a new run (another --out) to "
            "change the rest."
        )
    return changed


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "options":
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
