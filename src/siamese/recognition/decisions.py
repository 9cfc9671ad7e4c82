"""What a decision is made of, without torch: a model's calibrated thresholds as model.json (and
export.json) store them, and the verdict on two images.

Both recognisers use these: `Recognizer` (PyTorch) and `OnnxRecognizer` (onnxruntime, which
must not import torch). How thresholds are measured is in `siamese.recognition.thresholds`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from siamese.errors import ConfigError
from siamese.recognition.answers import DecisionBasis
from siamese.recognition.fpir import (
    MIN_STRANGERS_ACCEPTED,
    FpirTable,
    GalleryCalibration,
    identities_needed,
)
from siamese.recognition.score_normalisation import COHORT, NORMALISATIONS

RULES = ("fpir", "far")

# The false-accept rates a calibration states a threshold for, where the data supports them.
CALIBRATED_FARS = (1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 5e-4, 1e-4, 5e-5, 1e-5, 1e-6)
MIN_FALSE_ACCEPTS = 10
"""A threshold at FAR f needs f × impostor pairs ≥ this: with fewer accepted impostors the
rate measured at the threshold is too uncertain to quote (10 accepts: about ±30 %)."""


@dataclass(frozen=True)
class Thresholds:
    """A model's calibrated thresholds on one distance (or dissimilarity) scale.

    Attributes:
        metric: the scale: "euclidean", "sqeuclidean", "cosine" or "pair_head" (1 − the pair
            classifier's probability of "same").
        at_far: supported FAR → threshold (accept when distance <= threshold), smallest FAR
            first.
        unsupported: FARs of `CALIBRATED_FARS` the data could not support.
        eer: the equal error rate on the calibration pairs; eer_threshold: the threshold there.
        genuine_pairs, impostor_pairs: how many pairs of each kind the calibration measured.
        calibrated_on: what data, in words (e.g. "validation classes of the run: 6 classes,
            60 examples").
        classes: the number of classes of that data.
    """

    metric: str
    at_far: dict[float, float]
    unsupported: tuple[float, ...]
    eer: float
    eer_threshold: float
    genuine_pairs: int
    impostor_pairs: int
    calibrated_on: str
    classes: int
    extra: dict[str, Any] = field(default_factory=dict)

    def threshold(self, far: float | None = None) -> tuple[float, float]:
        """(threshold, FAR) at `far`, or at the smallest supported FAR when None.

        Raises:
            ConfigError: `far` is not one of the calibrated rates, or the calibration data
                could not support it (the message gives the rates that are available).
        """
        if not self.at_far:
            raise ConfigError(
                f"the model's calibration ({self.calibrated_on}: {self.impostor_pairs:,} impostor "
                "pairs) supports no false-accept rate down to 1e-1; calibrate on more labelled "
                "data: siamese calibrate MODEL --data ..."
            )
        if far is None:
            far = min(self.at_far)
        for known, value in self.at_far.items():
            if math.isclose(known, far, rel_tol=1e-9):
                return value, known
        available = ", ".join(f"{f:g}" for f in self.at_far)
        if any(math.isclose(u, far, rel_tol=1e-9) for u in self.unsupported):
            raise ConfigError(
                f"FAR {far:g} is not supported by the model's calibration ({self.calibrated_on}:"
                f" {self.impostor_pairs:,} impostor pairs; {far:g} needs "
                f"{math.ceil(MIN_FALSE_ACCEPTS / far):,}). Choose one of {available}, or "
                "calibrate on more labelled data: siamese calibrate MODEL --data ... --far "
                f"{far:g}"
            )
        raise ConfigError(
            f"FAR {far:g} is not a calibrated rate; the model has thresholds at {available}"
        )

    @property
    def fpir_table(self) -> FpirTable | None:
        """The thresholds by false-positive identification rate for each gallery size
        (`siamese.recognition.fpir`), or None for a calibration made before they existed."""
        stored = self.extra.get("fpir")
        return None if stored is None else FpirTable.from_dict(stored)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form stored in model.json (FARs as strings, e.g. "0.001")."""
        return {
            "metric": self.metric,
            "at_far": {f"{far:g}": value for far, value in self.at_far.items()},
            "unsupported": [f"{far:g}" for far in self.unsupported],
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
            "genuine_pairs": self.genuine_pairs,
            "impostor_pairs": self.impostor_pairs,
            "calibrated_on": self.calibrated_on,
            "classes": self.classes,
            "min_false_accepts": MIN_FALSE_ACCEPTS,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        """The inverse of `as_dict`."""
        known = {f.name for f in fields(cls)} | {"min_false_accepts"}
        return cls(
            metric=str(data["metric"]),
            at_far={float(k): float(v) for k, v in data["at_far"].items()},
            unsupported=tuple(float(f) for f in data.get("unsupported", ())),
            eer=float(data["eer"]),
            eer_threshold=float(data["eer_threshold"]),
            genuine_pairs=int(data["genuine_pairs"]),
            impostor_pairs=int(data["impostor_pairs"]),
            calibrated_on=str(data["calibrated_on"]),
            classes=int(data["classes"]),
            extra={k: v for k, v in data.items() if k not in known},
        )


def read_thresholds(description: dict[str, Any]) -> Thresholds | None:
    """The thresholds stored in a model.json or export.json (as a dict), or None when it has
    none."""
    stored = description.get("thresholds")
    return None if stored is None else Thresholds.from_dict(stored)


def accepts(distance: float, threshold: float) -> bool:
    """The one accept rule every decision uses (compare, identify, verify, the service): the
    same identity when `distance` <= `threshold`. A distance equal to the threshold is
    accepted, as calibration counts it (the FAR at a threshold counts impostor pairs at or
    below it); NaN is never accepted."""
    return distance <= threshold


@dataclass(frozen=True)
class Comparison:
    """The verdict on two images.

    Attributes:
        distance: their dissimilarity on the model's scale (`metric`); lower is more alike.
        threshold: accepted as the same identity when distance <= threshold.
        far: the false-accept rate the threshold was calibrated at (None for a threshold the
            caller gave).
        same: the decision.
        metric: the scale ("euclidean", "cosine", …, or "pair_head": 1 − p(same)).
        calibrated_on: the data the threshold was measured on, in words.
    """

    distance: float
    threshold: float
    far: float | None
    same: bool
    metric: str
    calibrated_on: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _GalleryRule:
    """What a gallery's identification threshold is derived from (the arguments of
    `identification_basis` but for the normalisation).

    Attributes:
        rule: "fpir" or "far"; target: the rate asked for.
        identities, examples: the gallery's size; scoring: "nearest" or "centroid".
        thresholds: the model's calibration; own: the gallery's own (None: not measured).
        generation: the gallery's write counter.
    """

    rule: str
    target: float
    identities: int
    examples: int
    scoring: str
    thresholds: Thresholds
    own: GalleryCalibration | None
    generation: int

    @property
    def n(self) -> int:
        """The number of identities, at least 1."""
        return max(self.identities, 1)

    @property
    def exposure(self) -> int:
        """The chances a stranger has, at least 1: the number of examples with
        nearest-example scoring (k examples of one identity give k), of identities with
        centroid scoring."""
        return max(self.examples if self.scoring == "nearest" else self.identities, 1)


def identification_basis(
    rule: str,
    target: float,
    identities: int,
    examples: int,
    scoring: str,
    thresholds: Thresholds,
    own: GalleryCalibration | None,
    generation: int,
    normalisation: str = "none",
) -> DecisionBasis:
    """The threshold a gallery identifies at, and what it stands for: the one rule that
    `Gallery`, `siamese gallery` and the service all use, re-derived after every write.

    With `normalisation` "ratio" or "t-norm", the decision is on the best candidate's score
    against the probe's cohort (`siamese.recognition.score_normalisation`) once it has one,
    at the threshold on that scale for the same target: the share of strangers accepted is
    estimated from the gallery's own people left out in turn and from galleries of its size
    simulated from the model's calibration, pooled (the model's weighing as many strangers as
    the gallery needs to support the target alone); the distance threshold stays for
    verification and for probes without a full cohort.

    Rule "fpir": the threshold at which the gallery is expected to accept the share `target`
    of strangers at its current size (`siamese.recognition.fpir`), from the best evidence
    there is, in this order:

    1. the gallery's own people (`own`), once they support the target
       (`MIN_STRANGERS_ACCEPTED` left-out identities accepted at it): strangers from the
       user's own domain, scored exactly as this gallery scores;
    2. else the model's calibration table at this size. (Moving the model's thresholds to
       the mean and spread of the gallery's own stranger distances was tried and measured:
       with a few dozen identities it moved thresholds 3σ into the tail by noise, and
       realised FPIR went to 2–6× the target on glyphs, so it is not done.)

    With nearest-example scoring, an identity of k examples gives a stranger k chances, so
    the model's table is read at the number of examples (an upper bound on the exposure:
    examples of one identity resemble each other); with centroid scoring, at the number of
    identities.

    Rule "far" (`gallery create --far`): the model's pair threshold at that false-accept
    rate, whatever the size; the estimated FPIR is still reported.

    Raises:
        ConfigError: the rule is unknown, or the model's calibration cannot support it.
    """
    gallery = _GalleryRule(rule, target, identities, examples, scoring, thresholds, own, generation)
    raw = _distance_basis(gallery)
    if normalisation not in NORMALISATIONS:
        raise ConfigError(
            f"unknown score normalisation {normalisation!r}; use one of {', '.join(NORMALISATIONS)}"
        )
    if normalisation == "none" or rule != "fpir" or identities < COHORT + 1:
        return raw
    model = _model_curve(thresholds.fpir_table, target, gallery.exposure, normalisation)
    scores = own.normalised_strangers(normalisation) if own is not None else np.empty(0)
    scores = np.sort(scores[np.isfinite(scores)])
    if model is None and scores.size * target < MIN_STRANGERS_ACCEPTED:
        return raw  # no threshold on the normalised scale can be estimated yet
    own_curve = (
        (scores, np.arange(1, scores.size + 1) / scores.size, int(scores.size))
        if scores.size
        else None
    )
    value, estimate, weight = _pooled_threshold(target, own_curve, model, [])
    sources = []
    if own_curve is not None:
        sources.append(
            f"this gallery's own {own.identities if own else 0} identities, each left out as "
            f"a stranger ({scores.size} probes, weight {weight:.0%})"
        )
    if model is not None:
        sources.append(
            f"galleries of {gallery.n:,} simulated from the model's calibration "
            f"({thresholds.calibrated_on}; weight {1 - weight:.0%})"
        )
    basis = (
        f"distances as a {normalisation} of each probe's {COHORT} nearest other identities; "
        f"threshold from {' and '.join(sources)}{_alone(target, int(scores.size))}"
    )
    return replace(raw, normalised_threshold=value, estimated_fpir=estimate, basis=basis)


def _distance_basis(gallery: _GalleryRule) -> DecisionBasis:
    """`identification_basis` on distances."""
    rule, target, thresholds, own = gallery.rule, gallery.target, gallery.thresholds, gallery.own
    if rule not in RULES:
        raise ConfigError(f"unknown gallery rule {rule!r}; use one of {', '.join(RULES)}")
    n, exposure, generation = gallery.n, gallery.exposure, gallery.generation
    table = thresholds.fpir_table
    if rule == "far":
        threshold, far = thresholds.threshold(target)
        estimate, basis = _estimate(threshold, n, exposure, table, own)
        return DecisionBasis(threshold, "far", target, estimate, far, basis, generation)
    if not 0 < target < 1:
        raise ConfigError(f"a target FPIR must lie in (0, 1), got {target:g}")
    own_curve = None
    own_supported = False
    if own is not None and own.strangers.probes > 0:
        values, rates, accepted, _ = own.strangers.curve(n)
        own_curve = (values, rates, own.strangers.probes)
        within = int(np.searchsorted(rates, target, side="right"))
        own_supported = within > 0 and accepted[within - 1] >= MIN_STRANGERS_ACCEPTED
    model = _model_curve(table, target, exposure, None)
    if model is None and not own_supported:
        return _independent(target, n, exposure, thresholds, own, generation)
    exact = table.threshold(target, exposure) if table is not None else None
    threshold, estimate, weight = _pooled_threshold(
        target, own_curve, model, [] if exact is None else [exact[0]]
    )
    sources = []
    if own_curve is not None:
        sources.append(
            f"this gallery's own {own.identities if own else 0} identities, each left out as a "
            f"stranger ({own_curve[2]} probes, weight {weight:.0%})"
        )
    if model is not None and table is not None and exact is not None:
        how = (
            f"{table.probes:,} calibration strangers" if exact[1] == "probes"
            else f"{table.impostor_pairs:,} impostor pairs, assumed independent (a bound)"
        )  # fmt: skip
        sources.append(
            f"the model's calibration ({thresholds.calibrated_on}; {how}; weight {1 - weight:.0%})"
        )
    basis = " and ".join(sources) + _alone(target, own_curve[2] if own_curve else 0)
    return DecisionBasis(
        threshold, "fpir", target, estimate, _far_at(thresholds, threshold), basis, generation
    )


def _alone(target: float, probes: int) -> str:
    """What the gallery's own estimate still needs, in words ("" when it has it)."""
    needed = identities_needed(target)
    return (
        ""
        if probes >= needed
        else f"; the gallery supports {target:g} alone from about {needed:,} identities"
    )


def _model_curve(
    table: FpirTable | None, target: float, n: int, kind: str | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The model's FPIR against the threshold for `n` identities (distances when `kind` is
    None, else that normalised score): (thresholds, rates) ascending, from the table's
    supported targets; None when they do not reach `target` on both sides (the curve is not
    extrapolated)."""
    if table is None:
        return None
    if kind is None:
        found = [(f, table.threshold(f, n)) for f in table.targets]
        points = [(f, None if t is None else t[0]) for f, t in found]
    else:
        points = [(f, table.normalised_threshold(f, n, kind)) for f in table.targets]
    known = sorted((t, f) for f, t in points if t is not None)
    if len(known) < 2 or not known[0][1] <= target * (1 + 1e-9) or known[-1][1] < target:
        return None
    return np.asarray([t for t, _ in known]), np.asarray([f for _, f in known])


def _pooled_threshold(
    target: float,
    own: tuple[np.ndarray, np.ndarray, int] | None,
    model: tuple[np.ndarray, np.ndarray] | None,
    extra: list[float],
) -> tuple[float, float, float]:
    """The largest threshold at which the pooled estimate of strangers accepted is <= the
    target: the gallery's own (`own`: score values ascending, the estimated rate at each, the
    number of probes) and the model's (`model`: thresholds and rates), the model's counting as
    `identities_needed(target)` strangers: the gallery's own weigh as much once they could
    support the target alone, and more as it grows.

    Returns:
        (threshold, the pooled estimate there, the weight of the gallery's own).
    """
    probes = own[2] if own is not None else 0
    prior = identities_needed(target) if model is not None else 0
    parts = [own[0] if own is not None else np.empty(0), np.asarray(extra, dtype=np.float64)]
    if model is not None:
        parts.append(model[0])
    candidates = np.unique(np.concatenate(parts))
    if candidates.size:
        dense = np.linspace(candidates[0], candidates[-1], 512)
        candidates = np.unique(np.concatenate([candidates, dense]))
    own_rate = np.zeros(candidates.size)
    if own is not None and own[0].size:
        at = np.searchsorted(own[0], candidates, side="right") - 1
        own_rate = np.where(at >= 0, own[1][np.clip(at, 0, None)], 0.0)
    model_rate = (
        np.exp(np.interp(candidates, model[0], np.log(model[1])))
        if model is not None
        else np.zeros(candidates.size)
    )
    pooled = (probes * own_rate + prior * model_rate) / max(probes + prior, 1)
    within = np.flatnonzero(pooled <= target * (1 + 1e-9))
    weight = probes / (probes + prior) if probes + prior else 0.0
    if not within.size:
        return float(np.nextafter(candidates[0], -np.inf)), 0.0, weight
    i = int(within[-1])
    return float(candidates[i]), float(pooled[i]), weight


def _estimate(
    threshold: float,
    n: int,
    exposure: int,
    table: FpirTable | None,
    own: GalleryCalibration | None,
) -> tuple[float | None, str]:
    """(estimated FPIR at `threshold`, what it rests on) for a threshold set otherwise."""
    if own is not None and own.strangers.probes > 0:
        rate, accepted = own.strangers.rate_at(threshold, n)
        if accepted >= MIN_STRANGERS_ACCEPTED:
            return rate, f"this gallery's own {own.identities} identities, left out in turn"
    if table is not None:
        return table.rate_at(threshold, exposure), "the model's calibration"
    return None, "no estimate (the model's calibration predates FPIR tables)"


def _far_at(thresholds: Thresholds, threshold: float) -> float | None:
    """The pair FAR at `threshold` by the model's calibrated points (the largest calibrated
    rate whose threshold it does not exceed), or None below them all."""
    below = [far for far, t in thresholds.at_far.items() if t <= threshold + 1e-12]
    return max(below) if below else None


def _independent(
    target: float,
    n: int,
    exposure: int,
    thresholds: Thresholds,
    own: GalleryCalibration | None,
    generation: int,
) -> DecisionBasis:
    """The FPIR rule from the calibrated pair thresholds alone (a model calibrated before FPIR
    tables, or a target its table does not reach): the pair rate 1 − (1 − target)^(1/N),
    assuming independent comparisons (a bound), at the calibrated rate just below it.

    Raises:
        ConfigError: the calibration supports no pair rate that small.
    """
    needed = -math.expm1(math.log1p(-target) / exposure)
    usable = [far for far in thresholds.at_far if far <= needed * (1 + 1e-9)]
    if not usable:
        smallest = min(thresholds.at_far) if thresholds.at_far else None
        raise ConfigError(
            f"FPIR {target:g} with {exposure:,} enrolled examples needs a pair false-accept rate "
            f"of {needed:.2g}, and the model's calibration ({thresholds.calibrated_on}) "
            f"supports rates down to {smallest if smallest is not None else 'none'}: give a "
            "larger --fpir, calibrate the model on more labelled data (siamese calibrate), "
            "or enroll enough people for the gallery to calibrate itself (siamese gallery "
            f"calibrate; {identities_needed(target):,} identities)"
        )
    far = max(usable)
    threshold = thresholds.at_far[far]
    estimate = -math.expm1(exposure * math.log1p(-far))
    basis = (
        f"the model's pair thresholds ({thresholds.calibrated_on}) at FAR {far:g}, comparisons "
        "assumed independent (a bound)"
    )
    return DecisionBasis(threshold, "fpir", target, estimate, far, basis, generation)


__all__ = [
    "CALIBRATED_FARS",
    "MIN_FALSE_ACCEPTS",
    "RULES",
    "Comparison",
    "Thresholds",
    "accepts",
    "identification_basis",
    "read_thresholds",
]
