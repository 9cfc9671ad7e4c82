"""Novelty detection: does an input belong to the classes the model knows?

Two detectors, each giving a score per input where higher means more novel:

- `GiniDetector`, the tutorial's: a softmax probe (`evaluation.probe`) trained on frozen
  embeddings of the known classes; an input whose class probabilities are spread out (a high
  Gini impurity) is novel.
- `nearest_gallery_distance`: the distance from an input's embedding to the nearest enrolled
  (gallery) embedding.

A score becomes a decision with a threshold calibrated on in-distribution inputs to a target
false-alarm rate (`novelty_threshold`); `novelty_auroc` measures how well the scores separate
an in-distribution set from an out-of-distribution set regardless of the threshold.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from siamese.distances import Metric, distance_blocks
from siamese.errors import ConfigError, DataError
from siamese.evaluation.probe import LinearProbe, train_probe
from siamese.evaluation.verification import roc_auc


def gini_impurity(probabilities: torch.Tensor) -> torch.Tensor:
    """Gini impurity of each row of class probabilities: 1 − Σ p².

    The tutorial calls it the Gini coefficient. It is 0 for a one-hot row (a confident
    prediction) and 1 − 1/C for a uniform row over C classes.

    Args:
        probabilities: (N, C) rows summing to 1.
    Returns:
        (N,) impurities in [0, 1 − 1/C], in the dtype of `probabilities`.
    """
    if probabilities.ndim != 2:
        raise DataError(f"probabilities must be (N, C), got shape {tuple(probabilities.shape)}")
    return (1.0 - (probabilities * probabilities).sum(dim=1)).clamp_min(0.0)


def _scores(scores: torch.Tensor, name: str) -> torch.Tensor:
    scores = scores.detach().double().flatten().cpu()
    if scores.numel() == 0:
        raise DataError(f"{name} is empty: novelty metrics need at least one score in each set")
    if not torch.isfinite(scores).all():
        raise DataError(f"{name} contain NaN or inf")
    return scores


def novelty_threshold(in_scores: torch.Tensor, false_alarm_rate: float) -> float:
    """The score threshold that flags at most `false_alarm_rate` of in-distribution inputs.

    An input is flagged novel when its score is strictly greater than the threshold. The
    threshold is the (⌊rate · N⌋ + 1)-th largest in-distribution score, so ties never push
    the false alarms on these scores above the rate; with rate 1 it lies just below the
    smallest score (everything is flagged).

    Args:
        in_scores: (N,) scores of in-distribution inputs (higher = more novel).
        false_alarm_rate: target share of in-distribution inputs flagged, in [0, 1].
    Returns:
        The threshold.
    """
    if not 0.0 <= false_alarm_rate <= 1.0 or math.isnan(false_alarm_rate):
        raise ConfigError(f"false_alarm_rate must lie in [0, 1], got {false_alarm_rate}")
    scores = _scores(in_scores, "in_scores").sort(descending=True).values
    allowed = math.floor(false_alarm_rate * scores.numel() + 1e-9)
    if allowed >= scores.numel():
        # A step down in the caller's precision, so that comparisons there flag the minimum.
        dtype = in_scores.dtype if in_scores.is_floating_point() else torch.float64
        lowest = scores[-1].to(dtype)
        return float(torch.nextafter(lowest, lowest.new_tensor(-math.inf)))
    return float(scores[allowed])


@dataclass
class GiniDetector:
    """The tutorial's detector: Gini impurity of a softmax probe's output on an embedding.

    Attributes:
        probe: softmax classifier trained on embeddings of the known classes.
        threshold: inputs scoring above it are novel; 1.0 (above any impurity) until
            `threshold_at` calibrates it.
    """

    probe: LinearProbe
    threshold: float = 1.0

    @classmethod
    def fit(
        cls,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        epochs: int = 100,
        weight_decay: float = 1e-4,
        seed: int = 0,
    ) -> GiniDetector:
        """Train the probe on (N, D) embeddings and (N,) int64 labels of the known classes
        (see `probe.train_probe`)."""
        return cls(train_probe(embeddings, labels, epochs, weight_decay=weight_decay, seed=seed))

    def scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings → (N,) Gini impurity of the probe's output; higher = more novel."""
        return gini_impurity(self.probe.predict_proba(embeddings))

    def threshold_at(self, in_scores: torch.Tensor, false_alarm_rate: float) -> float:
        """Calibrate on (N,) scores of in-distribution inputs (`novelty_threshold`), keep the
        threshold and return it."""
        self.threshold = novelty_threshold(in_scores, false_alarm_rate)
        return self.threshold

    def is_novel(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings → (N,) bool, True where the score exceeds the threshold."""
        return self.scores(embeddings) > self.threshold


def nearest_gallery_distance(
    embeddings: torch.Tensor,
    gallery: torch.Tensor,
    metric: Metric | str = "euclidean",
    block_rows: int = 1024,
) -> torch.Tensor:
    """Distance from each embedding to its nearest gallery embedding (a novelty score).

    Computed `block_rows` queries at a time, so memory stays at `block_rows × G`.

    Args:
        embeddings: (N, D) queries.
        gallery: (G, D) enrolled embeddings of the known classes, G >= 1.
        metric: "euclidean", "sqeuclidean" or "cosine".
        block_rows: query rows per block.
    Returns:
        (N,) float32 distances; higher = more novel.
    """
    if embeddings.ndim != 2 or gallery.ndim != 2 or embeddings.shape[1] != gallery.shape[1]:
        raise DataError(
            f"embeddings {tuple(embeddings.shape)} and gallery {tuple(gallery.shape)} must be "
            "(N, D) and (G, D) with the same D"
        )
    if gallery.shape[0] == 0:
        raise DataError("the gallery is empty: enroll at least one embedding")
    out = torch.empty(embeddings.shape[0], dtype=torch.float32, device=embeddings.device)
    for start, block in distance_blocks(embeddings, gallery, metric, block_rows):
        out[start : start + block.shape[0]] = block.min(dim=1).values
        del block
    return out


def novelty_auroc(in_scores: torch.Tensor, out_scores: torch.Tensor) -> float:
    """Area under the ROC curve of telling out-of-distribution inputs (positives) from
    in-distribution ones by score: P(out score > in score) + ½ P(equal). Equal to
    scikit-learn's `roc_auc_score` with out = 1 and the scores as they are.

    Args:
        in_scores: (N,) in-distribution scores; out_scores: (M,) out-of-distribution scores.
    Returns:
        AUROC in [0, 1]; 0.5 is chance.
    """
    a, b = _scores(in_scores, "in_scores"), _scores(out_scores, "out_scores")
    is_out = torch.cat([torch.zeros(a.numel()), torch.ones(b.numel())])
    # verification's convention: lower distance = positive, so negate the scores.
    return roc_auc(-torch.cat([a, b]), is_out)


@dataclass
class NoveltyReport:
    """How well a novelty score separates in- from out-of-distribution inputs.

    Attributes:
        auroc: see `novelty_auroc`.
        threshold: calibrated to `target_false_alarm_rate` on held-out in-distribution
            scores (`n_calibration` of them), or on the reported ones when none were given.
        target_false_alarm_rate: the rate asked for.
        false_alarm_rate: share of the reported in-distribution inputs flagged at the
            threshold (a fair estimate only when the calibration scores are held out).
        detection_rate: share of out-of-distribution inputs flagged at the threshold.
        n_in, n_out: set sizes.
        n_calibration: held-out in-distribution scores the threshold was set on (0: the
            threshold was set on the reported scores themselves).
    """

    auroc: float
    threshold: float
    target_false_alarm_rate: float
    false_alarm_rate: float
    detection_rate: float
    n_in: int
    n_out: int
    n_calibration: int = 0

    def as_dict(self) -> dict[str, float | int]:
        """The fields by name, for JSON and report tables."""
        return asdict(self)


def novelty_metrics(
    in_scores: torch.Tensor,
    out_scores: torch.Tensor,
    false_alarm_rate: float = 0.05,
    calibration_scores: torch.Tensor | None = None,
) -> NoveltyReport:
    """AUROC, and the false-alarm and detection rates at a threshold calibrated on held-out
    in-distribution scores.

    Args:
        in_scores: (N,) scores of in-distribution inputs; out_scores: (M,) of
            out-of-distribution inputs (higher = more novel, from either detector).
        false_alarm_rate: target share of in-distribution inputs flagged.
        calibration_scores: (K,) scores of other in-distribution inputs that set the
            threshold; without them the threshold is set on `in_scores`, and the false-alarm
            rate reported on those same scores is met by construction.
    Returns:
        NoveltyReport.
    """
    a, b = _scores(in_scores, "in_scores"), _scores(out_scores, "out_scores")
    calibration = a if calibration_scores is None else _scores(calibration_scores, "calibration")
    threshold = novelty_threshold(calibration, false_alarm_rate)
    return NoveltyReport(
        auroc=novelty_auroc(a, b),
        threshold=threshold,
        target_false_alarm_rate=false_alarm_rate,
        false_alarm_rate=float((a > threshold).double().mean()),
        detection_rate=float((b > threshold).double().mean()),
        n_in=a.numel(),
        n_out=b.numel(),
        n_calibration=0 if calibration_scores is None else calibration.numel(),
    )
