"""An exported model put to use without torch: `Recognizer`'s embed and compare on the
`model.onnx` and `export.json` that `siamese export RUN --format onnx --out DIR` writes, run by
onnxruntime.

from siamese.recognition.onnx_recognizer import OnnxRecognizer

recognizer = OnnxRecognizer.load("exported/")     # the export folder (or its export.json)
z = recognizer.embed(["a.png", "b.png"])          # (2, D) float32 numpy
result = recognizer.compare("a.png", "b.png")     # distance, threshold, FAR, decision

This module, and everything it imports, imports no torch: numpy, Pillow and onnxruntime (and
the `faces` extra, for a model with a face step) are all it needs. Images are decoded and
prepared by the same code as `Recognizer`'s (`siamese.recognition.model_inputs`), the thresholds are
the run's own (export.json carries them), and the fingerprint is the run's weights' SHA-256,
so a gallery enrolled with the PyTorch model opens with its export, and the other way round.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from siamese.errors import CheckpointError, ConfigError, DataError
from siamese.recognition.model_inputs import Preprocessing
from siamese.recognition.recognition_model import RecognitionModel

EXPORT_FILE = "export.json"
EXPORT_EXTRA = "pip install 'siamese[export]'"
METRICS = ("euclidean", "sqeuclidean", "cosine")


class OnnxRecognizer(RecognitionModel):
    """An ONNX export with its preprocessing, distance and calibrated thresholds.

    Attributes:
        session: the onnxruntime InferenceSession of `model.onnx`.
        export: export.json, as written by `siamese export`.
        description: what `Recognizer.description` holds (model.json's "input_shape",
            "embedding_dim", "metric", "preprocessing", "thresholds", "sha256"), from export.json.
        model_dir: the export folder.
        head: always None (an export holds the embedding model only; a gallery checks it).
    """

    head = None

    def __init__(self, session: Any, export: dict[str, Any], model_dir: Path) -> None:
        self.session = session
        self.export = export
        self.model_dir = model_dir
        self.description = _description(export, model_dir)
        self.preprocessing = Preprocessing.from_description(self.description)
        self.input_name = str(export.get("input", {}).get("name", "images"))
        self.output_name = str(export.get("output", {}).get("name", "embeddings"))
        declared = {i.name: i.type for i in session.get_inputs()}
        if self.input_name not in declared:
            raise CheckpointError(
                f"{model_dir}: the model's input is {', '.join(declared)}, not "
                f"{self.input_name!r} as export.json says; export the run again"
            )
        self.input_dtype = np.uint8 if declared[self.input_name] == "tensor(uint8)" else np.float32

    @classmethod
    def load(
        cls,
        path: Path | str,
        providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
        threads: int | None = None,
    ) -> OnnxRecognizer:
        """The export in a `siamese export --format onnx` folder (or its export.json).

        Args:
            path: the folder holding export.json and model.onnx.
            providers: onnxruntime execution providers, most preferred first, e.g.
                ["CUDAExecutionProvider", "CPUExecutionProvider"] (default: the CPU's).
            threads: threads onnxruntime may use within an operator (default: its own choice,
                one per core).
        Raises:
            CheckpointError: not an export folder, a file missing, model.onnx altered since the
                export, or an export a recogniser cannot use (TorchScript, a pair classifier).
            ConfigError: onnxruntime is not installed, or lacks a provider asked for.
        """
        folder = Path(path)
        if folder.is_file() and folder.name == EXPORT_FILE:
            folder = folder.parent
        export = read_export_file(folder)
        model_file = folder / str(export.get("model_file", "model.onnx"))
        if not model_file.is_file():
            raise CheckpointError(
                f"{model_file} not found: the export folder {folder} is incomplete; export the "
                "run again: siamese export RUN --format onnx --out DIR"
            )
        payload = model_file.read_bytes()
        expected = export.get("model_sha256")
        if expected is not None and hashlib.sha256(payload).hexdigest() != expected:
            raise CheckpointError(
                f"{model_file} was altered since it was exported (its SHA-256 is not the one "
                f"{folder / EXPORT_FILE} records); export the run again: siamese export RUN "
                "--format onnx --out DIR"
            )
        session = _session(payload, model_file, providers, threads)
        return cls(session, export, folder)

    @property
    def providers(self) -> list[str]:
        """The execution providers the session runs on, most preferred first."""
        return list(self.session.get_providers())

    def no_thresholds_message(self) -> str:
        source = self.export.get("source_run", "RUN")
        return (
            f"{self.model_dir}: the export has no calibrated thresholds (its run had none). "
            "Measure them on labelled images of people or classes the model did not train "
            f"on with the run (siamese calibrate {source} --data folder:PATH), then export "
            "it again"
        )

    def embed_prepared(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """(N, D) float32 embeddings of model inputs from `prepare`: (N, *input_shape) uint8
        (a numpy array, or anything `np.asarray` reads, such as a CPU tensor).

        Raises:
            DataError: inputs of another shape or type than the model's.
        """
        x = np.asarray(x)
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise DataError(
                f"model inputs of shape {tuple(x.shape)}, but the model takes "
                f"(N, {', '.join(map(str, self.input_shape))}); make them with prepare()"
            )
        if x.dtype != self.input_dtype:
            if self.input_dtype == np.uint8:
                raise DataError(
                    f"model inputs of type {x.dtype}, but the model takes uint8 pixels "
                    "(0 … 255); make them with prepare()"
                )
            x = x.astype(self.input_dtype)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((x.shape[0], self.embedding_dim), dtype=np.float32)
        for start in range(0, x.shape[0], batch_size):
            batch = np.ascontiguousarray(x[start : start + batch_size])
            (z,) = self.session.run([self.output_name], {self.input_name: batch})
            out[start : start + batch.shape[0]] = z
        return out

    def dissimilarity(self, z1: Any, z2: Any) -> np.ndarray:
        """(P,) float64 distances, in `metric`, of matching rows of (P, D) embeddings (numpy
        arrays, or anything `np.asarray` reads)."""
        return paired_distances(np.asarray(z1), np.asarray(z2), self.metric)

    def __repr__(self) -> str:
        return (
            f"OnnxRecognizer({str(self.model_dir)!r}, fingerprint={self.fingerprint[:12]}…, "
            f"providers={self.providers})"
        )


def paired_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Distance between row i of `a` and row i of `b`, in float64 (what
    `siamese.distances.paired_distances` computes in float32).

    Args:
        a, b: (P, D) embeddings.
        metric: "euclidean", "sqeuclidean" or "cosine" (1 − cosine similarity, >= 0).
    Returns:
        (P,) float64 distances, >= 0.
    """
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two (P, D) arrays of one shape, got {a.shape} and {b.shape}")
    if metric == "cosine":
        norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        return np.maximum(1.0 - np.einsum("ij,ij->i", a, b) / norms, 0.0)
    squared = np.einsum("ij,ij->i", a - b, a - b)
    return squared if metric == "sqeuclidean" else np.sqrt(squared)


def is_onnx_export(path: Path | str) -> bool:
    """Whether `path` is an export folder (holding export.json), or its export.json."""
    folder = Path(path)
    return (folder.name == EXPORT_FILE and folder.is_file()) or (folder / EXPORT_FILE).is_file()


def read_export_file(folder: Path) -> dict[str, Any]:
    """export.json of an ONNX export folder, checked to be one a recogniser can use.

    Raises:
        CheckpointError: no such folder, not an export folder, a damaged or unknown
            export.json, a TorchScript export, or a pair classifier's.
    """
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder}: no such export folder; give the --out folder of `siamese export RUN "
            "--format onnx --out DIR`"
        )
    path = folder / EXPORT_FILE
    if not path.is_file():
        hint = (
            "it holds a run's model (model.json): use Recognizer, or export it first: siamese "
            f"export {folder} --format onnx --out DIR"
            if (folder / "model.json").is_file()
            else "give the --out folder of `siamese export RUN --format onnx --out DIR`"
        )
        raise CheckpointError(f"{folder}: not an export folder (no {EXPORT_FILE}); {hint}")
    try:
        export = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} cannot be read ({err}); export the run again") from None
    if not isinstance(export, dict) or not str(export.get("format", "")).startswith(
        "siamese-export/"
    ):
        raise CheckpointError(
            f"{path} is not an export description written by `siamese export`; export the run "
            "again: siamese export RUN --format onnx --out DIR"
        )
    if export.get("model_format") != "onnx":
        raise CheckpointError(
            f"{folder} holds a {export.get('model_format')} export; OnnxRecognizer runs ONNX "
            "exports: siamese export RUN --format onnx --out DIR (a TorchScript export runs "
            "with torch.jit.load)"
        )
    thresholds = export.get("thresholds") or {}
    if export.get("pair_head") or thresholds.get("metric") == "pair_head":
        raise CheckpointError(
            f"{folder} is the export of a run that trained a pair classifier, whose decisions "
            "need its pair head, which an export does not hold; use the run with Recognizer, "
            "or export a model trained with triplet or contrastive loss"
        )
    missing = [k for k in ("input", "output", "source_sha256") if k not in export]
    if missing:
        raise CheckpointError(
            f"{path} lacks {', '.join(missing)}; export the run again with this version"
        )
    return export


