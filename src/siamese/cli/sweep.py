"""`siamese sweep CONFIG --set KEY=V1,V2,...`: one run per value of one config key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from siamese.cli.evaluate import GalleryOption


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
    gallery: GalleryOption = "self",
) -> None:
    """Train and evaluate one run per value of one config key; draw the grid and a table."""
    from rich.console import Console
    from rich.table import Table

    from siamese.experiments.sweep import run_sweep

    console = Console(highlight=False, soft_wrap=True)
    out = out or Path("runs") / f"{config.stem}-sweep"
    result = run_sweep(
        config, overrides, out, quiet=True, console=console, episodes=episodes, gallery=gallery
    )
    table = Table(title=f"sweep of {result.key}")
    for name in result.rows[0]:
        table.add_column(name, justify="right")
    for row in result.rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)
    for name, value in (result.summary or {}).items():
        console.print(
            f"{name}: {value['mean']:.4f} ± {value['std']:.4f} over {len(result.rows)} folds"
        )
    console.print(f"figure: {result.figure}; table: {result.table}")
