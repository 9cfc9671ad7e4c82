"""siamese: similarity learning with Siamese networks.

Shared-weight encoders trained with contrastive or triplet loss, then used for verification,
one-shot identification, retrieval and novelty detection.

The public names below are imported on first use, so that `siamese --help` and the error
classes do not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from siamese.lazy_exports import lazy_getattr, public_names

__version__ = "0.1.0"

_PUBLIC = public_names(
    {
        "siamese.errors": (
            "SiameseError",
            "ConfigError",
            "DataError",
            "OutputError",
            "CheckpointError",
        ),
        "siamese.data.labeled": ("LabeledData", "SkippedFile"),
        "siamese.data.sources": ("load_dataset",),
        "siamese.data.splits": ("split_data", "DataSplit"),
        "siamese.data.datasets.glyphs": ("load_glyphs",),
        "siamese.distances": ("pairwise_distances",),
        "siamese.losses": (
            "LossOutput",
            "TripletLoss",
            "ContrastiveLoss",
            "PairClassifierLoss",
            "triplet_margin_loss",
            "contrastive_loss",
        ),
        "siamese.models.convnet": ("ConvNet",),
        "siamese.models.embedding": ("EmbeddingNet", "build_embedding_net"),
        "siamese.data.sampling.pk_sampler": ("PKSampler",),
        "siamese.data.sampling.offline_tuples": ("TupleBatches",),
        "siamese.config": ("RunConfig", "load_config"),
        "siamese.training.training_run": ("train_run",),
        "siamese.training.loop": ("fit",),
        "siamese.models.files": ("load_model", "load_siamese_net", "save_model"),
        "siamese.run_evaluation": ("evaluate_run",),
        "siamese.models.builder": ("build_encoder", "ENCODERS"),
        "siamese.models.siamese_net": ("SiameseNet",),
        "siamese.recognition.onnx_recognizer": ("OnnxRecognizer",),
    }
)

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

__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
