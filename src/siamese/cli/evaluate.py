"""`siamese evaluate RUN ...`: measure a trained run and write its reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from siamese.cli.device_option import DeviceOption

GalleryOption = Annotated[
    str,
    typer.Option(
        "--gallery",
        help="Retrieval gallery: 'self' (leave-one-out) or 'train' (the run's training "
        "examples: the tutorials' 1-NN test accuracy).",
    ),
]
"""`--gallery`, shared by `evaluate` and `sweep`."""


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
            help="verification, retrieval, fewshot, novelty, identification (repeatable; default: the first three).",
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
    gallery: GalleryOption = "self",
    fewshot_across: Annotated[
        str | None,
        typer.Option(
            "--fewshot-across",
            help="A per-example attribute (e.g. writer: the font of glyphs, the drawer of "
            "Omniglot); each episode's support and queries come from different values of it.",
        ),
    ] = None,
    baseline: Annotated[
        bool,
        typer.Option(
            "--baseline",
            help="Also measure verification and few-shot on the raw inputs (pixels), to show "
            "what training added.",
        ),
    ] = False,
    data_option: Annotated[
        list[str] | None,
        typer.Option(
            "--data-option",
            help="A source option of --data, KEY=VALUE (repeatable), e.g. image_size=56,46 or "
            "channels=1; without them the data is fitted to the model's input.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    device: DeviceOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="The evaluation's folder (default: RUN/evaluation); replaced as a whole once "
            "the evaluation is complete.",
        ),
    ] = None,
) -> None:
    """Measure a trained run: metrics.json, report.md, report.html, pairs.csv and figures/ in
    RUN/evaluation (or --out)."""
    from rich.console import Console
    from rich.table import Table

    from siamese.config.yaml_dialect import parse_key_value
    from siamese.run_evaluation.reports import evaluate_into
    from siamese.run_evaluation.result import statement_lines

    options = dict(parse_key_value(o, "--data-option") for o in data_option or [])

    protocols = tuple(protocol or ("verification", "retrieval", "fewshot"))
    if ood is not None and "novelty" not in protocols:
        protocols = (*protocols, "novelty")
    result, paths = evaluate_into(
        run,
        out,
        protocols=protocols,
        data_name=data,
        split=split,
        ood=ood,
        seed=seed,
        episodes=episodes,
        gallery=gallery,
        fewshot_across=fewshot_across,
        baseline=baseline,
        data_options=options,
        progress=not quiet,
        device=device,
    )
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"{run.name} on {result.data}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in result.headline.items():
        table.add_row(name, f"{value:.4f}")
    for line in statement_lines(result.statement):
        console.print(line)
    console.print(table)
    console.print(f"report: {paths['markdown']} and {paths['html']}")
