"""Encoders and the embedding head.

Encoders by name (`build_encoder`), each documented in its module with its intended input and
parameter count: `mlp` (feature vectors, small images flattened), `seed_cnn` (the tutorials'
two-convolution network), `convnet` (four conv blocks, the few-shot backbone), `resnet` (a
small residual network for faces), `lstm` / `gru` (sequences, or images read row by row).
`EmbeddingNet` = encoder + projection to D + optional L2 normalisation; `SiameseNet` adds the
pair head of `PairClassifierLoss`. Model files (`files`: `save_model`, `load_model`,
`load_siamese_net`) are safetensors + JSON, never pickle. May import `losses` (for the pair
head), `errors` and `atomic_files`; knows nothing of runs, configs or data sources.
"""

from __future__ import annotations

from siamese.models.builder import ENCODERS, build_encoder, encoder_options
from siamese.models.convnet import ConvNet
from siamese.models.embedding import EmbeddingNet, build_embedding_net
from siamese.models.files import load_model, load_siamese_net, save_model
from siamese.models.mlp import MLP
from siamese.models.recurrent import RecurrentEncoder
from siamese.models.resnet import ResNet
from siamese.models.seed_cnn import SeedCNN
from siamese.models.siamese_net import SiameseNet

__all__ = [
    "ENCODERS",
    "MLP",
    "ConvNet",
    "EmbeddingNet",
    "RecurrentEncoder",
    "ResNet",
    "SeedCNN",
    "SiameseNet",
    "build_embedding_net",
    "build_encoder",
    "encoder_options",
    "load_model",
    "load_siamese_net",
    "save_model",
]
