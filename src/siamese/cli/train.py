"""`siamese train CONFIG [--out RUN] [--set key=value ...] [--resume] [--quiet]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from siamese.cli.device_option import DeviceOption


def options_epilog() -> str:
    """Every config key with its type, default and help, for `--help` (paragraphs, because
    typer's rich help joins the lines of one paragraph; brackets escaped from rich markup)."""
    from rich.markup import escape

    from siamese.config import RunConfig
    from siamese.config.help import describe_options

    lines = ["[bold]Config keys[/] (YAML sections, or --set key=value):"]
    for key, type_name, default, help_text in describe_options(RunConfig):
        text = f"{key} ({type_name}, default {default})" + (f": {help_text}" if help_text else "")
        lines.append(escape(text))
    return "\n\n".join(lines)


def train(
    config: Annotated[
        Path | None,
        typer.Argument(
            help="A YAML run config (see configs/). Optional with --resume, which reads the "
            "run's own config.yaml.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Run directory (default: runs/<config name>)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a config key, e.g. --set optimizer.lr=0.01 (repeatable).",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in --out from its last checkpoint (on a finished run: "
            "rebuild missing or damaged model files from it).",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace the run already in --out as a whole (never other files)."
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress bar; log lines only.")
    ] = False,
    device: DeviceOption = None,
) -> None:
    """Train an embedding model from a config into a run directory."""
    from rich.console import Console

    from siamese.config import check_resume_changes, load_config
    from siamese.errors import ConfigError
    from siamese.training.training_run import train_run

    console = Console(highlight=False, soft_wrap=True)
    overrides = overrides or []
    if device is not None:  # the config's `device`, which a resumed run may change
        overrides = [*overrides, f"device={device}"]
    if config is None and not resume:
        raise ConfigError("give a config file (siamese train CONFIG), or --resume --out RUN")
    if out is None:
        if config is None:
            raise ConfigError("--resume needs --out RUN: the run directory to continue")
        out = Path("runs") / config.stem
    if resume and force:
        raise ConfigError(
            "--resume continues the run in --out and --force replaces it: give one of them"
        )
    if resume:
        saved = out / "config.yaml"
        if not saved.is_file():
            raise ConfigError(
                f"--resume: {saved} not found, so {out} holds no run to continue. Start it "
                "without --resume."
            )
        # The run's own config, or CONFIG when given; either way only the keys a resumed run
        # may change (its budget, bookkeeping, learning rate) may differ from the saved one.
        effective = load_config(config if config is not None else saved, overrides)
        source = f"{config}" if config is not None else "--set"
        check_resume_changes(load_config(saved), effective, source)
    else:
        effective = load_config(config, overrides)
    result = train_run(effective, out, resume=resume, quiet=quiet, console=console, force=force)
    if not result.is_main:
        return
    if result.best:
        best = result.best
        console.print(
            f"best validation: precision@1 {best['precision_at_1']:.4f}, ROC AUC "
            f"{best['roc_auc']:.4f}, EER {best['eer']:.4f}"
        )
    console.print(
        f"{result.steps} steps, {result.images_per_s:,.0f} images/s; run directory: {out}"
    )
