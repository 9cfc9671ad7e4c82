"""Evaluating a trained run — what `siamese evaluate RUN` does: load its model, choose the data
(`data`), embed it once, measure each protocol (`protocols`). Files are written by `reports`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from siamese.config import load_config
from siamese.data.derived.resized import fitted_to
from siamese.data.labeled import LabeledData
from siamese.devices import resolve_device
from siamese.errors import ConfigError, DataError
from siamese.evaluation.embed import count_bar, embed
from siamese.models.files import load_model_and_head
from siamese.run_evaluation import protocols as measure
from siamese.run_evaluation.data import evaluation_data, is_pair_protocol, protocol_pairs
from siamese.run_evaluation.result import Evaluation

PROTOCOLS: tuple[str, ...] = ("verification", "retrieval", "fewshot", "novelty", "identification")

__all__ = ["PROTOCOLS", "Evaluation", "evaluate_run"]


def evaluate_run(
    run_dir: Path,
    protocols: tuple[str, ...] = ("verification", "retrieval", "fewshot"),
    data_name: str | None = None,
    split: str | None = None,
    ood: str | None = None,
    seed: int = 0,
    episodes: int = 1000,
    gallery: str = "self",
    fewshot_across: str | None = None,
    baseline: bool = False,
    out: Path | None = None,
    data_options: dict[str, Any] | None = None,
    progress: bool = False,
    device: str | None = None,
) -> Evaluation:
    """Embed the evaluation data with the run's model and measure each protocol.

    Args:
        run_dir: a finished run (model.safetensors + model.json + config.yaml).
        protocols: any of `PROTOCOLS`; "novelty" needs `ood`; "identification" is open-set
            identification (NIST FRVT's measures) at 1 and 5 enrolled examples, and at the
            model's calibrated thresholds when they come from other classes.
        data_name, split: evaluate on this dataset instead of the default.
        ood: a dataset name (NAME or NAME:SPLIT) of out-of-distribution examples with as
            many channels, for the novelty protocol (resized to the input size if needed).
            Evaluation data of another image size is resized to fit the model too.
        seed: seeds the pair sample, the episodes and the figures' picks.
        episodes: few-shot episodes per setting.
        gallery: retrieval against the evaluation data itself, leave-one-out ("self"), or
            against the run's training examples ("train": the 1-NN test accuracy of the
            tutorials, e.g. MNIST test queries against the 60,000 training images).
        fewshot_across: a per-example attribute of the data (`meta`, e.g. "writer": the font
            of glyphs, the drawer of Omniglot); each episode's support and queries then come
            from different values of it.
        data_options: source options for `data_name` (e.g. {"image_size": [56, 46],
            "channels": 1} for a photo folder); without them the examples are fitted to the
            model's input (channels converted, images resized) as its preprocessing would.
        progress: show a progress bar while embedding large sets.
        device: where the model embeds (`siamese.devices.resolve_device`; None: auto). The
            protocols then measure on the host, in float64 where they need it, beside the
            figures.
        out: the folder the figures are drawn into (`out/figures/`) and the reports belong
            in (default: RUN/evaluation). `evaluate_into` fills it as a whole or not at all.
        baseline: also measure verification and 1-shot episodes on the raw inputs (pixels
            scaled to [0, 1]), with the same pairs and episodes, to show what training added;
            the ROC figure draws both.
    Raises:
        ConfigError: unknown protocol, novelty without `ood`, unknown `fewshot_across`.
            DataError, CheckpointError.
    """
    from siamese.run_directory.data import load_training_data

    if gallery not in ("self", "train"):
        raise ConfigError(f"unknown gallery {gallery!r}: choose self or train")
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ConfigError(f"unknown protocol {unknown[0]!r}: choose from {', '.join(PROTOCOLS)}")
    if "novelty" in protocols and ood is None:
        raise ConfigError(
            "the novelty protocol needs out-of-distribution examples: --ood NAME[:SPLIT] "
            "(e.g. --ood omniglot:evaluation for a digits model; it is resized to the model's "
            "input size)"
        )
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(
            f"{run_dir} is not a run directory (no config.yaml): give the --out directory of "
            "a `siamese train` run"
        )
    config = load_config(run_dir / "config.yaml")
    where = resolve_device(device)
    model, head = load_model_and_head(run_dir)
    model = model.to(where)
    description_of_model = _model_description(run_dir)
    # The run's own examples: the data statement always compares with them.
    train, validation, _ = load_training_data(config)
    chosen = evaluation_data(config, data_name, split, data_options, (train, validation))
    data, description = chosen.data, chosen.description
    expected = tuple(description_of_model["input_shape"])
    try:
        data, note = fitted_to(data, expected, description)
    except ConfigError:
        raise DataError(
            f"{description} has examples of shape {tuple(data.x.shape[1:])}, but the model of "
            f"{run_dir} reads {expected}, and only 1- or 3-channel images can be converted: "
            "choose data of that shape, or set its source options with --data-option (e.g. "
            "--data-option image_size=H,W --data-option channels=C for a folder)"
        ) from None
    if note:
        description = f"{description}, {note}"
    groups = None
    if fewshot_across is not None:
        if fewshot_across not in data.meta:
            known = ", ".join(sorted(data.meta)) or "none"
            raise ConfigError(
                f"fewshot_across {fewshot_across!r}: {description} has no such per-example "
                f"attribute (it has: {known})"
            )
        groups = data.meta[fewshot_across]
    pairs = None
    if is_pair_protocol(config, data_name, split):
        # The pair tutorials' protocol: only the held-out pairs are unseen, not the examples,
        # so retrieval and few-shot episodes (which need unseen examples) are not measured.
        protocols = tuple(p for p in protocols if p in ("verification", "novelty"))
        if not protocols:
            raise ConfigError(
                f"{run_dir} holds out pairs, not examples (data.validation: pairs): only the "
                "verification protocol applies to them; for retrieval or few-shot name unseen "
                "examples with --data NAME [--split SPLIT]"
            )
        pairs = protocol_pairs(config, data.y)
    if chosen.source == "validation":
        _refuse_a_validation_that_chose(run_dir, description)
    z = embed(model, data.x, progress=progress).cpu()
    metric = config.loss.metric
    out = run_dir / "evaluation" if out is None else out
    result = Evaluation(run_dir, description, len(data), int(torch.unique(data.y).numel()), out)
    result.statement = data_statement(data, train, chosen.source)
    if pairs is not None:
        result.metrics["pair_protocol"] = pairs[1]
    result.labeled, result.embeddings = data, z
    figures_dir = out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)

    trained: list[tuple[torch.Tensor, torch.Tensor]] = []

    def training_embeddings() -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings, labels) of the run's training examples, embedded once for the
        retrieval gallery and the novelty detectors alike."""
        if not trained:
            trained.append((embed(model, train.x, progress=progress).cpu(), train.y))
        return trained[0]

    held_out = None if pairs is None else pairs[0]
    base = None
    stages = [*(["baseline"] if baseline else []), "figures", *protocols]
    with _Stages(progress, stages) as stage:
        if baseline:
            stage("baseline")
            base = measure.raw_input_baseline(data, protocols, seed, held_out)
            result.metrics["raw_inputs"] = base.metrics
        stage("figures")
        measure.embedding_figures(result, data, z, figures_dir, seed)
        if "verification" in protocols:
            stage("verification")
            threshold = None
            if chosen.source in ("other_split", "named", "test") and config.data.validation in (
                "classes",
                "samples",
            ):
                # A threshold chosen on the run's validation examples (never on the test pairs).
                if validation is not None and len(validation) >= 2:
                    threshold = measure.validation_threshold(model, validation, metric, seed, head)
            measure.verification(
                result, data, z, metric, figures_dir, seed, held_out, config, threshold, base, head
            )
        if "retrieval" in protocols:
            stage("retrieval")
            reference = None
            if gallery == "train":
                reference = training_embeddings()
                if not bool(torch.isin(data.y, reference[1]).any()):
                    raise DataError(
                        f"--gallery train: none of the classes of {description} are among the "
                        "run's training classes (a class-disjoint split), so no query has a match "
                        "in that gallery; use --gallery self"
                    )
            images = train.x if reference is not None and data.x.dim() == 4 else None
            measure.retrieval(result, data, z, metric, figures_dir, seed, reference, images)
        if "fewshot" in protocols:
            stage("fewshot")
            measure.fewshot(result, data, z, metric, figures_dir, seed, episodes, groups, base)
        if "identification" in protocols:
            stage("identification")
            if pairs is not None:
                raise ConfigError(
                    "open-set identification needs unseen people, not held-out pairs: name them "
                    "with --data NAME [--split SPLIT]"
                )
            name = data_name or config.data.name
            stored = description_of_model.get("thresholds")
            thresholds, note = _thresholds_from_other_classes(
                run_dir, stored, config, data, name, head
            )
            measure.identification(result, data, z, metric, seed, thresholds, note)
        if "novelty" in protocols and ood is not None:
            stage("novelty")
            reference = training_embeddings()
            # Labels are comparable only when both sides number the same class list.
            same_classes = train.classes == data.classes
            measure.novelty(result, config, model, z, data, ood, metric, reference, same_classes)
    return result


