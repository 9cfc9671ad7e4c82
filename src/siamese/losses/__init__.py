"""Losses on embeddings. Label convention for pairs: 1 = same class (genuine), 0 = different.

A loss takes embeddings as given (normalising them is the model's job) and returns a
`LossOutput`: the scalar loss and statistics of the step. When nothing is valid (one class in
the batch, a batch of one) the loss is 0 and still connected to the embeddings, never NaN.

The distance-based losses are sums of functions of single distances, so each computes its
value and its derivative with respect to every distance without autograd, and returns
`loss_from_distance_weights`: a scalar equal to the value whose gradient flows through the
distance matrix only. That keeps one (B, R) tensor in the graph instead of a chain of them
(a third of the memory and time at batch 4,096). Gradients are exact to first order;
second derivatives through these losses are not available.

The classification losses (`arcface`, `subcenter_arcface`, `cosface`, `normalized_softmax`,
on `class_weights`) own one learnable weight per training class and take class indices as
labels; they compute through autograd (a (B, C) cosine matrix, not a (B, R) distance matrix).

May import `distances`, `mining` and `errors` only: losses know nothing of data or training.
"""

from siamese.losses.arcface import ArcFaceLoss
from siamese.losses.class_weights import ClassWeightLoss
from siamese.losses.contrastive import ContrastiveLoss, contrastive_loss
from siamese.losses.cosface import CosFaceLoss
from siamese.losses.normalized_softmax import NormalizedSoftmaxLoss
from siamese.losses.output import LossOutput, loss_from_distance_weights
from siamese.losses.pair_classifier import PairClassifierLoss
from siamese.losses.subcenter_arcface import SubCenterArcFaceLoss
from siamese.losses.triplet import (
    TRIPLET_MINING,
    TripletLoss,
    batch_all_triplet_loss,
    reduce_triplets,
    triplet_margin_loss,
)

__all__ = [
    "TRIPLET_MINING",
    "ArcFaceLoss",
    "ClassWeightLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "LossOutput",
    "NormalizedSoftmaxLoss",
    "PairClassifierLoss",
    "SubCenterArcFaceLoss",
    "TripletLoss",
    "batch_all_triplet_loss",
    "contrastive_loss",
    "loss_from_distance_weights",
    "reduce_triplets",
    "triplet_margin_loss",
]
