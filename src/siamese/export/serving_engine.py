"""Which runtime executes a model that serves requests: onnxruntime where it can, else PyTorch.

On these CPUs onnxruntime runs the same network several times faster than eager PyTorch at
the small batches a service sees (`benchmarks/bench_export.py`). So `siamese serve` and the
`siamese gallery` commands load a run through `load_serving_recognizer`, which exports the
run to ONNX on first use — verified against the PyTorch model exactly as `siamese export`
does (`export_model`) — caches the export, and runs it with onnxruntime. The cache is keyed by
the SHA-256 of the run's weights: retraining or replacing them makes a new export, and an
export whose file no longer matches its recorded hash is never loaded (`OnnxRecognizer`
checks). The run stays the source of truth for what is not in the weights: its current
thresholds and preprocessing (a later `siamese calibrate`) are applied over the export's.

Where the export is cached: `RUN/exports/onnx-<first 16 hex digits of the weights' SHA-256>`,
else (the run folder is read-only) the same name under the user's cache directory
(`siamese.cache.cache_dir`). Processes that start together (`--workers N`) take a file
lock, so one exports and the others load its result.

PyTorch is used instead, with the reason stated (`EngineChoice.reason`), when: `engine` is
"pytorch"; the device is a GPU (the PyTorch path is the one measured there); the run decides
with a pair classifier's head (an export holds only the embedding network); the `export`
extra (onnx, onnxscript, onnxruntime) is not installed; or the export fails or disagrees with
the PyTorch model. A folder that is already an ONNX export runs under onnxruntime as given.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from siamese.cache import cache_dir
from siamese.errors import CheckpointError, ConfigError, SiameseError
from siamese.recognition.recognition_model import RecognitionModel
from siamese.recognition.recognizer_loading import load_recognizer

log = logging.getLogger("siamese.export")

ENGINES = ("auto", "onnxruntime", "pytorch")
EXPORT_MODULES = ("onnx", "onnxscript", "onnxruntime")
"""What exporting and running an ONNX model needs (the `export` extra)."""


@dataclass(frozen=True)
class EngineChoice:
    """Which runtime embeds, and why.

    Attributes:
        engine: "onnxruntime" or "pytorch".
        reason: why, in words (quoted by `GET /v1/model` and `siamese gallery stats`).
        export_dir: the ONNX export folder run by onnxruntime (None under PyTorch).
        max_abs_difference: the largest difference between the export's embeddings and the
            PyTorch model's when it was verified (None under PyTorch).
    """

    engine: str
    reason: str
    export_dir: str | None = None
    max_abs_difference: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def missing_export_modules() -> list[str]:
    """The modules of the `export` extra that are not installed."""
    return [m for m in EXPORT_MODULES if importlib.util.find_spec(m) is None]


def export_cache_folder(run_dir: Path, fingerprint: str) -> Path:
    """Where the ONNX export of `run_dir`'s weights is cached: beside the run when it can be
    written, else in the user's cache directory."""
    name = f"onnx-{fingerprint[:16]}"
    beside = run_dir / "exports"
    try:
        beside.mkdir(exist_ok=True)
        if os.access(beside, os.W_OK):
            return beside / name
    except OSError:
        pass
    return cache_dir() / "exports" / name


