"""siamese: similarity learning with Siamese networks.

Shared-weight encoders trained with contrastive or triplet loss, then used for verification,
one-shot identification, retrieval and novelty detection.

The public names below are imported on first use, so that `siamese --help` and the error
classes do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "SiameseError": "siamese.errors",
    "ConfigError": "siamese.errors",
    "DataError": "siamese.errors",
    "OutputError": "siamese.errors",
    "CheckpointError": "siamese.errors",
    "LabeledData": "siamese.data.labeled",
    "SkippedFile": "siamese.data.labeled",
    "load_dataset": "siamese.data.sources",
    "split_data": "siamese.data.splits",
    "DataSplit": "siamese.data.splits",
    "load_glyphs": "siamese.data.datasets.glyphs",
    "pairwise_distances": "siamese.distances",
    "LossOutput": "siamese.losses",
    "TripletLoss": "siamese.losses",
    "ContrastiveLoss": "siamese.losses",
    "PairClassifierLoss": "siamese.losses",
    "triplet_margin_loss": "siamese.losses",
    "contrastive_loss": "siamese.losses",
    "ConvNet": "siamese.models.convnet",
    "EmbeddingNet": "siamese.models.embedding",
    "PKSampler": "siamese.data.sampling.pk_sampler",
    "TupleBatches": "siamese.data.sampling.offline_tuples",
    "RunConfig": "siamese.config",
    "load_config": "siamese.config",
    "train_run": "siamese.training.training_run",
    "fit": "siamese.training.loop",
    "load_model": "siamese.models.files",
    "load_siamese_net": "siamese.models.files",
    "save_model": "siamese.models.files",
    "evaluate_run": "siamese.run_evaluation",
    "build_embedding_net": "siamese.models.embedding",
    "build_encoder": "siamese.models.builder",
    "ENCODERS": "siamese.models.builder",
    "SiameseNet": "siamese.models.siamese_net",
    "OnnxRecognizer": "siamese.recognition.onnx_recognizer",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from siamese.config import RunConfig, load_config
    from siamese.data.datasets.glyphs import load_glyphs
    from siamese.data.labeled import LabeledData, SkippedFile
    from siamese.data.sampling.offline_tuples import TupleBatches
    from siamese.data.sampling.pk_sampler import PKSampler
    from siamese.data.sources import load_dataset
    from siamese.data.splits import DataSplit, split_data
    from siamese.distances import pairwise_distances
    from siamese.errors import CheckpointError, ConfigError, DataError, OutputError, SiameseError
    from siamese.losses import (
        ContrastiveLoss,
        LossOutput,
        PairClassifierLoss,
        TripletLoss,
        contrastive_loss,
        triplet_margin_loss,
    )
    from siamese.models.convnet import ConvNet
    from siamese.models.embedding import EmbeddingNet, build_embedding_net
    from siamese.models.files import load_model, load_siamese_net, save_model
    from siamese.recognition.onnx_recognizer import OnnxRecognizer
    from siamese.run_evaluation import evaluate_run
    from siamese.training.loop import fit
    from siamese.training.training_run import train_run


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'siamese' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
