"""Each evaluation protocol of a run — verification, retrieval, few-shot, novelty, open-set
identification — measured
with the metric functions of `siamese.evaluation` and drawn with `siamese.plots`; each adds its
numbers, headline and figures to an `Evaluation`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from siamese.config import RunConfig
from siamese.data.derived.resized import fitted_to
from siamese.data.labeled import LabeledData, in_memory
from siamese.distances import pairwise_distances
from siamese.errors import ConfigError, DataError
from siamese.evaluation.embed import embed
from siamese.evaluation.verification import PairHead
from siamese.run_evaluation.result import Evaluation


def embedding_figures(
    result: Evaluation, data: LabeledData, z: torch.Tensor, folder: Path, seed: int
) -> None:
    from siamese.plots import plot_embedding_2d, plot_training_curves
    from siamese.run_directory.metrics import read_metrics

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


def validation_threshold(
    model: torch.nn.Module,
    validation: LabeledData,
    metric: str,
    seed: int,
    head: PairHead | None = None,
) -> float:
    """The threshold (on distance, or on 1 − p(same) with a pair head) with the best accuracy
    on pairs of the run's validation examples (`verification.best_threshold`), for deciding
    test pairs without looking at them."""
    from siamese.evaluation.verification import best_threshold

    z = embed(model, validation.x).cpu()
    i, j, same = _pairs(validation, seed + 1)
    return best_threshold(_pair_distances(z, i, j, metric, head), same)[0]


@dataclass
class Baseline:
    """The same protocols measured on the raw inputs (no model), for comparison: `features`
    are the inputs flattened and scaled to [0, 1]; few-shot fills `metrics["fewshot"]` on the
    model's own episodes (1-shot settings only: what the comparison is about)."""

    features: torch.Tensor
    metrics: dict[str, Any] = field(default_factory=dict)
    roc: tuple[Any, float, float] | None = None
    """(RocCurve, AUC, EER) of the raw inputs' verification."""


def raw_input_baseline(
    data: LabeledData,
    protocols: tuple[str, ...],
    seed: int,
    held_out_pairs: tuple[torch.Tensor, ...] | None = None,
) -> Baseline:
    """Verification on the inputs themselves (pixels scaled to [0, 1], flattened; Euclidean
    distance), with the same pairs as the model's; few-shot is added by `fewshot`, on the
    model's episodes."""
    from siamese.evaluation.verification import roc_curve, verification_metrics

    x = in_memory(data.x, "the raw-input baseline (--baseline)").flatten(1).float()
    out = Baseline(features=x / 255.0 if data.x.dtype == torch.uint8 else x)
    if "verification" in protocols:
        i, j, same = held_out_pairs if held_out_pairs is not None else _pairs(data, seed)
        d = _pair_distances(out.features, i, j)
        report = verification_metrics(d, same, seed=seed)
        out.metrics["verification"] = report.as_dict()
        out.roc = (roc_curve(d, same), report.auc, report.eer)
    return out


