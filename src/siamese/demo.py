"""The quick-start job: one-shot recognition of characters the network never saw.

It trains a small CNN with semi-hard triplet loss on most `glyphs` characters, then measures
on held-out characters how well the embedding verifies pairs and identifies a character from
one example in another font — beside the same measures on raw pixels — and writes a report.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from siamese.data.glyphs import load_glyphs
from siamese.data.labeled import LabeledData
from siamese.data.splits import DataSplit, split_classes
from siamese.distances import paired_distances
from siamese.errors import ConfigError
from siamese.evaluation.embed import embed
from siamese.evaluation.fewshot import episode_predictions, episodic_accuracy, sample_episodes
from siamese.evaluation.verification import (
    RocCurve,
    accuracy_at_threshold,
    best_threshold,
    roc_curve,
)
from siamese.losses import TripletLoss
from siamese.models import build_embedding_net
from siamese.plots import plot_embedding_2d, plot_oneshot_episodes, plot_roc, plot_training_curves
from siamese.run_directory import prepare_run_directory, save_model, write_json_atomic
from siamese.sampling import PKSampler, balanced_pairs
from siamese.training import fit


@dataclass
class DemoSettings:
    """Everything the demo's result depends on (written to `settings.json`)."""

    epochs: int = 3
    seed: int = 0
    held_out_classes: int = 40
    validation_classes: int = 20
    variants_per_font: int = 8
    classes_per_batch: int = 32
    samples_per_class: int = 4
    margin: float = 0.2
    learning_rate: float = 3e-3
    embedding_dim: int = 64
    widths: tuple[int, ...] = (16, 32, 64, 128)
    verification_pairs: int = 20_000
    episodes: int = 1000

    def validate(self) -> None:
        """Raise `ConfigError` for values the demo cannot run with."""
        checks = {
            "epochs": self.epochs >= 1,
            "held_out_classes": self.held_out_classes >= 20,
            "validation_classes": self.validation_classes >= 2,
            "episodes": self.episodes >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"demo setting {name}={getattr(self, name)} is out of range")


@dataclass
class Embedded:
    """One evaluation split, embedded by the trained model and as raw pixels."""

    data: LabeledData
    trained: torch.Tensor  # (N, D)
    pixels: torch.Tensor  # (N, H·W)


def run_demo(
    out: Path, settings: DemoSettings, console: Console, quiet: bool = False
) -> dict[str, float]:
    """Run the demo into `out` and return its metrics (also written to `out/metrics.json`)."""
    settings.validate()
    started = time.perf_counter()
    prepare_run_directory(out)
    torch.manual_seed(settings.seed)

    data = load_glyphs(variants=settings.variants_per_font, seed=settings.seed)
    held_out, validation, train = split_classes(
        data.class_ids, [settings.held_out_classes, settings.validation_classes], seed=settings.seed
    )
    train_data = data.with_classes(train)
    if not quiet:
        console.print(
            f"glyphs: {len(data.classes)} characters × {int(data.meta['writer'].max()) + 1} fonts; training on "
            f"{train.numel()} characters ({len(train_data):,} images), holding out {held_out.numel()} "
            f"(+{validation.numel()} for choosing the threshold)"
        )

    model = build_embedding_net(
        {
            "encoder": "convnet",
            "encoder_options": {"widths": list(settings.widths)},
            "embedding_dim": settings.embedding_dim,
        },
        (1, 28, 28),
    )
    sampler = PKSampler(
        train_data.y, p=settings.classes_per_batch, k=settings.samples_per_class, seed=settings.seed
    )
    loss = TripletLoss(margin=settings.margin, metric="euclidean", mining="semihard")
    history = fit(
        model,
        train_data,
        loss,
        sampler,
        settings.epochs,
        lr=settings.learning_rate,
        show_progress=not quiet,
    )

    unseen = _embed_split(model, data.with_classes(held_out))
    val = _embed_split(model, data.with_classes(validation))
    metrics: dict[str, float] = {}
    rocs = {}
    for name, attr in (("siamese", "trained"), ("raw_pixels", "pixels")):
        prefix = "unseen_" if name == "siamese" else "raw_pixels_"
        verification, curve = _verification(val, unseen, attr, settings)
        rocs[name] = (curve, verification["auc"], verification["eer"])
        metrics[f"{prefix}verification_auc"] = verification["auc"]
        metrics[f"{prefix}eer"] = verification["eer"]
        metrics[f"{prefix}verification_accuracy"] = verification["accuracy"]
        metrics[f"{prefix}threshold"] = verification["threshold"]
        for n_way in (5, 20):
            mean, ci = episodic_accuracy(
                getattr(unseen, attr),
                unseen.data.y,
                n_way,
                1,
                settings.episodes,
                settings.seed,
                groups=unseen.data.meta["writer"],
            )
            key = f"oneshot_{n_way}way" if name == "siamese" else f"raw_pixels_oneshot_{n_way}way"
            metrics[key], metrics[f"{key}_ci95"] = mean, ci
    metrics["train_seconds"] = history.seconds
    metrics["train_images_per_second"] = history.images / history.seconds

    figures = _draw_figures(out / "figures", unseen, history.records, rocs, settings)
    save_model(out, model, (1, 28, 28), {"trained_on": "glyphs", "loss": "triplet"})
    metrics["total_seconds"] = time.perf_counter() - started
    write_json_atomic(out / "metrics.json", metrics)
    write_json_atomic(out / "settings.json", asdict(settings))
    split = DataSplit.from_class_groups(
        data, {"train": train, "validation": validation, "held_out": held_out}, settings.seed
    )
    write_json_atomic(out / "split.json", split.record())
    _write_report(out / "report.md", metrics, settings, figures, data, train, held_out, validation)
    return metrics