def _thresholds_from_other_classes(
    run_dir: Path,
    stored: dict[str, Any] | None,
    config: Any,
    data: LabeledData,
    data_name: str,
    head: Any,
) -> tuple[dict[float, float] | None, str]:
    """The model's calibrated thresholds (FAR → distance) when they were measured on classes
    none of which are in the evaluation data, and a note saying where they come from or why
    none apply."""
    import json

    if head is not None:
        return None, "a pair classifier: its thresholds lie on p(same), not on distances"
    if stored is None:
        return None, "the model carries no calibrated thresholds"
    split_file = run_dir / "split.json"
    record = json.loads(split_file.read_text(encoding="utf-8")) if split_file.is_file() else {}
    calibration = set(record.get("parts", {}).get("validation", {}).get("class_names", []))
    present = {data.classes[i] for i in torch.unique(data.y).tolist()}
    shared = calibration & present if record.get("dataset") == data_name else set()
    if config.data.validation != "classes" or shared:
        return None, (
            f"the model's thresholds were calibrated on {stored['calibrated_on']}, "
            f"{len(shared)} of which are in this evaluation data: not applied"
        )
    rates = {float(far): float(t) for far, t in stored["at_far"].items()}
    return rates, f"calibrated on {stored['calibrated_on']}"


def data_statement(data: LabeledData, train: LabeledData, source: str) -> dict[str, object]:
    """How the evaluation data relates to the run's training data: classes seen (by name),
    examples trained on (by content), open- or closed-set, and warnings."""
    from siamese.data.fingerprints import shared_examples

    present = torch.unique(data.y).tolist()
    trained_classes = {train.classes[c] for c in torch.unique(train.y).tolist()}
    names = [data.classes[c] if c < len(data.classes) else str(c) for c in present]
    seen = sum(name in trained_classes for name in names)
    trained_on = int(shared_examples(data.x, train.x).sum())
    setting = (
        "open-set: no class was seen in training"
        if seen == 0
        else "closed-set: every class was seen in training"
        if seen == len(names)
        else "partly seen classes"
    )
    warnings = []
    if trained_on and source != "pairs":
        warnings.append(
            f"{trained_on:,} of these {len(data):,} examples were trained on: the figures are "
            "optimistic for them"
        )
    if source == "pairs":
        warnings.append(
            "the pair tutorials' closed-set protocol: held-out pairs of examples that were "
            "trained on, in other pairs"
        )
    return {
        "examples": len(data),
        "classes": len(names),
        "classes_seen": seen,
        "setting": setting,
        "examples_trained_on": trained_on,
        "warnings": warnings,
    }