@contextmanager
def _export_lock(folder: Path) -> Iterator[None]:
    """Held while one process exports into `folder` (others wait, then load its result)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_serving_recognizer(
    path: Path | str, device: str | None = None, engine: str = "auto"
) -> tuple[RecognitionModel, EngineChoice]:
    """The model at `path`, run by the fastest runtime that reproduces it, and the choice.

    Args:
        path: a run or model folder, or an ONNX export folder.
        device: auto (None), cpu, cuda, cuda:N or mps.
        engine: "auto" (onnxruntime where it can, else PyTorch), "onnxruntime" (an error
            where it cannot) or "pytorch".
    Raises:
        ConfigError: an unknown engine; "onnxruntime" asked for where it cannot run.
        CheckpointError: no model at `path`, or its files damaged.
    """
    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    from siamese.recognition.onnx_recognizer import is_onnx_export

    if is_onnx_export(path):
        if engine == "pytorch":
            raise ConfigError(
                f"{path} is an ONNX export, which only onnxruntime runs: give the run folder "
                "for --engine pytorch"
            )
        recognizer = load_recognizer(path, device)
        verified = recognizer.description.get("verified") or {}
        return recognizer, EngineChoice(
            "onnxruntime",
            "the model given is an ONNX export",
            str(path),
            verified.get("max_abs_difference"),
        )
    pytorch = load_recognizer(path, device)
    if engine == "pytorch":
        return pytorch, EngineChoice("pytorch", "--engine pytorch")
    why_not = _why_not_onnx(pytorch, device)
    if why_not is None:
        try:
            return _onnx_of(pytorch, device)
        except SiameseError as err:
            why_not = f"the ONNX export failed ({str(err).splitlines()[0]})"
        except Exception as err:  # the exporter's own failures: serve on, with PyTorch
            log.warning("ONNX export of %s failed", path, exc_info=True)
            why_not = f"the ONNX export failed ({type(err).__name__}: {err})"
    if engine == "onnxruntime":
        raise ConfigError(f"--engine onnxruntime: cannot run {path} with it: {why_not}")
    return pytorch, EngineChoice("pytorch", why_not)


def _why_not_onnx(pytorch: RecognitionModel, device: str | None) -> str | None:
    """Why this model cannot run under onnxruntime here, or None."""
    if (device or "auto").strip().lower() not in ("auto", "cpu"):
        return f"--device {device}: PyTorch runs the model on the GPU"
    if getattr(pytorch, "device", None) is not None and str(pytorch.device) != "cpu":
        return f"PyTorch runs the model on {pytorch.device}"
    if pytorch.head is not None:
        return "the run decides with a pair classifier's head, which an export does not hold"
    missing = missing_export_modules()
    if missing:
        return (
            f"the export extra is not installed ({', '.join(missing)} missing): "
            "pip install 'siamese[export]'"
        )
    return None


def _onnx_of(
    pytorch: RecognitionModel, device: str | None
) -> tuple[RecognitionModel, EngineChoice]:
    """The cached (else new, verified) ONNX export of `pytorch`'s run, loaded."""
    from siamese.export.model_export import export_model, read_export
    from siamese.recognition.onnx_recognizer import OnnxRecognizer, device_providers

    run_dir = Path(pytorch.model_dir)
    folder = export_cache_folder(run_dir, pytorch.fingerprint)
    providers = device_providers(device)
    with _export_lock(folder):
        record = _current_export(folder, pytorch.fingerprint)
        onnx = None
        if record is not None:
            try:
                onnx = OnnxRecognizer.load(folder, providers=providers)
            except CheckpointError:  # its file altered or incomplete: export it again
                log.warning("the cached export in %s is damaged; exporting again", folder)
        if onnx is None:
            _quietly(export_model, run_dir, folder, "onnx")
            record = read_export(folder)
            onnx = OnnxRecognizer.load(folder, providers=providers)
            reason = "exported to ONNX on first use and verified against the PyTorch model"
        else:
            reason = "its cached ONNX export, verified against the PyTorch model when made"
    assert record is not None
    # the run, not the export, says how to decide and prepare (a later `siamese calibrate`)
    for key in ("thresholds", "preprocessing"):
        onnx.description[key] = pytorch.description.get(key)
    onnx.preprocessing = pytorch.preprocessing
    onnx.model_dir = run_dir
    # what to do without thresholds is the run's to say (calibrate the run; the cached
    # export follows it), not a standalone export's ("export it again")
    onnx.no_thresholds_message = pytorch.no_thresholds_message  # type: ignore[method-assign]
    verified = record.get("verified") or {}
    return onnx, EngineChoice(
        "onnxruntime", reason, str(folder), verified.get("max_abs_difference")
    )


def _quietly(work: Any, *args: Any) -> Any:
    """`work(*args)` without the exporter's warnings and log lines: an export made on first
    use must not mix into a command's output (`--json`) or a service's log; a failure still
    raises, and the export is verified either way."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return work(*args)
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _current_export(folder: Path, fingerprint: str) -> dict[str, Any] | None:
    """The export in `folder` when it is of these weights, else None (none, or stale)."""
    from siamese.export.model_export import read_export

    if not (folder / "export.json").is_file():
        return None
    try:
        record = read_export(folder)
    except SiameseError:
        return None
    if record.get("source_sha256") != fingerprint or record.get("model_format") != "onnx":
        return None
    return record


__all__ = [
    "ENGINES",
    "EngineChoice",
    "export_cache_folder",
    "load_serving_recognizer",
    "missing_export_modules",
]