def _pair_distances(
    z: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    metric: str = "euclidean",
    head: PairHead | None = None,
) -> torch.Tensor:
    """(P,) dissimilarities of the pairs (i, j) of (N, D) embeddings (`pair_dissimilarity`:
    distances, or 1 − p(same) with a pair head), gathered in chunks so that wide inputs (raw
    pixels) never hold P × D values at once."""
    from siamese.evaluation.verification import pair_dissimilarity

    chunk = max(1, (1 << 24) // max(1, z.shape[1]))
    parts = [
        pair_dissimilarity(z[i[s : s + chunk]], z[j[s : s + chunk]], metric, head)
        for s in range(0, i.numel(), chunk)
    ]
    return torch.cat(parts) if parts else torch.empty(0)


def _pairs(data: LabeledData, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from siamese.evaluation.verification import labelled_pairs

    return labelled_pairs(data.y, max_pairs=200_000, seed=seed)


def verification(
    result: Evaluation,
    data: LabeledData,
    z: torch.Tensor,
    metric: str,
    folder: Path,
    seed: int,
    pairs: tuple[torch.Tensor, ...] | None = None,
    config: RunConfig | None = None,
    threshold: float | None = None,
    baseline: Baseline | None = None,
    head: PairHead | None = None,
) -> None:
    """ROC AUC, EER, TAR@FAR, 10-fold accuracy; the accuracy at `threshold` (chosen on
    validation data) when given; the ROC (beside the baseline's) and distance figures. With a
    pair head (a run that trained the pair classifier) pairs are scored by it."""
    from siamese.evaluation.verification import (
        accuracy_at_threshold,
        roc_curve,
        verification_metrics,
    )
    from siamese.plots import plot_distance_histograms, plot_roc

    i, j, same = _pairs(data, seed) if pairs is None else pairs
    d = _pair_distances(z, i, j, metric, head)
    result.pairs = (i, j, same, d)
    report = verification_metrics(d, same, seed=seed)
    values = report.as_dict()
    values["score"] = (
        "1 - p(same) from the pair classifier's head" if head is not None else f"{metric} distance"
    )
    result.metrics["verification"] = values
    result.headline.update(
        {"ROC AUC": report.auc, "EER": report.eer, "10-fold accuracy": report.ten_fold_mean}
    )
    if threshold is not None:
        accuracy = accuracy_at_threshold(d, same, threshold)
        values["validation_threshold"] = threshold
        values["accuracy_at_validation_threshold"] = accuracy
        result.headline["accuracy at the validation threshold"] = accuracy
    if config is not None and config.loss.name == "contrastive" and head is None:
        # The contrastive tutorials' fixed rule: genuine when the distance is below half the
        # margin (0.5 for their margin of 1), with no threshold fitted to the test pairs.
        rule = config.loss.margin / 2
        accuracy = float(((d < rule).long() == same.long()).double().mean())
        values["half_margin_threshold"] = rule
        values["accuracy_at_half_margin"] = accuracy
        result.headline["accuracy at d < margin/2"] = accuracy
    curves = {"model": (roc_curve(d, same), report.auc, report.eer)}
    if baseline is not None and baseline.roc is not None:
        curves = {"Siamese embedding": curves["model"], "raw inputs": baseline.roc}
    result.figures["roc"] = plot_roc(curves, folder / "roc.png", f"ROC on {result.data}")
    result.figures["distances"] = plot_distance_histograms(
        d,
        same,
        folder / "distances.png",
        threshold=report.best_threshold if threshold is None else threshold,
    )


def retrieval(
    result: Evaluation,
    data: LabeledData,
    z: torch.Tensor,
    metric: str,
    folder: Path,
    seed: int,
    reference: tuple[torch.Tensor, torch.Tensor] | None = None,
    reference_images: torch.Tensor | None = None,
) -> None:
    """Retrieval metrics leave-one-out, or against a gallery (`reference`: (M, D) embeddings
    and (M,) labels of the run's training examples, `reference_images` their inputs); the
    figure shows six queries and their nearest neighbours in that same gallery."""
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
    gallery_labels = None if reference is None else reference[1]
    candidates = answerable_queries(data.y, gallery_labels).nonzero().squeeze(1)
    queries = candidates[torch.randperm(candidates.numel(), generator=g)[:6]]
    if reference is None or reference_images is None:
        d = pairwise_distances(z[queries], z, metric)
        d[torch.arange(queries.numel()), queries] = float("inf")  # not itself
        images, labels = data.x, data.y
        title = "Retrieval: each query and its nearest neighbours (leave-one-out)"
        shown_queries = queries
    else:
        d = pairwise_distances(z[queries], reference[0], metric)
        title = "Retrieval in the training set: each query and its nearest training examples"
        shown_queries = torch.arange(queries.numel())
    k = min(5, d.shape[1] - (1 if reference is None else 0))
    distances, neighbours = d.topk(k, dim=1, largest=False)
    if reference is not None and reference_images is not None:
        # Queries first, then their neighbours: one image tensor for the grid to index, with
        # only the images shown (a streamed training set is read for those alone).
        shown = neighbours.flatten()
        images = torch.cat([data.x[queries], reference_images[shown]])
        labels = torch.cat([data.y[queries], reference[1][shown]])
        neighbours = torch.arange(shown.numel()).view_as(neighbours) + queries.numel()
    result.figures["retrieval"] = plot_retrieval_grid(
        images,
        labels,
        shown_queries,
        neighbours,
        folder / "retrieval.png",
        title,
        distances=distances,
        class_names=data.classes,
    )


def _fewshot_values(
    z: torch.Tensor,
    labels: torch.Tensor,
    metric: str,
    seed: int,
    episodes: int,
    groups: torch.Tensor | None,
    baseline: Baseline | None = None,
) -> dict[str, Any]:
    """Accuracy and 95 % interval of every N-way K-shot setting the data allows; with a
    baseline, its 1-shot accuracies on the same episodes go into `baseline.metrics`."""
    from siamese.evaluation.fewshot import accuracy_over_episodes, sample_episodes

    n_classes = int(torch.unique(labels).numel())
    values: dict[str, Any] = {}
    base_values: dict[str, Any] = {}
    # 5- and 20-way (Omniglot's settings), and every class at once when there are fewer
    # than 20 (e.g. 10-way among ORL's 10 held-out people).
    ways = [5, 20] if n_classes >= 20 else sorted({5, n_classes} - {0, 1})
    for n_way in ways:
        for k_shot in (1, 5):
            if n_way > n_classes:
                continue
            name = f"{n_way}-way {k_shot}-shot"
            try:
                drawn = sample_episodes(labels, n_way, k_shot, episodes, seed, groups)
            except DataError as err:  # too few examples per class for this setting
                values[name] = {"skipped": str(err)}
                continue
            mean, ci95 = accuracy_over_episodes(z, drawn, "prototype", metric)
            values[name] = {"accuracy": mean, "ci95": ci95}
            if k_shot > 1:  # with one shot the two rules coincide
                mean, ci95 = accuracy_over_episodes(z, drawn, "nearest", metric)
                values[f"{name}, nearest shot"] = {"accuracy": mean, "ci95": ci95}
            elif baseline is not None:
                mean, ci95 = accuracy_over_episodes(baseline.features, drawn)
                base_values[name] = {"accuracy": mean, "ci95": ci95}
    if baseline is not None:
        baseline.metrics["fewshot"] = base_values
    return values


def fewshot(
    result: Evaluation,
    data: LabeledData,
    z: torch.Tensor,
    metric: str,
    folder: Path,
    seed: int,
    episodes: int,
    groups: torch.Tensor | None = None,
    baseline: Baseline | None = None,
) -> None:
    """N-way K-shot episodes (support and queries from different `groups` when given) and a
    figure of six 5-way 1-shot episodes."""
    from siamese.evaluation.fewshot import episode_predictions, sample_episodes
    from siamese.plots import plot_oneshot_episodes

    values = _fewshot_values(z, data.y, metric, seed, episodes, groups, baseline)
    for name, value in values.items():
        if name.endswith("-way 1-shot") and "accuracy" in value:
            result.headline[name] = value["accuracy"]
    if baseline is not None and "fewshot" in baseline.metrics:
        for name, value in baseline.metrics["fewshot"].items():
            if name.endswith("-way 1-shot") and "accuracy" in value:
                result.headline[f"{name} (raw inputs)"] = value["accuracy"]
    across = {} if groups is None else {"support and queries": "from different groups"}
    result.metrics["fewshot"] = {
        "episodes": episodes,
        "rule": "nearest prototype",
        **across,
        **values,
    }
    n_classes = int(torch.unique(data.y).numel())
    if data.x.dim() == 4 and n_classes >= 5:
        shown = sample_episodes(data.y, 5, 1, 6, seed=seed + 7, groups=groups)
        predicted = episode_predictions(z, shown, metric=metric)
        result.figures["oneshot"] = plot_oneshot_episodes(
            data.x,
            shown.support[..., 0],
            shown.query[:, 0],
            predicted[:, 0],
            folder / "oneshot.png",
            "5-way 1-shot episodes (query of way 0; its class is the first support)",
        )


def novelty(
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
    z_out = embed(model, out.x).cpu()
    z_train, y_train = training
    detector = GiniDetector.fit(z_train, y_train)
    # Half of the in-distribution examples set each threshold, the other half report the
    # false-alarm rate at it (and the AUROC): calibrating and reporting on the same scores
    # would meet the target rate by construction.
    order = torch.randperm(z_in.shape[0], generator=torch.Generator().manual_seed(11))
    calibrate, report = order[: z_in.shape[0] // 2], order[z_in.shape[0] // 2 :]
    gini_in = detector.scores(z_in)
    gini = novelty_metrics(
        gini_in[report], detector.scores(z_out), calibration_scores=gini_in[calibrate]
    )
    distance_in = nearest_gallery_distance(z_in, z_train, metric)
    distance = novelty_metrics(
        distance_in[report],
        nearest_gallery_distance(z_out, z_train, metric),
        calibration_scores=distance_in[calibrate],
    )
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


def identification(
    result: Evaluation,
    data: LabeledData,
    z: torch.Tensor,
    metric: str,
    seed: int,
    thresholds: dict[float, float] | None,
    thresholds_note: str,
    trials: int = 10,
) -> None:
    """Open-set identification (`siamese.evaluation.identification`) with 1 and 5 enrolled
    examples per identity, `trials` random enrollments each."""
    from siamese.evaluation.identification import open_set_identification

    reports: dict[str, Any] = {}
    for shots in (1, 5):
        try:
            report = open_set_identification(
                z, data.y, shots, trials, seed, metric, thresholds=thresholds
            )
        except DataError as err:
            reports[f"{shots}-shot"] = {"not measured": str(err)}
            continue
        reports[f"{shots}-shot"] = report
        if report["rank1"] is not None:
            result.headline[f"open-set rank-1 ({shots}-shot)"] = report["rank1"]["mean"]
        for rate, value in report["fnir_at_fpir"].items():
            if value is not None:
                name = f"FNIR at FPIR {float(rate):.0%} ({shots}-shot)"
                result.headline[name] = value["mean"]
    result.metrics["identification"] = {
        "protocol": (
            "half the identities enrolled (per trial, at random), the rest of their examples "
            "mated probes, every example of the others non-mated probes; scores by nearest "
            "enrolled example"
        ),
        "thresholds": thresholds_note,
        **reports,
    }
