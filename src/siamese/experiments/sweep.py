"""A sweep: one training run per value of one config key, each evaluated, then one grid
figure and one table — `siamese sweep CONFIG --set loss.margin=0,0.1,...,0.9` reproduces the
MNIST tutorial's margin figure.

Each run is an ordinary run directory (`OUT/<key>=<value>/`), so an interrupted sweep is
continued by running the same command again: finished runs are kept, interrupted ones are
resumed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from siamese.atomic_files import write_bytes_atomic
from siamese.config import load_config
from siamese.config.yaml_dialect import parse_yaml, split_top_level
from siamese.errors import ConfigError


@dataclass
class SweepResult:
    """The runs of a sweep and where its figure and table are."""

    key: str
    values: list[Any]
    runs: list[Path]
    rows: list[dict[str, Any]]
    figure: Path
    table: Path
    summary: dict[str, dict[str, float]] | None = None
    """Over identity folds (a sweep of `data.test_fold`): each headline's mean and std."""


def parse_sweep(overrides: list[str]) -> tuple[str, list[Any], list[str]]:
    """Split `--set` strings into the swept key with its values (the one whose value is a
    list of values separated by top-level commas: `loss.margin=0,0.1`, `loss.mining=hard,
    semihard`, `model.options.widths=[8,16],[16,32]`) and the fixed overrides (a YAML list or
    mapping such as `model.options.widths=[8, 16]` is one value, not a sweep).

    Raises:
        ConfigError: no override or more than one holds several values.
    """
    split = {o: split_top_level(o.split("=", 1)[1]) if "=" in o else [] for o in overrides}
    swept = [o for o, values in split.items() if len(values) > 1]
    if len(swept) != 1:
        raise ConfigError(
            "a sweep varies one key: give exactly one --set KEY=V1,V2,... (e.g. --set "
            f"loss.margin=0,0.1,0.2); got {len(swept)} with several values"
            + (f" ({', '.join(o.split('=', 1)[0] for o in swept)})" if swept else "")
        )
    key = swept[0].split("=", 1)[0]
    values = [parse_yaml(v, f"--set {swept[0]}") for v in split[swept[0]]]
    return key, values, [o for o in overrides if o != swept[0]]


def run_sweep(
    config_path: Path,
    overrides: list[str],
    out: Path,
    quiet: bool = True,
    console: Console | None = None,
    episodes: int = 1000,
    gallery: str = "self",
) -> SweepResult:
    """Train and evaluate one run per value of the swept key; draw the grid and the table.
    `gallery` is `evaluate`'s retrieval gallery ("self" or "train").

    Raises:
        ConfigError: as `parse_sweep` and the config demand (checked for every value first).
    """
    from siamese.plots import SweepPanel, plot_margin_sweep
    from siamese.run_evaluation.reports import evaluate_into
    from siamese.training.training_run import train_run

    console = console or Console()
    key, values, fixed = parse_sweep(overrides)
    configs = [load_config(config_path, [*fixed, f"{key}={json.dumps(v)}"]) for v in values]
    out.mkdir(parents=True, exist_ok=True)
    runs, rows, panels = [], [], []
    for value, config in zip(values, configs, strict=True):
        run = out / f"{key}={_folder_name(value)}"
        finished = (run / "model.safetensors").exists()
        if not finished:
            console.print(f"[bold]{key} = {value}[/]: training into {run}")
            train_run(
                config, run, resume=(run / "config.yaml").exists(), quiet=quiet, console=console
            )
        evaluation, _ = evaluate_into(
            run,
            protocols=("verification", "retrieval", "fewshot"),
            episodes=episodes,
            gallery=gallery,
        )
        row = {key: value, **evaluation.headline}
        rows.append(row)
        runs.append(run)
        data, embeddings = evaluation.labeled, evaluation.embeddings
        shown = _pick(data.y, per_class=100, classes=10)
        z = embeddings[shown]
        panel_metrics = {
            name: evaluation.headline[name]
            for name in ("precision@1", "MAP@R", *_TRAIN_GALLERY_HEADLINES)
            if name in evaluation.headline
        }
        panels.append(SweepPanel(value, z, data.y[shown], panel_metrics, key=key))
        class_names = data.classes
    figure = plot_margin_sweep(
        panels, out / "sweep.png", f"Sweep of {key}", class_names=class_names
    )
    table = out / "sweep.md"
    summary = fold_summary(rows, key) if key == "data.test_fold" else None
    text = _markdown_table(rows)
    if summary is not None:
        cells = [f"{v['mean']:.4f} ± {v['std']:.4f}" for v in summary.values()]
        text += f"| mean ± std over {len(rows)} folds | " + " | ".join(cells) + " |\n"
    write_bytes_atomic(table, text.encode())
    document: Any = rows if summary is None else {"folds": rows, "mean_std": summary}
    write_bytes_atomic(out / "sweep.json", (json.dumps(document, indent=2) + "\n").encode())
    return SweepResult(key, values, runs, rows, figure, table, summary)


def fold_summary(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    """Mean and population std over the runs of every numeric headline (identity folds: each
    run tested on other classes, so the spread is the figure's uncertainty)."""
    names = [n for n in rows[0] if n != key and isinstance(rows[0][n], float)]
    out = {}
    for name in names:
        values = torch.tensor([float(r[name]) for r in rows], dtype=torch.float64)
        out[name] = {"mean": float(values.mean()), "std": float(values.std(correction=0))}
    return out


_TRAIN_GALLERY_HEADLINES = ("1-NN accuracy (gallery: training set)",)


def _folder_name(value: Any) -> str:
    """A run folder's name for a swept value: numbers and words as they are, lists and
    mappings as compact JSON without the characters a path cannot hold."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text.replace("/", "_").replace(" ", "")


def _pick(labels: torch.Tensor, per_class: int, classes: int) -> torch.Tensor:
    """Indices of the first `per_class` examples of each of the first `classes` classes."""
    picked = [
        (labels == c).nonzero().squeeze(1)[:per_class] for c in torch.unique(labels)[:classes]
    ]
    return torch.cat(picked)


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    names = list(rows[0])
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in rows:
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
