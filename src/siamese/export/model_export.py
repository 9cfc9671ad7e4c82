"""`siamese export RUN --format onnx|torchscript --out DIR`.

The exported graph takes uint8 images (N, C, H, W), as files decode, with a dynamic batch size,
and gives (N, D) embeddings. `export.json` beside it holds
what a deployment needs to use them as the run does: the input layout, the preprocessing (the
resize mode and any face step), the metric and the calibrated thresholds, and the SHA-256 of the
run's weights and of the exported file. Every export is checked before it is kept: the exported
model and the PyTorch model embed the same real images (up to 64 of the run's validation, else
training, examples, at batch 1 and at full batch) and must agree to `TOLERANCE`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siamese.atomic_files import write_json_atomic
from siamese.errors import ConfigError, OutputError
from siamese.models.files import PAIR_HEAD_FILE, load_model, read_model_files

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-4
EXPORT_FORMAT = "siamese-export/1"
_FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}


@dataclass(frozen=True)
class ExportReport:
    """What `export_model` wrote and how it checked it."""

    format: str
    model_file: str
    description_file: str
    verified_on: str
    examples: int
    max_abs_difference: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_model(
    run_dir: Path | str, out: Path | str, format: str = "onnx", opset: int | None = None
) -> ExportReport:
    """Export the run's model to `out` (created) and verify it.

    Args:
        run_dir: a run directory (or a folder with model.json and model.safetensors).
        out: the folder to write `model.onnx` / `model.torchscript.pt` and `export.json` into.
        format: "onnx" or "torchscript".
        opset: the ONNX opset (default: the exporter's).
    Raises:
        ConfigError: an unknown format, or ONNX asked for without its libraries.
        CheckpointError: the run's model files are missing or damaged.
        OutputError: the export disagrees with the run's model beyond TOLERANCE (nothing is
            kept), or `out` cannot be written.
    """
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    started = time.perf_counter()
    run_dir, out = Path(run_dir), Path(out)
    description, _ = read_model_files(run_dir)
    model = load_model(run_dir)
    images, verified_on = _verification_images(run_dir, description)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {out} ({err.strerror or err})") from None
    target = out / _FILES[format]
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        staged = Path(scratch) / target.name
        if format == "onnx":
            _to_onnx(model, images[:2], staged, opset)
            run = _onnx_runner(staged)
        else:
            _to_torchscript(model, images[:2], staged)
            run = _torchscript_runner(staged)
        with torch.no_grad():
            expected = model(images).numpy()
        difference = max(
            float(np.abs(run(images[:1].numpy()) - expected[:1]).max()),
            float(np.abs(run(images.numpy()) - expected).max()),
        )
        if not difference <= TOLERANCE:
            raise OutputError(
                f"the {format} export of {run_dir} gives embeddings up to {difference:.2e} away "
                f"from the PyTorch model's on {verified_on} (tolerance {TOLERANCE:g}); nothing "
                "was written. Please report it with the run's model.json"
            )
        staged.replace(target)
    payload = target.read_bytes()
    channels_shape = [int(v) for v in description["input_shape"]]
    record = {
        "format": EXPORT_FORMAT,
        "model_format": format,
        "model_file": target.name,
        "model_sha256": hashlib.sha256(payload).hexdigest(),
        "source_run": str(run_dir),
        "source_sha256": description["sha256"],
        "input": {
            "name": "images",
            "shape": ["N", *channels_shape],
            "dtype": "uint8 (0 … 255)",
        },
        "output": {"name": "embeddings", "shape": ["N", int(description["embedding_dim"])]},
        "metric": description.get("metric", "euclidean"),
        "preprocessing": description.get("preprocessing") or {},
        "thresholds": description.get("thresholds"),
        # A run that trained the pair classifier decides with its head, which the export
        # does not hold: its embeddings are exported, its decisions cannot be.
        "pair_head": (run_dir / PAIR_HEAD_FILE).is_file(),
        "verified": {
            "on": verified_on,
            "examples": int(images.shape[0]),
            "max_abs_difference": difference,
            "tolerance": TOLERANCE,
        },
    }
    write_json_atomic(out / "export.json", record)
    return ExportReport(
        format,
        str(target),
        str(out / "export.json"),
        verified_on,
        int(images.shape[0]),
        difference,
        round(time.perf_counter() - started, 2),
    )


def _verification_images(run_dir: Path, description: dict[str, Any]) -> tuple[torch.Tensor, str]:
    """Up to 64 of the run's own validation (else training) examples, as the model reads them;
    random uint8 images of the input shape for a folder without a run config."""
    shape = tuple(int(v) for v in description["input_shape"])
    why = "the folder has no run config with data"
    if (run_dir / "config.yaml").is_file():
        from siamese.config import load_config
        from siamese.data.derived.resized import fitted_to
        from siamese.errors import SiameseError
        from siamese.run_directory.data import load_training_data

        try:
            train, validation, _ = load_training_data(load_config(run_dir / "config.yaml"))
        except SiameseError as err:  # a deployment machine without the run's dataset
            why = f"the run's data is not available here: {str(err).splitlines()[0]}"
        else:
            use_validation = validation is not None and len(validation) > 0
            which = "validation" if use_validation else "training"
            data, _ = fitted_to(validation if use_validation else train, shape, "the run's data")
            count = min(64, len(data))
            return data.x[:count], f"{count} of the run's {which} examples"
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, *shape), dtype=torch.uint8, generator=generator)
    return x, f"16 random images ({why})"


def _to_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int | None) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError(
            "ONNX export needs onnx and onnxscript: pip install 'siamese[export]'"
        ) from None
    batch = torch.export.Dim("batch", min=1)
    kwargs: dict[str, Any] = {"opset_version": opset} if opset is not None else {}
    # without gradients, as inference runs it (a StridedConv2d is then a plain Conv2d)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["images"],
            output_names=["embeddings"],
            dynamic_shapes={"x": {0: batch}},
            dynamo=True,
            external_data=False,  # one self-contained file (embedding models are far below 2 GB)
            verbose=False,
            **kwargs,
        )


def _onnx_runner(path: Path) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "verifying an ONNX export needs onnxruntime: pip install 'siamese[export]'"
        ) from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(["embeddings"], {"images": x})[0]


def _to_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about Python bools of tensors (the uint8 check) it folds: the
        # export is verified against the model right after
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, (example,), check_trace=False)
    traced.save(str(path))


def _torchscript_runner(path: Path) -> Any:
    loaded = torch.jit.load(str(path))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(x)).numpy()

    return run


def read_export(folder: Path | str) -> dict[str, Any]:
    """`export.json` of an export folder."""
    return json.loads((Path(folder) / "export.json").read_text(encoding="utf-8"))
