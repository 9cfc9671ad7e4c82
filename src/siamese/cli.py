"""The `siamese` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from siamese.cli_datasets import datasets_app
from siamese.cli_evaluate import evaluate, plot, sweep
from siamese.cli_train import _options_epilog, train
from siamese.errors import SiameseError

app = typer.Typer(
    name="siamese",
    help="Similarity learning with Siamese networks: train, verify, identify from one example.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Similarity learning with Siamese networks."""


app.add_typer(datasets_app, name="datasets")
app.command("train", epilog=_options_epilog())(train)
app.command("evaluate")(evaluate)
app.command("plot")(plot)
app.command("sweep")(sweep)


@app.command()
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
) -> None:
    """Train on rendered characters, then recognise held-out characters from one example."""
    from siamese.demo import DemoSettings, run_demo, summary_table

    console = Console(stderr=False)
    metrics = run_demo(out, DemoSettings(epochs=epochs, seed=seed), console, quiet=quiet)
    if not quiet:
        console.print(summary_table(metrics))
        console.print(
            f"train {metrics['train_seconds']:.1f} s, total {metrics['total_seconds']:.1f} s"
        )
    typer.echo(f"report: {out / 'report.md'}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; print user errors as one message, without a traceback."""
    from siamese.allocator import keep_large_allocations_in_heap

    keep_large_allocations_in_heap()
    try:
        app(args=argv, standalone_mode=True)
    except SiameseError as err:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {err}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)
