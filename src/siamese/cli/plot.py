"""`siamese plot RUN KIND`: one figure of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PLOT_KINDS: tuple[str, ...] = ("embedding", "training", "roc", "distances", "retrieval", "oneshot")


def plot(
    run: Annotated[Path, typer.Argument(help="A finished run directory.", show_default=False)],
    kind: Annotated[
        str, typer.Argument(help=f"One of: {', '.join(PLOT_KINDS)}.", show_default=False)
    ],
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the figure's picks.")] = 0,
) -> None:
    """Draw one figure of a run into RUN/figures/KIND.png."""
    import tempfile

    from siamese.atomic_files import write_bytes_atomic
    from siamese.errors import ConfigError
    from siamese.run_evaluation.evaluator import evaluate_run

    if kind not in PLOT_KINDS:
        raise ConfigError(f"unknown figure {kind!r}: choose one of {', '.join(PLOT_KINDS)}")
    needs = {
        "roc": "verification",
        "distances": "verification",
        "retrieval": "retrieval",
        "oneshot": "fewshot",
    }
    protocols = (needs[kind],) if kind in needs else ()
    with tempfile.TemporaryDirectory() as scratch:  # the evaluation's other figures go
        result = evaluate_run(run, protocols, seed=seed, episodes=10, out=Path(scratch))
        if kind not in result.figures:
            raise ConfigError(
                f"{run} cannot draw {kind!r}: its data has no images or no training log"
            )
        target = run / "figures" / f"{kind}.png"
        target.parent.mkdir(exist_ok=True)
        write_bytes_atomic(target, result.figures[kind].read_bytes())
    typer.echo(str(target))
