"""Evaluating a trained run: which data, which protocols, which figures — what `siamese
evaluate RUN` does. Files are written by `siamese.evaluation.report_files`.

By default the run is evaluated on data it never trained on: the dataset's other split when it
has one (mnist/fashion-mnist `test`, omniglot `evaluation`, glyphs `test`), else the run's
validation part (held-out classes for a class-disjoint split), recomputed from its seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from siamese.config import RunConfig, load_config
from siamese.data.labeled import LabeledData
from siamese.data.resizing import fitted_to
from siamese.distances import paired_distances, pairwise_distances
from siamese.errors import ConfigError, DataError
from siamese.evaluation.embed import embed

PROTOCOLS: tuple[str, ...] = ("verification", "retrieval", "fewshot", "novelty")


@dataclass
class Evaluation:
    """What an evaluation measured and drew.

    `metrics` maps a protocol to its numbers; `figures` maps a figure name to its PNG path;
    `headline` holds the few numbers the report's first table shows.
    """

    run_dir: Path
    data: str
    examples: int
    classes: int
    metrics: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    headline: dict[str, float] = field(default_factory=dict)
    labeled: LabeledData | None = None
    """The evaluation examples themselves (for callers that draw more figures)."""
    embeddings: torch.Tensor | None = None
    """(N, D) their embeddings by the run's model."""


def evaluation_data(
    config: RunConfig, data_name: str | None = None, split: str | None = None
) -> tuple[LabeledData, str]:
    """The examples to evaluate on, and a description for the report.

    Raises:
        ConfigError: `split` given without `data_name` for a dataset without splits.
    """
    from siamese.data.catalog import DATASETS
    from siamese.data.sources import TRAINING_ONLY_OPTIONS, load_dataset
    from siamese.training_setup import load_training_data

    # The run's source options less those that only shape training data (e.g. Omniglot's
    # rotated_classes: the evaluation alphabets are evaluated as they are).
    run_options = {k: v for k, v in config.data.options.items() if k not in TRAINING_ONLY_OPTIONS}

    data_dir = Path(config.data.data_dir) if config.data.data_dir else None
    if _pair_protocol(config, data_name, split):
        data, _, _ = load_training_data(config)
        share = f"{config.data.validation_fraction:.0%}"
        return (
            data,
            f"{config.data.name} (the run's held-out {share} of {config.data.pairs:,} pairs)",
        )
    if data_name is not None:
        # The run's own dataset keeps the run's source options (e.g. its image_size).
        options = run_options if data_name == config.data.name else {}
        data = load_dataset(data_name, split, data_dir, **options)
        return data, f"{data_name} ({split or 'default split'})"
    name = config.data.name
    if split is None and config.data.validation == "split":
        split = config.data.validation_split
    info = DATASETS.get(name)
    if split is None and info is not None and len(info.splits) > 1:
        trained = config.data.split or info.default_split
        others = [s for s in info.splits if s not in (trained, "all")]
        split = others[0] if others else None
    if split is not None:
        return load_dataset(name, split, data_dir, **run_options), f"{name} ({split})"
    _, validation, _ = load_training_data(config)
    if validation is None:
        raise ConfigError(
            f"the run trained on all of {name} and validated on nothing: name data to evaluate "
            "on with --data NAME [--split SPLIT]"
        )
    return validation, f"{name} (the run's held-out validation part)"