def _description(export: dict[str, Any], folder: Path) -> dict[str, Any]:
    """model.json's fields that `Recognizer.description` offers, from export.json."""
    try:
        input_shape = [int(v) for v in export["input"]["shape"][1:]]
        embedding_dim = int(export["output"]["shape"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        raise CheckpointError(
            f"{folder / EXPORT_FILE}: its input and output shapes cannot be read; export the "
            "run again"
        ) from None
    metric = str(export.get("metric", "euclidean"))
    if metric not in METRICS:
        raise CheckpointError(f"{folder / EXPORT_FILE}: unknown metric {metric!r}")
    return {
        "input_shape": input_shape,
        "embedding_dim": embedding_dim,
        "metric": metric,
        "preprocessing": export.get("preprocessing") or {},
        "thresholds": export.get("thresholds"),
        "sha256": str(export["source_sha256"]),
    }


def _session(
    payload: bytes,
    model_file: Path,
    providers: Sequence[str | tuple[str, dict[str, Any]]] | None,
    threads: int | None,
) -> Any:
    """An onnxruntime session of the model's bytes (the ones whose SHA-256 was checked)."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            f"running an ONNX export needs onnxruntime, which is not installed: {EXPORT_EXTRA} "
            "(or pip install onnxruntime; onnxruntime-gpu for CUDA)"
        ) from None
    chosen = list(providers) if providers is not None else ["CPUExecutionProvider"]
    available = onnxruntime.get_available_providers()
    unknown = [p if isinstance(p, str) else p[0] for p in chosen]
    unknown = [name for name in unknown if name not in available]
    if unknown:
        raise ConfigError(
            f"onnxruntime here has no {', '.join(unknown)} (it has {', '.join(available)}); "
            "for CUDAExecutionProvider install onnxruntime-gpu instead of onnxruntime"
        )
    options = onnxruntime.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(payload, sess_options=options, providers=chosen)
    except Exception as err:  # onnxruntime's own exception types are not public API
        raise CheckpointError(
            f"{model_file}: onnxruntime cannot load it ({str(err).splitlines()[0]}); export "
            "the run again"
        ) from None


__all__ = ["OnnxRecognizer", "is_onnx_export", "paired_distances", "read_export_file"]


def device_providers(device: str | None) -> list[str | tuple[str, dict[str, Any]]] | None:
    """onnxruntime's execution providers for one of `siamese.devices`' names, without torch:
    cpu → the CPU; cuda / cuda:N → that GPU (then the CPU for what it lacks); auto (None) →
    the GPU when this onnxruntime has CUDA, else the CPU.

    Raises:
        ConfigError: mps or an unknown name (onnxruntime runs on the CPU or CUDA here).
    """
    name = (device or "auto").strip().lower()
    cpu = "CPUExecutionProvider"
    # Under torchrun each process takes the GPU of its LOCAL_RANK, as the torch path does.
    local = {"device_id": int(os.environ.get("LOCAL_RANK", "0"))}
    if name == "cpu":
        return [cpu]
    if name == "auto":
        try:
            import onnxruntime
        except ImportError:
            return None  # the session says what to install
        has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        return [("CUDAExecutionProvider", local), cpu] if has_cuda else [cpu]
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise ConfigError(
            f"--device = {device!r}: an ONNX export runs on auto, cpu, cuda or cuda:N "
            "(onnxruntime's CPU and CUDA providers)"
        )
    chosen = {"device_id": int(match.group(1))} if match.group(1) else local
    return [("CUDAExecutionProvider", chosen), cpu]
