"""`siamese datasets list | check | download`: the named datasets in the data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

datasets_app = typer.Typer(
    help="List, check and download the named datasets (MNIST, Omniglot, ORL faces, …).",
    no_args_is_help=True,
)

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory (default: $SIAMESE_DATA_DIR, else ~/.cache/siamese).",
        show_default=False,
    ),
]

_STATE_STYLE = {
    "ready": "green",
    "bundled": "green",
    "missing": "yellow",
    "corrupt": "bold red",
    "ok": "green",
    "present": "green",
}


@datasets_app.command("list")
def list_datasets(data_dir: DataDirOption = None) -> None:
    """Every named dataset: what it is, its splits, and whether it is in the data directory."""
    from siamese.data.datasets.catalog import DATASETS, resolve_data_dir
    from siamese.data.local_copies import dataset_status

    root = resolve_data_dir(data_dir)
    table = Table(title=f"datasets in {root}", title_justify="left")
    for column in ("name", "splits", "here", "what"):
        table.add_column(column)
    for name in DATASETS:
        status = dataset_status(name, root, verify=False)
        style = _STATE_STYLE.get(status.state, "yellow")
        table.add_row(
            name, ", ".join(status.info.splits), f"[{style}]{status.state}[/]", status.info.summary
        )
    console = Console()
    console.print(table)
    console.print(
        "your own data: folder:PATH (one subfolder per class), arrays:PATH (.npz/.npy/CSV)"
    )


@datasets_app.command("check")
def check(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Datasets to check (default: all).", show_default=False),
    ] = None,
    data_dir: DataDirOption = None,
    load: Annotated[
        bool, typer.Option("--load", help="Also load every split and compare its counts.")
    ] = False,
) -> None:
    """Verify the datasets' files against their checksums (exit 1 if one is missing or bad:
    name the ones you need, as a check of all of them fails while any is missing)."""
    from siamese.data.datasets.catalog import DATASETS, dataset_info, how_to_get, resolve_data_dir
    from siamese.data.local_copies import EXPECTED_COUNTS, check_counts, dataset_status

    root = resolve_data_dir(data_dir)
    for name in names or []:
        dataset_info(name)  # unknown names fail before any work
    console = Console(highlight=False, soft_wrap=True)  # paths and commands stay whole for copying
    failed = False
    for name in names or list(DATASETS):
        status = dataset_status(name, root)
        style = _STATE_STYLE.get(status.state, "yellow")
        console.print(f"[bold]{name}[/] [{style}]{status.state}[/]  {status.folder}")
        for f in status.files:
            if f.state == "missing" and status.state == "ready":
                continue  # an accepted alternative stands in for it
            console.print(
                f"  [{_STATE_STYLE.get(f.state, 'yellow')}]{f.state:8}[/] {f.name}  {f.detail}"
            )
        if status.state not in ("ready", "bundled"):
            failed = True
            console.print(f"  get it: {how_to_get(status.info, root if data_dir else None)}")
        if load and status.state in ("ready", "bundled") and name in EXPECTED_COUNTS:
            for line in check_counts(name, root):
                console.print(f"  {line}")
                failed |= "PUBLISHED" in line
    if failed:
        raise typer.Exit(1)


@datasets_app.command("download")
def download(
    names: Annotated[list[str], typer.Argument(help="Datasets to download, or 'all'.")],
    data_dir: DataDirOption = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for a server.")
    ] = 60,
) -> None:
    """Download datasets from their official URLs into the data directory, checksums verified.

    A partial or corrupt download never stays behind: files are renamed into place only once
    complete and verified.
    """
    from siamese.data.datasets.catalog import DATASETS, dataset_info, resolve_data_dir
    from siamese.data.local_copies import download_dataset
    from siamese.errors import DataError

    root = resolve_data_dir(data_dir)
    if names == ["all"]:
        names = [n for n, info in DATASETS.items() if info.files]
    for name in names:
        dataset_info(name)
    console = Console(highlight=False, soft_wrap=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[str, int] = {}

        def report(file_name: str, done: int, total: int | None) -> None:
            if file_name not in tasks:
                tasks[file_name] = progress.add_task(file_name, total=total)
            progress.update(tasks[file_name], completed=done, total=total)

        failed: list[str] = []
        for name in names:
            try:
                paths = download_dataset(name, root, progress=report, timeout=timeout)
            except DataError as err:
                if len(names) == 1:
                    raise
                # One unreachable source must not stop the others: report it and go on.
                progress.console.print(f"[bold red]{name} failed:[/] {err}")
                failed.append(name)
                continue
            for path in paths:
                progress.console.print(f"{name}: {path}")
    if failed:
        console.print(f"[bold red]not downloaded:[/] {', '.join(failed)}")
        raise typer.Exit(1)
