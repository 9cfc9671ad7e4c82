"""Which recogniser a model folder holds, loaded: an `OnnxRecognizer` for an ONNX export, a
`Recognizer` (torch) for a run or model folder."""

from __future__ import annotations

from pathlib import Path

from siamese.errors import ConfigError
from siamese.recognition.onnx_recognizer import OnnxRecognizer, device_providers, is_onnx_export
from siamese.recognition.recognition_model import RecognitionModel


def load_recognizer(path: Path | str, device: str | None = None) -> RecognitionModel:
    """The model at `path`: an `OnnxRecognizer` for a `siamese export --format onnx` folder
    (it holds export.json), else a `Recognizer` (a run or model folder; imports torch).

    Args:
        device: auto (None), cpu, cuda, cuda:N or mps (`siamese.devices`); for an export,
            onnxruntime's provider for it (`device_providers`).
    Raises:
        CheckpointError: no model there, or its files altered or incomplete.
        ConfigError: an ONNX export without onnxruntime installed; a device not here.
    """
    if is_onnx_export(path):
        recognizer = OnnxRecognizer.load(path, providers=device_providers(device))
        wanted_cuda = (device or "").strip().lower().startswith("cuda")
        if wanted_cuda and "CUDAExecutionProvider" not in recognizer.providers:
            # onnxruntime falls back to the CPU quietly when its CUDA provider fails to load
            raise ConfigError(
                f"--device {device}: onnxruntime could not start its CUDA provider (a CUDA or "
                "cuDNN library missing or of another version; its log says which): install "
                "the onnxruntime-gpu matching this machine's CUDA, or use --device cpu"
            )
        return recognizer
    from siamese.recognition.recognizer import Recognizer

    return Recognizer.load(path, device=device or "auto")
