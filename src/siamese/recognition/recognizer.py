"""A trained model put to use: embed images, compare two of them against a calibrated threshold.

from siamese.recognition import Recognizer

recognizer = Recognizer.load("runs/orl")          # a run directory or a model folder
z = recognizer.embed(["a.png", "b.png"])          # (2, D) float32
result = recognizer.compare("a.png", "b.png")     # distance, threshold, FAR, decision

The same without torch, from a `siamese export --format onnx` folder: `OnnxRecognizer`
(`siamese.recognition.onnx_recognizer`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siamese.data.labeled import LabeledData
from siamese.devices import model_device, resolve_device
from siamese.errors import CheckpointError
from siamese.evaluation.embed import embed as embed_inputs
from siamese.evaluation.verification import pair_dissimilarity
from siamese.models.files import load_model_and_head
from siamese.recognition.decisions import Comparison
from siamese.recognition.model_inputs import (
    ImageInput,
    Preprocessing,
    as_image_list,
    model_input,
)
from siamese.recognition.recognition_model import RecognitionModel
from siamese.recognition.thresholds import Thresholds, calibrate

__all__ = ["Comparison", "Recognizer"]


class Recognizer(RecognitionModel):
    """A trained model with its preprocessing, distance and calibrated thresholds.

    Attributes:
        model: the embedding network, in evaluation mode.
        head: the pair classifier of a run that trained one (decisions use 1 − p(same)), or None.
        description: the model's model.json.
        model_dir: where the model files are.
        device: where the model runs (`siamese.devices.resolve_device`'s names; None: where
            `model` already is). The embeddings it returns are in host memory.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        description: dict[str, Any],
        model_dir: Path,
        head: torch.nn.Module | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.device = model_device(model) if device is None else resolve_device(device)
        self.model = model.eval().to(self.device)
        self.head = head.to(self.device) if head is not None else None
        self.description = description
        self.model_dir = model_dir
        self.preprocessing = Preprocessing.from_description(description)

    @classmethod
    def load(cls, path: Path | str, device: str | torch.device | None = "auto") -> Recognizer:
        """The model of a run directory, a folder holding model.json and model.safetensors,
        or that model.json itself, on `device` (auto: CUDA when torch sees a GPU).

        Raises:
            CheckpointError: no model there, or files altered since training.
            ConfigError: a device this machine does not have.
        """
        folder = Path(path)
        if folder.is_file() and folder.name == "model.json":
            folder = folder.parent
        if not folder.exists():
            raise CheckpointError(
                f"{folder}: no such run or model folder; give the --out folder of `siamese "
                "train`, or a folder with model.json and model.safetensors"
            )
        model, head = load_model_and_head(folder)  # checks the weights' fingerprint
        description = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        return cls(model, description, folder, head=head, device=device)

    # ------------------------------------------------------------------------------------
    # Using it

    def prepare(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """The model's inputs for `images` (see `siamese.recognition.model_inputs.ImageInput`):
        (N, C, H, W) uint8, decoded, converted and resized as the model declares."""
        return torch.from_numpy(model_input(as_image_list(images), self.preprocessing))

    def embed_prepared(
        self, x: torch.Tensor | np.ndarray, batch_size: int = 256, progress: bool = False
    ) -> torch.Tensor:
        """(N, D) float32 embeddings of model inputs from `prepare` (N, *input_shape)."""
        x = torch.as_tensor(x)
        if x.shape[0] == 0:
            return torch.empty((0, self.embedding_dim), dtype=torch.float32)
        return embed_inputs(self.model, x, batch_size, progress).cpu()

    def calibrate(self, data: LabeledData, description: str, progress: bool = False) -> Thresholds:
        """Thresholds measured on labelled data already in the model's input form
        (`siamese.recognition.thresholds.calibrate`); store them with `write_thresholds`.

        Args:
            data: examples of identities the model did not train on, x (N, *input_shape).
            description: the data, in words (kept with the thresholds).
        """
        z = embed_inputs(self.model, data.x, progress=progress)
        return calibrate(z, data.y, self.metric, description, head=self.head)

    def dissimilarity(
        self, z1: torch.Tensor | np.ndarray, z2: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        """(P,) dissimilarities of matching rows of (P, D) embeddings, on `scale` (computed on
        the model's device, returned in host memory)."""
        z1, z2 = torch.as_tensor(z1).to(self.device), torch.as_tensor(z2).to(self.device)
        return pair_dissimilarity(z1, z2, self.metric, self.head).cpu()
