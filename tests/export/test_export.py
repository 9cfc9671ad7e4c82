"""`siamese export`: ONNX (run by onnxruntime) and TorchScript exports equal the run's model on
real images at any batch size, and export.json carries what a deployment needs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from siamese.data.sources import load_dataset
from siamese.errors import ConfigError
from siamese.export.model_export import TOLERANCE, export_model, read_export
from siamese.models.files import load_model
from tests.cli_runner import run_cli


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_an_export_embeds_as_the_run_does(format: str, digits_model: Path, tmp_path: Path) -> None:
    if format == "onnx":
        pytest.importorskip("onnxruntime", reason="the export extra is not installed")
        pytest.importorskip("onnxscript", reason="the export extra is not installed")
    report = export_model(digits_model, tmp_path / "out", format)
    assert report.max_abs_difference <= TOLERANCE and report.examples > 10
    assert "validation examples" in report.verified_on
    record = read_export(tmp_path / "out")
    description = json.loads((digits_model / "model.json").read_text())
    assert record["source_sha256"] == description["sha256"]
    assert record["thresholds"] == description["thresholds"]
    assert record["input"]["shape"] == ["N", 1, 8, 8] and record["metric"] == "euclidean"
    # independent check, at other batch sizes, on other images
    x = load_dataset("digits").x[:37]
    with torch.no_grad():
        expected = load_model(digits_model)(x).numpy()
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(
            report.model_file, providers=["CPUExecutionProvider"]
        )
        for rows in (1, 37):
            got = session.run(["embeddings"], {"images": x[:rows].numpy()})[0]
            assert np.abs(got - expected[:rows]).max() <= TOLERANCE
    else:
        loaded = torch.jit.load(report.model_file)
        with torch.no_grad():
            got = loaded(x).numpy()
        assert np.abs(got - expected).max() <= TOLERANCE


def test_the_command_and_its_errors(digits_model: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = run_cli(
        [
            "export",
            str(digits_model),
            "--out",
            str(tmp_path / "ts"),
            "--format",
            "torchscript",
            "--json",
        ],
        capsys,
    )
    assert code == 0, out
    printed = [line for line in out.splitlines() if line.startswith("{")]
    assert json.loads(printed[-1])["format"] == "torchscript"
    with pytest.raises(ConfigError, match=r"--format must be one of onnx, torchscript"):
        export_model(digits_model, tmp_path / "x", "tflite")
    code, out = run_cli(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "y")], capsys)
    assert code != 0 and "model.json not found" in out