def _embed_split(model: torch.nn.Module, data: LabeledData) -> Embedded:
    return Embedded(
        data=data, trained=embed(model, data.x), pixels=data.x.flatten(1).float() / 255.0
    )


def _verification(
    val: Embedded, unseen: Embedded, attr: str, settings: DemoSettings
) -> tuple[dict[str, float], RocCurve]:
    """AUC and EER on held-out pairs; accuracy there at the threshold best on validation pairs."""

    def pair_distances(split: Embedded, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, j, same = balanced_pairs(split.data.y, settings.verification_pairs, seed=seed)
        emb = getattr(split, attr)
        return paired_distances(emb[i], emb[j]), same

    val_d, val_same = pair_distances(val, settings.seed + 1)
    threshold, _ = best_threshold(val_d, val_same)
    d, same = pair_distances(unseen, settings.seed)
    curve = roc_curve(d, same)
    result = {
        "auc": curve.auc(),
        "eer": curve.eer(),
        "accuracy": accuracy_at_threshold(d, same, threshold),
        "threshold": threshold,
    }
    return result, curve


def _draw_figures(
    folder: Path,
    unseen: Embedded,
    records: list[dict[str, float]],
    rocs: dict,
    settings: DemoSettings,
) -> dict[str, Path]:
    data = unseen.data
    shown = data.class_ids[:12]
    mask = torch.isin(data.y, shown)
    figures = {
        "embedding": plot_embedding_2d(
            unseen.trained[mask],
            data.y[mask],
            data.classes,
            folder / "embedding.png",
            f"{shown.numel()} held-out characters (never trained on) in the embedding",
        ),
        "loss": plot_training_curves(records, folder / "loss.png"),
        "roc": plot_roc(
            {"Siamese embedding": rocs["siamese"], "raw pixels": rocs["raw_pixels"]},
            folder / "roc.png",
            "Verification on held-out characters",
        ),
    }
    episodes = sample_episodes(data.y, 5, 1, 6, seed=settings.seed + 7, groups=data.meta["writer"])
    predicted = episode_predictions(unseen.trained, episodes)
    # One row per episode showing the query of way 0, so the true class is the first support.
    figures["oneshot"] = plot_oneshot_episodes(
        data.x,
        episodes.support[..., 0],
        episodes.query[:, 0],
        predicted[:, 0],
        folder / "oneshot.png",
        "5-way one-shot on held-out characters: which single example matches the query?",
    )
    return figures


def _write_report(
    path: Path,
    metrics: dict[str, float],
    settings: DemoSettings,
    figures: dict[str, Path],
    data: LabeledData,
    train: torch.Tensor,
    held_out: torch.Tensor,
    validation: torch.Tensor,
) -> None:
    def chars(ids: torch.Tensor) -> str:
        return " ".join(data.classes[i] for i in ids.tolist())

    def pct(key: str) -> str:
        return f"{metrics[key]:.1%} ± {metrics[key + '_ci95']:.1%}"

    rel = {name: p.relative_to(path.parent).as_posix() for name, p in figures.items()}
    lines = [
        "# siamese demo: one-shot recognition of unseen characters",
        "",
        f"A small CNN was trained with triplet loss "
        f"(semi-hard mining, margin {settings.margin}) on {train.numel()} characters, then tested on "
        f"{held_out.numel()} characters it never saw. Each class is a character; each of the 16 fonts is "
        "a different 'writer'. In one-shot episodes the single support example and the query always "
        "come from different fonts.",
        "",
        "| measure (held-out characters) | Siamese embedding | raw pixels |",
        "|---|---|---|",
        f"| verification ROC AUC | {metrics['unseen_verification_auc']:.3f} | {metrics['raw_pixels_verification_auc']:.3f} |",
        f"| equal error rate | {metrics['unseen_eer']:.1%} | {metrics['raw_pixels_eer']:.1%} |",
        f"| pair accuracy at the validation threshold | {metrics['unseen_verification_accuracy']:.1%} "
        f"| {metrics['raw_pixels_verification_accuracy']:.1%} |",
        f"| 5-way 1-shot accuracy | {pct('oneshot_5way')} | {pct('raw_pixels_oneshot_5way')} |",
        f"| 20-way 1-shot accuracy | {pct('oneshot_20way')} | {pct('raw_pixels_oneshot_20way')} |",
        "",
        f"Training: {settings.epochs} epochs in {metrics['train_seconds']:.1f} s "
        f"({metrics['train_images_per_second']:,.0f} images/s); the whole run took {metrics['total_seconds']:.1f} s.",
        "",
        "## How it was measured",
        "",
        f"- Verification: {settings.verification_pairs:,} pairs of held-out images, half genuine (same "
        "character), half impostor; Euclidean distance between L2-normalised embeddings. The "
        f"threshold was chosen on pairs of {validation.numel()} validation characters, also never trained on.",
        f"- One-shot: {settings.episodes:,} seeded episodes each; the ± is a 95 % confidence interval.",
        "- Raw pixels: the same protocol on the 784 pixel values scaled to [0, 1].",
        "",
        "## Figures",
        "",
        f"![embedding]({rel['embedding']})",
        "",
        f"![one-shot episodes]({rel['oneshot']})",
        "",
        f"![ROC]({rel['roc']})",
        "",
        f"![training]({rel['loss']})",
        "",
        "## Characters",
        "",
        f"- held out: {chars(held_out)}",
        f"- validation: {chars(validation)}",
        f"- trained on: {chars(train)}",
        "",
        "Settings are in `settings.json`, the numbers in `metrics.json`, the model in `model.safetensors` + `model.json`.",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def summary_table(metrics: dict[str, float]) -> Table:
    """The headline numbers, Siamese embedding beside raw pixels."""
    table = Table(title="Held-out characters (never seen in training)")
    table.add_column("measure")
    table.add_column("Siamese", justify="right")
    table.add_column("raw pixels", justify="right")
    table.add_row(
        "verification AUC",
        f"{metrics['unseen_verification_auc']:.3f}",
        f"{metrics['raw_pixels_verification_auc']:.3f}",
    )
    table.add_row(
        "equal error rate", f"{metrics['unseen_eer']:.1%}", f"{metrics['raw_pixels_eer']:.1%}"
    )
    table.add_row(
        "pair accuracy",
        f"{metrics['unseen_verification_accuracy']:.1%}",
        f"{metrics['raw_pixels_verification_accuracy']:.1%}",
    )
    table.add_row(
        "5-way 1-shot",
        f"{metrics['oneshot_5way']:.1%}",
        f"{metrics['raw_pixels_oneshot_5way']:.1%}",
    )
    table.add_row(
        "20-way 1-shot",
        f"{metrics['oneshot_20way']:.1%}",
        f"{metrics['raw_pixels_oneshot_20way']:.1%}",
    )
    return table
