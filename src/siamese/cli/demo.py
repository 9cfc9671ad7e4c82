"""`siamese demo [--out DIR] [--epochs N] [--seed S] [--quiet] [--force]`: the quick start."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Run directory for the report, figures and model.")
    ] = Path("runs/demo"),
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=1000, help="Training epochs.")] = 3,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of the data, split and training.")
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress bar or table; just the report path.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace another run in --out (an earlier demo is always replaced).",
        ),
    ] = False,
) -> None:
    """Train on rendered characters, then recognise held-out characters from one example."""
    from rich.console import Console

    from siamese.experiments.demo import run_demo, summary_table

    console = Console(highlight=False, soft_wrap=True)
    result = run_demo(out, epochs=epochs, seed=seed, console=console, quiet=quiet, force=force)
    if not quiet:
        console.print(summary_table(result.summary))
        console.print(
            f"train {result.summary['train_seconds']:.1f} s, "
            f"total {result.summary['total_seconds']:.1f} s"
        )
    typer.echo(f"report: {result.report}")
