"""`siamese evaluate RUN ...` and `siamese plot RUN KIND`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    run: Annotated[Path, typer.Argument(help="A finished run directory.", show_default=False)],
    data: Annotated[
        str | None,
        typer.Option(
            "--data", help="Evaluate on this dataset (default: data the run never trained on)."
        ),
    ] = None,
    split: Annotated[str | None, typer.Option("--split", help="The dataset's split.")] = None,
    protocol: Annotated[
        list[str] | None,
        typer.Option(
            "--protocol",
            help="verification, retrieval, fewshot, novelty (repeatable; default: the first three).",
            show_default=False,
        ),
    ] = None,
    ood: Annotated[
        str | None,
        typer.Option(
            "--ood", help="Out-of-distribution data NAME[:SPLIT] for the novelty protocol."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of pairs, episodes, picks.")] = 0,
    episodes: Annotated[
        int, typer.Option("--episodes", min=10, help="Few-shot episodes per setting.")
    ] = 1000,
    gallery: Annotated[
        str,
        typer.Option(
            "--gallery",
            help="Retrieval gallery: 'self' (leave-one-out) or 'train' (the run's training "
            "examples: the tutorials' 1-NN test accuracy).",
        ),
    ] = "self",
) -> None:
    """Measure a trained run and write metrics.json, report.md and report.html into it."""
    from rich.console import Console
    from rich.table import Table

    from siamese.evaluation.report_files import write_reports
    from siamese.evaluation.run_evaluation import evaluate_run

    protocols = tuple(protocol or ("verification", "retrieval", "fewshot"))
    if ood is not None and "novelty" not in protocols:
        protocols = (*protocols, "novelty")
    result = evaluate_run(run, protocols, data, split, ood, seed, episodes, gallery)
    paths = write_reports(result)
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"{run.name} on {result.data}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in result.headline.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    console.print(f"report: {paths['markdown']} and {paths['html']}")


PLOT_KINDS: tuple[str, ...] = ("embedding", "training", "roc", "distances", "retrieval", "oneshot")


def plot(
    run: Annotated[Path, typer.Argument(help="A finished run directory.", show_default=False)],
    kind: Annotated[
        str, typer.Argument(help=f"One of: {', '.join(PLOT_KINDS)}.", show_default=False)
    ],
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the figure's picks.")] = 0,
) -> None:
    """Draw one figure of a run into RUN/figures/KIND.png."""
    from siamese.errors import ConfigError
    from siamese.evaluation.run_evaluation import evaluate_run

    if kind not in PLOT_KINDS:
        raise ConfigError(f"unknown figure {kind!r}: choose one of {', '.join(PLOT_KINDS)}")
    needs = {
        "roc": "verification",
        "distances": "verification",
        "retrieval": "retrieval",
        "oneshot": "fewshot",
    }
    protocols = (needs[kind],) if kind in needs else ()
    result = evaluate_run(run, protocols, seed=seed, episodes=10)
    if kind not in result.figures:
        raise ConfigError(f"{run} cannot draw {kind!r}: its data has no images or no training log")
    typer.echo(str(result.figures[kind]))


def sweep(
    config: Annotated[Path, typer.Argument(help="A YAML run config.", show_default=False)],
    overrides: Annotated[
        list[str],
        typer.Option(
            "--set",
            help="KEY=V1,V2,... for the swept key (exactly one), KEY=VALUE for fixed ones.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Sweep directory (default: runs/<config>-sweep).")
    ] = None,
    episodes: Annotated[
        int, typer.Option("--episodes", min=10, help="Few-shot episodes per run.")
    ] = 1000,
) -> None:
    """Train and evaluate one run per value of one config key; draw the grid and a table."""
    from rich.console import Console
    from rich.table import Table

    from siamese.sweep import run_sweep

    console = Console(highlight=False, soft_wrap=True)
    out = out or Path("runs") / f"{config.stem}-sweep"
    result = run_sweep(config, overrides, out, quiet=True, console=console, episodes=episodes)
    table = Table(title=f"sweep of {result.key}")
    for name in result.rows[0]:
        table.add_column(name, justify="right")
    for row in result.rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)
    console.print(f"figure: {result.figure}; table: {result.table}")