def _refuse_a_validation_that_chose(run_dir: Path, description: str) -> None:
    """Raise when the run validated on its validation data more than once: that data then
    chose the checkpoint (and early stopping), so numbers on it would be optimistic."""
    from siamese.run_directory.metrics import read_metrics

    path = run_dir / "metrics.csv"
    rows = read_metrics(path) if path.is_file() else []
    validations = sum(1 for row in rows if row.get("kind") == "validation")
    if validations > 1:
        raise ConfigError(
            f"{run_dir} validated {validations} times on {description}, which chose its "
            "checkpoint: evaluating there would flatter it, and the run has no other held-out "
            "data. Name unseen data with --data NAME [--split SPLIT], or train with "
            "train.validate_every: 0 (one validation, at the end) or a dataset with a test split"
        )


def _model_description(run_dir: Path) -> dict[str, Any]:
    """The run's model.json (its weights already checked by loading the model)."""
    import json

    return json.loads((run_dir / "model.json").read_text(encoding="utf-8"))


class _Stages:
    """A progress bar over the evaluation's stages (figures, then each protocol) on stderr,
    when `show`: calling it with a stage's name marks the one before as done."""

    def __init__(self, show: bool, names: list[str]) -> None:
        self.show, self.names = show, names
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> _Stages:
        if self.show:
            self.bar = count_bar(True)
            self.bar.__enter__()
            self.task = self.bar.add_task("evaluating", total=len(self.names))
        return self

    def __call__(self, name: str) -> None:
        if self.bar is not None:
            done = self.names.index(name) if name in self.names else 0
            self.bar.update(self.task, completed=done, description=f"evaluating: {name}")

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=len(self.names))
            self.bar.__exit__(*exc)
