"""siamese: similarity learning with Siamese networks.

Shared-weight encoders trained with contrastive or triplet loss, then used for verification,
one-shot identification, retrieval and novelty detection.
"""

from siamese.data import LabeledData, load_glyphs
from siamese.distances import pairwise_distances
from siamese.errors import CheckpointError, ConfigError, DataError, OutputError, SiameseError
from siamese.losses import LossOutput, TripletLoss, triplet_margin_loss
from siamese.models import ConvNet, EmbeddingNet
from siamese.sampling import PKSampler

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConvNet",
    "DataError",
    "EmbeddingNet",
    "LabeledData",
    "LossOutput",
    "OutputError",
    "PKSampler",
    "SiameseError",
    "TripletLoss",
    "load_glyphs",
    "pairwise_distances",
    "triplet_margin_loss",
]
