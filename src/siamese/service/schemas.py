"""The API's response bodies (pydantic): what the served OpenAPI schema documents."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(
        description="stable: unauthorized, forbidden, not_found, conflict, "
        "payload_too_large, unsupported_media_type, invalid_request, invalid_image, "
        "no_face, unavailable, internal"
    )
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class CandidateOut(BaseModel):
    identity: str
    distance: float | None


class IdentificationOut(BaseModel):
    source: str
    identity: str | None = Field(description="the identity when within the threshold, else null")
    decision: str = Field(description='the identity, "unknown", or "no face"')
    distance: float | None = Field(description="the best identity's distance (null: none)")
    threshold: float = Field(description="the gallery's threshold at its current size")
    far: float | None = Field(description="the pair false-accept rate at the threshold")
    estimated_fpir: float | None = Field(
        description="the share of strangers the gallery is estimated to accept at it"
    )
    rule: str = Field(description='"fpir" (a target share of strangers) or "far" (a pair rate)')
    target: float | None = Field(description="the rate the rule targets")
    generation: int = Field(description="the gallery's write counter the threshold belongs to")
    margin: float | None = Field(description="the runner-up's distance minus the best's")
    score: float | None = Field(
        description="the best distance normalised against the probe's cohort, when the "
        "gallery decides on it"
    )
    normalised_threshold: float | None = Field(
        description="the threshold on the normalised score (null: decisions on distances)"
    )
    ambiguous: bool = Field(
        description="accepted, with the runner-up within a tenth of the threshold of the best"
    )
    candidates: list[CandidateOut]
    no_face: bool
    box: list[float] | None = Field(description="[left, top, right, bottom] of the face")


class IdentifyOut(BaseModel):
    results: list[IdentificationOut]


class VerificationOut(BaseModel):
    identity: str | None = Field(description="the claimed identity (null: two images compared)")
    source: str
    distance: float
    same: bool
    threshold: float
    far: float | None


class EmbedOut(BaseModel):
    embedding: list[float]
    dim: int
    model: str = Field(description="the model's fingerprint (SHA-256 of its weights)")


class DecisionOut(BaseModel):
    threshold: float
    rule: str
    target: float | None
    estimated_fpir: float | None
    far: float | None
    basis: str = Field(description="what the threshold and its estimate rest on")
    generation: int
    normalised_threshold: float | None = None


class EnrollmentOut(BaseModel):
    identity: str
    created: bool
    added: list[str]
    already_enrolled: list[str]
    no_face: list[str]
    decision: DecisionOut | None = Field(description="the gallery's threshold after the write")


class IdentityOut(BaseModel):
    name: str
    examples: int
    metadata: dict[str, Any] | None
    created_at: str


class IdentityPage(BaseModel):
    items: list[IdentityOut]
    total: int
    """Identities matching the query (`q`), in all."""
    offset: int
    limit: int
    next_after: str | None = None
    """Pass as `after` for the next page; null on the last page."""


class ExampleOut(BaseModel):
    id: int
    source: str | None
    added_at: str
    sha256: str


class ExamplePage(BaseModel):
    items: list[ExampleOut]
    total: int
    offset: int
    limit: int


class RemovedOut(BaseModel):
    identity: str
    removed_examples: int


class IdentityPatch(BaseModel):
    """A rename (merging into an existing identity of that name) and/or new metadata."""

    name: str | None = Field(default=None, min_length=1, max_length=512)
    metadata: dict[str, Any] | None = None


class GalleryStatsOut(BaseModel):
    """The gallery's size and decision rule (`siamese gallery stats`)."""

    identities: int
    examples: int
    scoring: str
    normalisation: str = Field(description='"ratio", "t-norm" or "none"')
    normalised_threshold: float | None
    rule: str = Field(description='"fpir" or "far"')
    target: float | None
    threshold: float = Field(description="the threshold at the current size")
    estimated_fpir: float | None = Field(description="strangers estimated accepted at it")
    far: float | None
    basis: str = Field(description="what the threshold and estimate rest on")
    decision_generation: int
    expected_identification_rate: float | None = Field(
        description="enrolled people's photos identified at the threshold, estimated from "
        "identities with two or more images (null: none)"
    )
    genuine_probes: int
    self_calibrated_at: int | None = Field(
        description="identities when the gallery last measured itself (null: never)"
    )
    search: str = Field(description='the search in use: "exact", "ivf", "hnsw" or "ivfpq"')
    search_index: dict[str, Any] = Field(
        description="the search's snapshot (folder, write counter), its index's build and "
        "tuning (parameters, agreement with exact search measured on stored examples)"
    )


class StatusOut(BaseModel):
    status: str
    detail: str | None = None


class EngineOut(BaseModel):
    """Which runtime embeds, and why (`siamese.export.serving_engine.EngineChoice`)."""

    engine: str
    reason: str
    export_dir: str | None
    max_abs_difference: float | None


class ModelOut(BaseModel):
    name: str
    engine: EngineOut
    fingerprint: str
    input_shape: list[int]
    embedding_dim: int
    metric: str
    preprocessing: dict[str, Any]
    thresholds: dict[str, Any] | None
    gallery_threshold: float
    gallery_far: float | None
    gallery: GalleryStatsOut


class GalleryOut(BaseModel):
    name: str
    default: bool
    identities: int
    examples: int
    model: str
    """The SHA-256 of its model's weights."""
    threshold: float
    far: float | None


class GalleryPage(BaseModel):
    items: list[GalleryOut]
    total: int


class GalleryIn(BaseModel):
    """A gallery to create in the served folder."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    like: str | None = Field(
        default=None, description="the gallery whose model it uses (default: the default's)"
    )
    far: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="a fixed pair false-accept rate (default: FPIR 1 % at any size)",
    )
    keep_images: bool = False


class KeyOut(BaseModel):
    id: int
    name: str
    role: str
    prefix: str
    created_at: str
    revoked_at: str | None
    rate_per_minute: float | None


class NewKeyOut(KeyOut):
    key: str
    """Shown once: only its hash is kept."""


class KeyPage(BaseModel):
    items: list[KeyOut]
    total: int


class KeyIn(BaseModel):
    role: Literal["admin", "recognize"] = "recognize"
    name: str = Field(default="", max_length=200)
    rate_per_minute: float | None = Field(
        default=None, ge=0, description="requests a minute (0: unlimited; null: the service's)"
    )