def evaluate_run(
    run_dir: Path,
    protocols: tuple[str, ...] = ("verification", "retrieval", "fewshot"),
    data_name: str | None = None,
    split: str | None = None,
    ood: str | None = None,
    seed: int = 0,
    episodes: int = 1000,
    gallery: str = "self",
) -> Evaluation:
    """Embed the evaluation data with the run's model and measure each protocol.

    Args:
        run_dir: a finished run (model.safetensors + model.json + config.yaml).
        protocols: any of `PROTOCOLS`; "novelty" needs `ood`.
        data_name, split: evaluate on this dataset instead of the default.
        ood: a dataset name (NAME or NAME:SPLIT) of out-of-distribution examples with as
            many channels, for the novelty protocol (resized to the input size if needed).
            Evaluation data of another image size is resized to fit the model too.
        seed: seeds the pair sample, the episodes and the figures' picks.
        episodes: few-shot episodes per setting.
        gallery: retrieval against the evaluation data itself, leave-one-out ("self"), or
            against the run's training examples ("train": the 1-NN test accuracy of the
            tutorials, e.g. MNIST test queries against the 60,000 training images).
    Raises:
        ConfigError: unknown protocol, novelty without `ood`. DataError, CheckpointError.
    """
    from siamese.run_directory import load_model

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
    model = load_model(run_dir)
    data, description = evaluation_data(config, data_name, split)
    expected = tuple(_input_shape(run_dir))
    try:
        data, note = fitted_to(data, expected, description)
    except ConfigError:
        raise DataError(
            f"{description} has examples of shape {tuple(data.x.shape[1:])}, but the model of "
            f"{run_dir} reads {expected}: choose data of that shape (folder: sources take "
            "image_size and channels options)"
        ) from None
    if note:
        description = f"{description}, {note}"
    pairs = None
    if _pair_protocol(config, data_name, split):
        # The pair tutorials' protocol: only the held-out pairs are unseen, not the examples,
        # so retrieval and few-shot episodes (which need unseen examples) are not measured.
        protocols = tuple(p for p in protocols if p in ("verification", "novelty"))
        if not protocols:
            raise ConfigError(
                f"{run_dir} holds out pairs, not examples (data.validation: pairs): only the "
                "verification protocol applies to them; for retrieval or few-shot name unseen "
                "examples with --data NAME [--split SPLIT]"
            )
        pairs = _protocol_pairs(config, data.y)
    z = embed(model, data.x)
    metric = config.loss.metric
    result = Evaluation(run_dir, description, len(data), int(torch.unique(data.y).numel()))
    if pairs is not None:
        result.metrics["pair_protocol"] = pairs[1]
    result.labeled, result.embeddings = data, z
    figures_dir = run_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    _embedding_figures(result, data, z, figures_dir, seed)
    if "verification" in protocols:
        held_out = None if pairs is None else pairs[0]
        _verification(result, data, z, metric, figures_dir, seed, held_out, config)
    trained: list[tuple[torch.Tensor, torch.Tensor]] = []
    trained_classes: list[list[str]] = []

    def training_embeddings() -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings, labels) of the run's training examples, loaded and embedded once
        for the retrieval gallery and the novelty detectors alike."""
        if not trained:
            from siamese.training_setup import load_training_data

            train, _, _ = load_training_data(config)
            trained.append((embed(model, train.x), train.y))
            trained_classes.append(train.classes)
        return trained[0]

    if "retrieval" in protocols:
        reference = None
        if gallery == "train":
            reference = training_embeddings()
            if not bool(torch.isin(data.y, reference[1]).any()):
                raise DataError(
                    f"--gallery train: none of the classes of {description} are among the "
                    "run's training classes (a class-disjoint split), so no query has a match "
                    "in that gallery; use --gallery self"
                )
        _retrieval(result, data, z, metric, figures_dir, seed, reference)
    if "fewshot" in protocols:
        _fewshot(result, data, z, metric, figures_dir, seed, episodes)
    if "novelty" in protocols and ood is not None:
        reference = training_embeddings()
        # Labels are comparable only when both sides number the same class list.
        same_classes = trained_classes[0] == data.classes
        _novelty(result, config, model, z, data, ood, metric, reference, same_classes)
    return result


def _input_shape(run_dir: Path) -> list[int]:
    import json

    return json.loads((run_dir / "model.json").read_text(encoding="utf-8"))["input_shape"]


def _embedding_figures(
    result: Evaluation, data: LabeledData, z: torch.Tensor, folder: Path, seed: int
) -> None:
    from siamese.plots import plot_embedding_2d, plot_training_curves
    from siamese.telemetry import read_metrics

    g = torch.Generator().manual_seed(seed)
    shown_classes = torch.unique(data.y)[:20]
    mask = torch.isin(data.y, shown_classes)
    index = mask.nonzero().squeeze(1)
    index = index[torch.randperm(index.numel(), generator=g)[:2000]]
    images = data.x[index] if data.x.dim() == 4 else None
    result.figures["embedding"] = plot_embedding_2d(
        z[index],
        data.y[index],
        data.classes,
        folder / "embedding.png",
        f"Embedding of {result.data} (PCA, {len(shown_classes)} classes)",
        images=images,
    )
    metrics_csv = result.run_dir / "metrics.csv"
    if metrics_csv.exists():
        rows = read_metrics(metrics_csv)
        if rows:
            result.figures["training"] = plot_training_curves(rows, folder / "training.png")


def _pair_protocol(config: RunConfig, data_name: str | None, split: str | None) -> bool:
    """Whether the evaluation is the run's own held-out pairs (`data.validation: pairs` and
    no other data named)."""
    return data_name is None and split is None and config.data.validation == "pairs"


def _protocol_pairs(
    config: RunConfig, labels: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """The run's held-out pairs, and how many of them the training pairs already held."""
    from siamese.training_setup import protocol_pairs

    train, test = protocol_pairs(config, labels)
    n = labels.numel()

    def keys(i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:  # unordered pair → one int
        return torch.minimum(i, j) * n + torch.maximum(i, j)

    seen = torch.isin(keys(test[0], test[1]), keys(train[0], train[1]))
    in_training = torch.zeros(n, dtype=torch.bool)
    in_training[train[0]] = in_training[train[1]] = True
    info = {
        "pairs": int(train[0].numel() + test[0].numel()),
        "training_pairs": int(train[0].numel()),
        "held_out_pairs": int(test[0].numel()),
        "held_out_pairs_also_training_pairs": float(seen.double().mean()),
        "held_out_pairs_with_both_examples_trained_on": float(
            (in_training[test[0]] & in_training[test[1]]).double().mean()
        ),
    }
    return test, info


def _verification(
    result: Evaluation,
    data: LabeledData,
    z: torch.Tensor,
    metric: str,
    folder: Path,
    seed: int,
    pairs: tuple[torch.Tensor, ...] | None = None,
    config: RunConfig | None = None,
) -> None:
    from siamese.evaluation.verification import labelled_pairs, roc_curve, verification_metrics
    from siamese.plots import plot_distance_histograms, plot_roc

    if pairs is None:
        i, j, same = labelled_pairs(data.y, max_pairs=200_000, seed=seed)
    else:
        i, j, same = pairs
    d = paired_distances(z[i], z[j], metric)
    report = verification_metrics(d, same, seed=seed)
    values = report.as_dict()
    result.metrics["verification"] = values
    result.headline.update(
        {"ROC AUC": report.auc, "EER": report.eer, "10-fold accuracy": report.ten_fold_mean}
    )
    if config is not None and config.loss.name == "contrastive":
        # The contrastive tutorials' fixed rule: genuine when the distance is below half the
        # margin (0.5 for their margin of 1), with no threshold fitted to the test pairs.
        rule = config.loss.margin / 2
        accuracy = float(((d < rule).long() == same.long()).double().mean())
        values["half_margin_threshold"] = rule
        values["accuracy_at_half_margin"] = accuracy
        result.headline["accuracy at d < margin/2"] = accuracy
    curve = roc_curve(d, same)
    result.figures["roc"] = plot_roc(
        {"model": (curve, report.auc, report.eer)}, folder / "roc.png", f"ROC on {result.data}"
    )
    result.figures["distances"] = plot_distance_histograms(
        d, same, folder / "distances.png", threshold=report.best_threshold
    )


def _retrieval(
    result: Evaluation,
    data: LabeledData,
    z: torch.Tensor,
    metric: str,
    folder: Path,
    seed: int,
    reference: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> None:
    from siamese.evaluation.retrieval import answerable_queries, retrieval_metrics
    from siamese.plots import plot_retrieval_grid

    if reference is None:
        report = retrieval_metrics(z, data.y, metric=metric)
    else:
        report = retrieval_metrics(z, data.y, reference[0], reference[1], metric=metric)
    values: dict[str, Any] = asdict(report)
    values["recall_at_k"] = {str(k): v for k, v in report.recall_at_k.items()}
    values["gallery"] = "leave-one-out" if reference is None else "training examples"
    result.metrics["retrieval"] = values
    if reference is None:
        result.headline.update({"precision@1": report.precision_at_1, "MAP@R": report.map_at_r})
    else:
        result.headline.update(
            {
                "1-NN accuracy (gallery: training set)": report.precision_at_1,
                "MAP@R (gallery: training set)": report.map_at_r,
            }
        )
    if data.x.dim() != 4:
        return
    g = torch.Generator().manual_seed(seed)
    candidates = answerable_queries(data.y).nonzero().squeeze(1)
    queries = candidates[torch.randperm(candidates.numel(), generator=g)[:6]]
    d = pairwise_distances(z[queries], z, metric)
    d[torch.arange(queries.numel()), queries] = float("inf")  # not itself
    k = min(5, z.shape[0] - 1)
    distances, neighbours = d.topk(k, dim=1, largest=False)
    result.figures["retrieval"] = plot_retrieval_grid(
        data.x,
        data.y,
        queries,
        neighbours,
        folder / "retrieval.png",
        distances=distances,
        class_names=data.classes,
    )


def _fewshot(
    result: Evaluation,
    data: LabeledData,
    z: torch.Tensor,
    metric: str,
    folder: Path,
    seed: int,
    episodes: int,
) -> None:
    from siamese.evaluation.fewshot import episode_predictions, episodic_accuracy, sample_episodes
    from siamese.plots import plot_oneshot_episodes

    n_classes = int(torch.unique(data.y).numel())
    values: dict[str, Any] = {}
    # 5- and 20-way (Omniglot's settings), and every class at once when there are fewer
    # than 20 (e.g. 10-way among ORL's 10 held-out people).
    ways = [5, 20] if n_classes >= 20 else sorted({5, n_classes} - {0, 1})
    for n_way in ways:
        for k_shot in (1, 5):
            if n_way > n_classes:
                continue
            try:
                mean, ci95 = episodic_accuracy(
                    z, data.y, n_way, k_shot, episodes, seed=seed, metric=metric
                )
            except DataError as err:  # too few examples per class for this setting
                values[f"{n_way}-way {k_shot}-shot"] = {"skipped": str(err)}
                continue
            values[f"{n_way}-way {k_shot}-shot"] = {"accuracy": mean, "ci95": ci95}
            if k_shot > 1:  # with one shot the two rules coincide
                mean, ci95 = episodic_accuracy(
                    z, data.y, n_way, k_shot, episodes, seed=seed, rule="nearest", metric=metric
                )
                values[f"{n_way}-way {k_shot}-shot, nearest shot"] = {
                    "accuracy": mean,
                    "ci95": ci95,
                }
            if k_shot == 1:
                result.headline[f"{n_way}-way 1-shot"] = mean
    result.metrics["fewshot"] = {"episodes": episodes, "rule": "nearest prototype", **values}
    if data.x.dim() == 4 and n_classes >= 5:
        shown = sample_episodes(data.y, 5, 1, 6, seed=seed + 7)
        predicted = episode_predictions(z, shown, metric=metric)
        result.figures["oneshot"] = plot_oneshot_episodes(
            data.x,
            shown.support[..., 0],
            shown.query[:, 0],
            predicted[:, 0],
            folder / "oneshot.png",
            "5-way 1-shot episodes (query of way 0; its class is the first support)",
        )


def _novelty(
    result: Evaluation,
    config: RunConfig,
    model: torch.nn.Module,
    z_in: torch.Tensor,
    data_in: LabeledData,
    ood: str,
    metric: str,
    training: tuple[torch.Tensor, torch.Tensor],
    same_classes: bool = True,
) -> None:
    from siamese.data.sources import load_dataset
    from siamese.evaluation.novelty import (
        GiniDetector,
        nearest_gallery_distance,
        novelty_metrics,
    )

    name, _, split = ood.partition(":")
    data_dir = Path(config.data.data_dir) if config.data.data_dir else None
    out = load_dataset(name, split or None, data_dir)
    try:
        out, note = fitted_to(out, data_in.x.shape[1:], f"--ood {ood}")
    except ConfigError:
        raise DataError(
            f"--ood {ood}: examples of shape {tuple(out.x.shape[1:])}, but the evaluation data "
            f"has {tuple(data_in.x.shape[1:])}; give out-of-distribution data with as many "
            "channels (images of another size are resized to fit)"
        ) from None
    z_out = embed(model, out.x)
    z_train, y_train = training
    detector = GiniDetector.fit(z_train, y_train)
    gini = novelty_metrics(detector.scores(z_in), detector.scores(z_out))
    gallery = (
        nearest_gallery_distance(z_in, z_train, metric),
        nearest_gallery_distance(z_out, z_train, metric),
    )
    distance = novelty_metrics(*gallery)
    # The tutorial's softmax classifier on the embeddings, whose output the Gini detector
    # reads: its accuracy on the evaluation data (when those classes were trained on, under
    # the same class list).
    known = torch.isin(data_in.y, y_train)
    probe_accuracy = None
    if same_classes and bool(known.all()):
        predicted = detector.probe.predict(z_in)
        probe_accuracy = float((predicted == data_in.y).double().mean())
        result.headline["probe accuracy"] = probe_accuracy
    result.metrics["novelty"] = {
        "ood": ood,
        "probe_accuracy": probe_accuracy,
        "ood_examples": len(out),
        "ood_resized": note,
        "gini": gini.as_dict(),
        "distance": distance.as_dict(),
    }
    result.headline.update(
        {"novelty AUROC (Gini)": gini.auroc, "novelty AUROC (distance)": distance.auroc}
    )
