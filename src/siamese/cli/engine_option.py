"""`--engine`, the option of the commands that serve a model (`serve`, `gallery enroll`,
`identify`, `verify`)."""

from __future__ import annotations

from typing import Annotated

import typer

EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="The model's runtime: auto (onnxruntime through an ONNX export made on first use, "
        "verified against the run and cached beside it, when the export extra is installed "
        "and the model runs on the CPU; else PyTorch), onnxruntime, or pytorch.",
    ),
]
"""The `--engine` option (`siamese.export.serving_engine`)."""
