"""The `siamese` typer app, the commands it mounts, and `main`: the entry point that turns
user errors, warnings and Ctrl-C into plain messages."""

from __future__ import annotations

import sys
import warnings
from typing import Annotated

import typer
from rich.console import Console

from siamese.cli.cluster import cluster
from siamese.cli.datasets import datasets_app
from siamese.cli.demo import demo
from siamese.cli.evaluate import evaluate
from siamese.cli.export import export
from siamese.cli.gallery import gallery_app
from siamese.cli.info import info
from siamese.cli.plot import plot
from siamese.cli.recognize import calibrate, compare, embed
from siamese.cli.serve import serve_app
from siamese.cli.sweep import sweep
from siamese.cli.train import options_epilog, train
from siamese.errors import RunInterrupted, SiameseError

_CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="siamese",
    help="Similarity learning with Siamese networks: train, verify, identify from one example.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=_CONTEXT,
)


def _print_version(value: bool) -> None:
    if value:
        from siamese import __version__

        typer.echo(f"siamese {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Similarity learning with Siamese networks."""


app.add_typer(datasets_app, name="datasets", context_settings=_CONTEXT)
app.command("train", epilog=options_epilog())(train)
app.command("evaluate")(evaluate)
app.command("plot")(plot)
app.command("sweep")(sweep)
app.command("demo")(demo)
app.command("embed")(embed)
app.command("compare")(compare)
app.command("calibrate")(calibrate)
app.command("cluster")(cluster)
app.command("export")(export)
app.command("info")(info)
app.add_typer(gallery_app, name="gallery", context_settings=_CONTEXT)
app.add_typer(serve_app, name="serve", context_settings=_CONTEXT)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """Warnings reach the user as the command's own lines, without Python's source location."""
    Console(stderr=True, soft_wrap=True).print(f"[yellow]warning:[/] {message}", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; print user errors as one message, without a traceback.

    Exit codes: 0 done, 1 a user error, 2 a usage error, 130 interrupted (Ctrl-C).
    """
    from siamese.training.allocator import keep_large_allocations_in_heap

    keep_large_allocations_in_heap()
    err_console = Console(stderr=True, soft_wrap=True)
    warnings.showwarning = _show_warning
    try:
        app(args=argv, standalone_mode=True, prog_name="siamese")
    except RunInterrupted as err:  # a training run says what it kept and how to resume
        err_console.print(f"[bold yellow]stopped:[/] {err}", highlight=False)
        sys.exit(130)
    except SiameseError as err:
        err_console.print(f"[bold red]error:[/] {err}", highlight=False)
        sys.exit(1)
    except SystemExit as done:
        # typer turns Ctrl-C anywhere else into a bare exit 130.
        if done.code == 130:
            err_console.print("[bold yellow]stopped[/] (Ctrl-C)", highlight=False)
        raise
    except KeyboardInterrupt:
        err_console.print("[bold yellow]stopped[/] (Ctrl-C)", highlight=False)
        sys.exit(130)
