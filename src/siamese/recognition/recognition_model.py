"""What every recogniser is: a trained embedding model with its preprocessing, its distance and
its calibrated thresholds, whichever runtime executes it.

`Recognizer` (PyTorch) and `OnnxRecognizer` (an ONNX export, run by onnxruntime) are the two
kinds; they differ only in how they embed model inputs and measure distances between
embeddings. Everything else — what the model is (metric, fingerprint, thresholds), preparing
images, the prepare → embed steps of recognition, comparing two images — is here, once.

Nothing here imports torch: `OnnxRecognizer` must run without it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from siamese.errors import ConfigError
from siamese.recognition.decisions import Comparison, Thresholds, accepts, read_thresholds
from siamese.recognition.model_inputs import (
    EmbeddedImages,
    ImageInput,
    PreparedImages,
    Preprocessing,
    as_image_list,
    model_input,
    prepare_images,
)


class RecognitionModel(ABC):
    """A model that embeds images, with the decision data of its run.

    Subclasses set `description` (model.json's fields: "input_shape", "embedding_dim",
    "metric", "preprocessing", "thresholds", "sha256"), `model_dir` and `head` (a pair
    classifier's head, or None), and implement `embed_prepared` and `dissimilarity`.
    """

    description: dict[str, Any]
    model_dir: Path
    head: Any = None
    preprocessing: Preprocessing

    # ------------------------------------------------------------------------------------
    # What the model is

    @property
    def metric(self) -> str:
        """The embedding distance: "euclidean", "sqeuclidean" or "cosine"."""
        return str(self.description.get("metric", "euclidean"))

    @property
    def scale(self) -> str:
        """The scale of decisions: the metric, or "pair_head" for a pair classifier."""
        return "pair_head" if self.head is not None else self.metric

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the run's weights: embeddings of two models compare only if it is equal
        (an export carries its run's, so a gallery opens with either)."""
        return str(self.description["sha256"])

    @property
    def embedding_dim(self) -> int:
        return int(self.description["embedding_dim"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one model input (or (D,) for vectors)."""
        return self.preprocessing.input_shape

    @property
    def thresholds(self) -> Thresholds | None:
        """The calibrated thresholds of the model (None if its run had none)."""
        return read_thresholds(self.description)

    def threshold(self, far: float | None = None) -> tuple[float, float]:
        """(threshold, FAR) at a calibrated false-accept rate (the smallest the calibration
        supports when `far` is None).

        Raises:
            ConfigError: the model has no calibrated thresholds, or none at `far`.
        """
        thresholds = self.thresholds
        if thresholds is None:
            raise ConfigError(self.no_thresholds_message())
        return thresholds.threshold(far)

    def no_thresholds_message(self) -> str:
        """What to do when the model has no calibrated thresholds."""
        return (
            f"{self.model_dir}: the model has no calibrated thresholds (its run had no "
            "validation classes). Measure them on labelled images of people or classes it did "
            f"not train on: siamese calibrate {self.model_dir} --data folder:PATH"
        )

    # ------------------------------------------------------------------------------------
    # Recognition's first two steps: prepare, embed

    def prepare(self, images: ImageInput | Sequence[ImageInput]) -> Any:
        """The model's inputs for `images` (see `siamese.recognition.model_inputs.ImageInput`):
        (N, C, H, W) uint8, decoded, converted and resized as the model declares (a numpy
        array; `Recognizer` gives a tensor)."""
        return model_input(as_image_list(images), self.preprocessing)

    def prepare_images(
        self,
        images: ImageInput | Sequence[ImageInput],
        every_face: bool = False,
        sources: Sequence[str] | None = None,
    ) -> PreparedImages:
        """Step one: `images` as model inputs, with their names, the faces found (photos
        without one left out when the model's face step says "skip"), every face with its
        box when `every_face` (`siamese.recognition.model_inputs.prepare_images`)."""
        return prepare_images(images, self.preprocessing, every_face, sources)

    def embed_images(self, prepared: PreparedImages, batch_size: int = 256) -> EmbeddedImages:
        """Step two: the prepared images' embeddings (a service runs this step in its
        micro-batcher instead, then calls `prepared.embedded(z)`)."""
        return prepared.embedded(self.embed_prepared(prepared.x, batch_size))

    def read(
        self,
        images: ImageInput | Sequence[ImageInput],
        every_face: bool = False,
        sources: Sequence[str] | None = None,
    ) -> EmbeddedImages:
        """Steps one and two: prepared and embedded images, ready for a gallery's decision."""
        return self.embed_images(self.prepare_images(images, every_face, sources))

    @abstractmethod
    def embed_prepared(self, x: Any, batch_size: int = 256) -> Any:
        """(N, D) float32 embeddings of model inputs from `prepare` (N, *input_shape)."""

    def embed(self, images: ImageInput | Sequence[ImageInput], batch_size: int = 256) -> Any:
        """Embeddings of images: one path, PIL image, array or tensor, a batch, or a list.

        Returns:
            (N, D) float32 embeddings, in the order given.
        Raises:
            DataError: an input that is missing, unreadable or not an image, named in the
                message.
        """
        return self.embed_prepared(self.prepare(images), batch_size)

    @abstractmethod
    def dissimilarity(self, z1: Any, z2: Any) -> Any:
        """(P,) dissimilarities of matching rows of (P, D) embeddings, on `scale`."""

    # ------------------------------------------------------------------------------------
    # Two images

    def compare(
        self,
        a: ImageInput,
        b: ImageInput,
        far: float | None = None,
        threshold: float | None = None,
    ) -> Comparison:
        """Whether two images show the same identity.

        Args:
            a, b: one image each.
            far: the calibrated false-accept rate to decide at (default: the smallest the
                model's calibration supports).
            threshold: decide at this dissimilarity instead (then `far` must be None).
        Raises:
            ConfigError: no calibrated threshold at `far` (and no `threshold` given).
            DataError: an input is not a readable image.
        """
        if threshold is not None and far is not None:
            raise ConfigError("give a false-accept rate or a threshold, not both")
        z = self.embed([a, b])
        if z.shape[0] != 2:
            raise ConfigError("compare takes one image on each side; use embed for batches")
        distance = float(np.asarray(self.dissimilarity(z[:1], z[1:]))[0])
        if threshold is None:
            value, rate = self.threshold(far)
            calibrated_on = self.thresholds.calibrated_on if self.thresholds else ""
        else:
            value, rate, calibrated_on = float(threshold), None, "given by the caller"
        same = accepts(distance, value)
        return Comparison(distance, value, rate, same, self.scale, calibrated_on)


__all__ = ["RecognitionModel"]
