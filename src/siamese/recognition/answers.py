"""What a gallery answers: who a probe is (with the evidence for it), whether an image shows a
claimed identity, what an enrollment did, and an identity's summary.

Every decision carries its evidence: the threshold it was taken at, the rule that set the
threshold (a false-positive identification rate for the gallery's size, or a pair
false-accept rate), the estimated rate of strangers accepted at it, the gallery's write
counter the threshold belongs to, and for identification the margin to the runner-up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

UNKNOWN = "unknown"
NO_FACE_LABEL = "no face"


@dataclass(frozen=True)
class DecisionBasis:
    """The threshold a decision was taken at, and what it stands for.

    Attributes:
        threshold: accept when the score <= threshold.
        rule: "fpir" (the threshold keeps the share of strangers this gallery accepts at
            `target`) or "far" (a pair false-accept rate, as `gallery create --far` sets).
        target: the rate asked for (an FPIR or a FAR).
        estimated_fpir: the share of strangers this gallery is estimated to accept at the
            threshold, at its current size (None when it cannot be estimated).
        far: the pair false-accept rate at the threshold, from the model's calibration (None
            when that does not reach it).
        basis: what the estimate rests on, in words.
        generation: the gallery's write counter the threshold was derived at.
        normalised_threshold: with cohort-normalised scores, the threshold on that scale
            (accept when the best candidate's normalised score <= it); `threshold` then serves
            verification and probes without a full cohort. None: decisions on distances.
    """

    threshold: float
    rule: str
    target: float | None
    estimated_fpir: float | None
    far: float | None
    basis: str
    generation: int
    normalised_threshold: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """One identity a probe may be: its name and the probe's score against it (a distance on
    the model's metric; lower is more alike)."""

    identity: str
    distance: float


class _ReadsDecision:
    """`threshold` and `far` read off the instance's `decision`: what an answer was decided
    at, or a gallery's current rule."""

    decision: DecisionBasis

    @property
    def threshold(self) -> float:
        """The decision threshold (accept a score <= it)."""
        return self.decision.threshold

    @property
    def far(self) -> float | None:
        """The pair false-accept rate at the threshold (by the model's calibration)."""
        return self.decision.far


@dataclass(frozen=True)
class Identification(_ReadsDecision):
    """The answer for one probe image (or one face of it).

    Attributes:
        source: the probe's path, or "image N".
        identity: the best identity when its score is within the threshold, else None
            (`label` is then "unknown").
        distance: the best identity's score (inf for an empty gallery, or no face).
        candidates: the k best identities, best first, accepted or not.
        decision: the threshold and what it stands for (`DecisionBasis`).
        margin: the runner-up's score minus the best's (None with fewer than two).
        ambiguous: an accepted answer whose runner-up is within a tenth of the distance
            threshold of the best (`gallery.AMBIGUOUS_MARGIN`): two enrolled identities fit
            about equally; a person should look.
        no_face: the model's face step found no face in the image (`label` is then
            "no face", and nothing was compared).
        box: with every face asked for, this face's [left, top, right, bottom] in the photo.
    """

    source: str
    identity: str | None
    distance: float
    candidates: list[Candidate]
    decision: DecisionBasis
    margin: float | None = None
    ambiguous: bool = False
    no_face: bool = False
    box: list[float] | None = None
    score: float | None = None

    @property
    def label(self) -> str:
        if self.no_face:
            return NO_FACE_LABEL
        return self.identity if self.identity is not None else UNKNOWN

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "identity": self.identity,
            "decision": self.label,
            "distance": finite(self.distance),
            "threshold": self.decision.threshold,
            "far": self.decision.far,
            "estimated_fpir": self.decision.estimated_fpir,
            "rule": self.decision.rule,
            "target": self.decision.target,
            "generation": self.decision.generation,
            "margin": None if self.margin is None else finite(self.margin),
            "score": None if self.score is None else finite(self.score),
            "normalised_threshold": self.decision.normalised_threshold,
            "ambiguous": self.ambiguous,
            "candidates": [
                {"identity": c.identity, "distance": finite(c.distance)} for c in self.candidates
            ],
            "no_face": self.no_face,
            "box": self.box,
        }


@dataclass(frozen=True)
class Verification:
    """Whether an image shows a claimed identity (its score against that identity alone).

    `far` is the pair false-accept rate at the threshold: a verification compares one pair,
    so the gallery-size rule of identification does not apply to it."""

    identity: str | None
    source: str
    distance: float
    same: bool
    threshold: float
    far: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Enrollment:
    """What one `enroll` call did.

    Attributes:
        identity: the identity enrolled into; created: whether this call created it.
        added: the sources of the examples stored.
        already_enrolled: sources whose image this identity already had (nothing stored).
        no_face: sources in which the model's face step found no face (left out: its
            on_no_face is "skip").
        decision: the gallery's threshold after the enrollment.
    """

    identity: str
    created: bool
    added: list[str]
    already_enrolled: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    decision: DecisionBasis | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["decision"] = None if self.decision is None else self.decision.as_dict()
        return out


@dataclass(frozen=True)
class IdentityInfo:
    """An enrolled identity: its name, number of examples, metadata and creation time."""

    name: str
    examples: int
    metadata: dict[str, Any] | None
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "identity": self.name,
            "examples": self.examples,
            "metadata": self.metadata,
            "created_at": self.created_at,
        }


def finite(value: float) -> float | None:
    """JSON has no infinity: an infinite score (no candidate) is written as null."""
    return value if value != float("inf") else None
