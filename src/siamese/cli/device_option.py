"""`--device`, the option every command that runs a model takes."""

from __future__ import annotations

from typing import Annotated

import typer

DeviceOption = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="Where the model runs: auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda, "
        "cuda:N or mps.",
        show_default=False,
    ),
]
"""The `--device` option (None: the command's default, auto)."""
