"""The quick-start job: one-shot recognition of characters the network never saw.

It is the `configs/glyphs_triplet.yaml` recipe (shipped in this package as
`glyphs_triplet.yaml`) run through the same pipeline as every recipe: `train_run` trains a
small CNN with semi-hard triplet loss on most `glyphs` characters (validating on 20 % of them),
then `evaluate_run` measures on the 40 held-out characters how well the embedding verifies
pairs (at a threshold chosen on the validation characters) and identifies a character from
one example in another font, beside the same measures on raw pixels. The demo's own part is
only its report on top (`demo_preamble`) and its summary of numbers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from siamese.atomic_files import write_json_atomic
from siamese.config import RunConfig, load_config
from siamese.errors import ConfigError, OutputError
from siamese.run_directory.layout import describe_contents, holds_run
from siamese.run_evaluation import Evaluation
from siamese.run_evaluation.reports import Preamble, evaluate_into
from siamese.training.training_run import train_run

DEMO_RECIPE = Path(__file__).with_name("glyphs_triplet.yaml")
"""The demo's recipe: a link to `configs/glyphs_triplet.yaml` in a source checkout."""

DEMO_MARKER = "demo.json"
"""Written last into a finished demo's directory; a later demo may replace such a directory."""

EPISODES = 1000


@dataclass
class DemoResult:
    """A finished demo: its summary numbers and the report's paths."""

    summary: dict[str, float]
    report: Path
    html: Path


def demo_config(epochs: int = 3, seed: int = 0) -> RunConfig:
    """The demo recipe with its epochs and seed (the seed also renders the glyphs).

    Raises:
        ConfigError: epochs below 1 or a negative seed.
    """
    if epochs < 1 or seed < 0:
        raise ConfigError(f"the demo needs epochs >= 1 and seed >= 0, got {epochs} and {seed}")
    return load_config(
        DEMO_RECIPE, [f"train.epochs={epochs}", f"seed={seed}", f"data.options.seed={seed}"]
    )


def run_demo(
    out: Path,
    epochs: int = 3,
    seed: int = 0,
    console: Console | None = None,
    quiet: bool = False,
    force: bool = False,
) -> DemoResult:
    """Train the demo recipe into `out`, evaluate it on the held-out characters and write the
    demo's report (`evaluation/report.md`, `report.html`, `metrics.json` with a `summary`).

    An earlier demo in `out` is replaced as a whole; any other run only with `force`; a folder
    with other files is refused.

    Raises:
        OutputError: `out` holds something that is not an earlier demo.
    """
    started = time.perf_counter()
    console = console or Console()
    config = demo_config(epochs, seed)
    replace = force or _holds_demo(out)
    if not replace and out.is_dir() and holds_run(out):
        raise OutputError(
            f"{out} holds {describe_contents(out)}, not an earlier demo: choose another --out, "
            "or pass --force to replace that run (nothing was changed)"
        )
    run = train_run(config, out, quiet=quiet, console=console, force=replace)
    summary: dict[str, float] = {}

    def preamble(evaluation: Evaluation) -> Preamble:
        summary.update(demo_summary(evaluation))
        summary["train_seconds"] = run.seconds
        summary["train_images_per_second"] = run.images_per_s
        summary["total_seconds"] = time.perf_counter() - started
        return demo_preamble(evaluation, config, summary)

    _, paths = evaluate_into(
        out,
        preamble=preamble,
        seed=seed,
        episodes=EPISODES,
        fewshot_across="writer",
        baseline=True,
    )
    write_json_atomic(out / DEMO_MARKER, {"epochs": epochs, "seed": seed, **summary})
    return DemoResult(summary, paths["markdown"], paths["html"])


def _holds_demo(out: Path) -> bool:
    return (out / DEMO_MARKER).is_file() and (out / "config.yaml").is_file()


def demo_summary(evaluation: Evaluation) -> dict[str, float]:
    """The demo's headline numbers, flat: the embedding's (`unseen_*`, `oneshot_*`) and the
    raw pixels' (`raw_pixels_*`)."""
    out: dict[str, float] = {}
    sources = {
        "": evaluation.metrics,
        "raw_pixels_": evaluation.metrics.get("raw_inputs", {}),
    }
    for prefix, metrics in sources.items():
        verification = metrics.get("verification", {})
        fewshot = metrics.get("fewshot", {})
        name = prefix or "unseen_"
        out[f"{name}verification_auc"] = verification.get("auc", float("nan"))
        out[f"{name}eer"] = verification.get("eer", float("nan"))
        for n_way in (5, 20):
            setting = fewshot.get(f"{n_way}-way 1-shot", {})
            out[f"{prefix}oneshot_{n_way}way"] = setting.get("accuracy", float("nan"))
            out[f"{prefix}oneshot_{n_way}way_ci95"] = setting.get("ci95", float("nan"))
    verification = evaluation.metrics.get("verification", {})
    out["unseen_verification_accuracy"] = verification.get(
        "accuracy_at_validation_threshold", float("nan")
    )
    out["unseen_threshold"] = verification.get("validation_threshold", float("nan"))
    return out


