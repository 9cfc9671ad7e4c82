"""`siamese export RUN`: the run's model as ONNX or TorchScript, verified, with export.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def export(
    run: Annotated[
        Path, typer.Argument(help="A finished run (or model folder).", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", help="The folder to write into.")],
    format: Annotated[str, typer.Option("--format", help="onnx or torchscript.")] = "onnx",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Export the model (dynamic batch, uint8 images in, embeddings out) and check it against
    the run's model on the run's own images."""
    from siamese.export.model_export import export_model

    report = export_model(run, out, format)
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
        return
    typer.echo(
        f"{report.model_file}: {report.format}, verified on {report.verified_on} (max |Δ| "
        f"{report.max_abs_difference:.1e}); preprocessing and thresholds in "
        f"{report.description_file}"
    )
