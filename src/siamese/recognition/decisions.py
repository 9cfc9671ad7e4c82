"""What a decision is made of, without torch: a model's calibrated thresholds as model.json (and
export.json) store them, and the verdict on two images.

Both recognisers use these: `Recognizer` (PyTorch) and `OnnxRecognizer` (onnxruntime, which
must not import torch). How thresholds are measured is in `siamese.recognition.thresholds`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from siamese.errors import ConfigError

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


__all__ = [
    "CALIBRATED_FARS",
    "MIN_FALSE_ACCEPTS",
    "Comparison",
    "Thresholds",
    "accepts",
    "read_thresholds",
]


class ComparingModel(Protocol):
    """What `compare_images` needs of a recogniser (`Recognizer` or `OnnxRecognizer`)."""

    scale: str
    thresholds: Thresholds | None

    def embed(self, images: Sequence[Any]) -> Any: ...
    def dissimilarity(self, z1: Any, z2: Any) -> Any: ...
    def threshold(self, far: float | None = None) -> tuple[float, float]: ...


def compare_images(
    model: ComparingModel,
    a: Any,
    b: Any,
    far: float | None = None,
    threshold: float | None = None,
) -> Comparison:
    """Whether two images show the same identity, by `model`.

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
    z = model.embed([a, b])
    if z.shape[0] != 2:
        raise ConfigError("compare takes one image on each side; use embed for batches")
    distance = float(model.dissimilarity(z[:1], z[1:])[0])
    if threshold is None:
        value, rate = model.threshold(far)
        calibrated_on = model.thresholds.calibrated_on if model.thresholds else ""
    else:
        value, rate, calibrated_on = float(threshold), None, "given by the caller"
    return Comparison(distance, value, rate, accepts(distance, value), model.scale, calibrated_on)
