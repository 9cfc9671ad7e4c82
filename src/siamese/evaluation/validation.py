"""The validation a training run does every few epochs: on held-out examples, how well the
embedding retrieves (leave-one-out precision@1) and verifies pairs (ROC AUC and EER over the
same pairs `siamese evaluate` draws: `verification.labelled_pairs`)."""

from __future__ import annotations

import torch

from siamese.data.labeled import LabeledData
from siamese.distances import Metric
from siamese.evaluation.embed import embed
from siamese.evaluation.retrieval import answerable_queries, precision_at_1
from siamese.evaluation.verification import (
    PairHead,
    labelled_pairs,
    pair_dissimilarity,
    roc_curve,
)

HIGHER_IS_BETTER: dict[str, bool] = {"precision_at_1": True, "roc_auc": True, "eer": False}


def validate(
    model: torch.nn.Module,
    data: LabeledData,
    metric: Metric | str = "euclidean",
    n_pairs: int = 20_000,
    seed: int = 0,
    head: PairHead | None = None,
) -> dict[str, float]:
    """Validation metrics of `model` on `data`.

    Args:
        model: maps (B, ...) inputs to (B, D) embeddings.
        data: held-out examples (other classes than training for open-set validation).
        metric: the distance the model is trained for.
        head: a pair classifier the run trains: pairs are then scored by it (1 − p(same)),
            not by distance.
        n_pairs: the most pairs used for ROC AUC and EER (`labelled_pairs`: all of them when
            there are no more, else a seeded balanced sample).
    Returns:
        `precision_at_1`, `roc_auc`, `eer` and `queries` (the answerable queries); a metric
        that the data cannot give (a single class, classes of one example) is NaN.
    """
    z = embed(model, data.x)
    nan = float("nan")
    queries = int(answerable_queries(data.y).sum())
    out = {"precision_at_1": nan, "roc_auc": nan, "eer": nan, "queries": float(queries)}
    if queries:
        out["precision_at_1"] = precision_at_1(z, data.y, metric=metric)
    if queries and int(torch.unique(data.y).numel()) >= 2:
        i, j, same = labelled_pairs(data.y, max_pairs=n_pairs, seed=seed)
        curve = roc_curve(pair_dissimilarity(z[i], z[j], metric, head), same)
        out["roc_auc"], out["eer"] = curve.auc(), curve.eer()
    return out