def demo_preamble(evaluation: Evaluation, config: RunConfig, summary: dict[str, float]) -> Preamble:
    """The demo's report on top of the evaluation's: what was done, the embedding beside raw
    pixels, how it was measured, which characters went where."""
    split = json.loads((evaluation.run_dir / "split.json").read_text(encoding="utf-8"))
    parts: dict[str, Any] = split.get("parts", {})
    trained = parts.get("train", {}).get("class_names", [])
    validation = parts.get("validation", {}).get("class_names", [])
    data = evaluation.labeled
    held_out = sorted({data.classes[i] for i in data.y.unique().tolist()}) if data else []
    s = summary

    def pct(key: str) -> str:
        return f"{s[key]:.1%} ± {s[key + '_ci95']:.1%}"

    pairs = evaluation.metrics["verification"]
    loss = config.loss
    return Preamble(
        title="siamese demo: one-shot recognition of unseen characters",
        paragraphs=[
            f"A small CNN was trained with triplet loss ({loss.mining} mining, margin "
            f"{loss.margin}) on {len(trained)} characters for {config.train.epochs} epochs, "
            f"then tested on {len(held_out)} characters it never saw (open-set). Each class is "
            "a character; each of the 16 fonts is a different 'writer'. In one-shot episodes "
            "the single support example and the query always come from different fonts.",
            f"Training took {s['train_seconds']:.1f} s ({s['train_images_per_second']:,.0f} "
            f"images/s); the whole demo {s['total_seconds']:.1f} s. Recipe: "
            "`configs/glyphs_triplet.yaml`.",
        ],
        table=[
            ["held-out characters", "Siamese embedding", "raw pixels"],
            [
                "verification ROC AUC",
                f"{s['unseen_verification_auc']:.3f}",
                f"{s['raw_pixels_verification_auc']:.3f}",
            ],
            ["equal error rate", f"{s['unseen_eer']:.1%}", f"{s['raw_pixels_eer']:.1%}"],
            ["5-way 1-shot accuracy", pct("oneshot_5way"), pct("raw_pixels_oneshot_5way")],
            ["20-way 1-shot accuracy", pct("oneshot_20way"), pct("raw_pixels_oneshot_20way")],
        ],
        notes=[
            f"Verification: {pairs['n_genuine']:,} genuine and {pairs['n_impostor']:,} impostor "
            "pairs of held-out images; Euclidean distance between L2-normalised embeddings. At "
            f"the threshold {s['unseen_threshold']:.3f}, chosen on pairs of the "
            f"{len(validation)} validation characters (never trained on either), "
            f"{s['unseen_verification_accuracy']:.1%} of the held-out pairs are decided right.",
            f"One-shot: {EPISODES:,} seeded episodes each; the ± is a 95 % confidence interval.",
            "Raw pixels: the same pairs and episodes on the pixel values scaled to [0, 1].",
            f"Held out: {' '.join(held_out)}",
            f"Validation: {' '.join(validation)}",
            f"Trained on: {' '.join(trained)}",
        ],
        summary=summary,
    )


def summary_table(summary: dict[str, float]) -> Table:
    """The headline numbers, Siamese embedding beside raw pixels."""
    table = Table(title="Held-out characters (never seen in training)")
    table.add_column("measure")
    table.add_column("Siamese", justify="right")
    table.add_column("raw pixels", justify="right")
    rows = (
        ("verification AUC", "unseen_verification_auc", "raw_pixels_verification_auc", ".3f"),
        ("equal error rate", "unseen_eer", "raw_pixels_eer", ".1%"),
        ("5-way 1-shot", "oneshot_5way", "raw_pixels_oneshot_5way", ".1%"),
        ("20-way 1-shot", "oneshot_20way", "raw_pixels_oneshot_20way", ".1%"),
    )
    for name, ours, pixels, fmt in rows:
        table.add_row(name, format(summary[ours], fmt), format(summary[pixels], fmt))
    table.add_row(
        "pair accuracy (validation threshold)",
        format(summary["unseen_verification_accuracy"], ".1%"),
        "",
    )
    return table
