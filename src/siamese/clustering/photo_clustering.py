"""`siamese cluster` as a function: a photo library's faces embedded (cached), grouped at the
model's calibrated decision distance, and written for review."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from siamese.clustering.clusters import DEFAULT_ALGORITHM, check_options, cluster_embeddings
from siamese.clustering.neighbour_graph import DEFAULT_NEIGHBOURS
from siamese.clustering.photo_faces import embed_library
from siamese.clustering.review import write_review
from siamese.errors import ConfigError, DataError
from siamese.recognition.recognition_model import RecognitionModel

DEFAULT_FAR = 1e-3
"""The pair false-accept rate whose calibrated distance clusters by default: the best mean
pairwise F1 over the validation sets of `benchmarks/bench_cluster.py`."""


def decision_distance(
    recognizer: RecognitionModel, far: float | None = None, threshold: float | None = None
) -> tuple[float, float | None, str]:
    """The distance clustering decides "same identity" at: (distance, its FAR or None, how
    it was chosen).

    Without either argument, the calibrated distance at `DEFAULT_FAR`, or at the smallest
    rate the model's calibration supports when it cannot support that one.

    Raises:
        ConfigError: both given; a model without calibrated thresholds (and no threshold);
            a FAR its calibration does not support; a threshold that is not a distance.
    """
    if far is not None and threshold is not None:
        raise ConfigError("give --far or --threshold, not both")
    if threshold is not None:
        if not math.isfinite(threshold) or threshold < 0:
            raise ConfigError(f"--threshold {threshold}: give a distance >= 0")
        return float(threshold), None, "given with --threshold"
    if recognizer.head is not None:
        raise ConfigError(
            "this model decides with a pair classifier, whose scores are not distances "
            "between embeddings; cluster with --threshold DISTANCE on its embeddings"
        )
    thresholds = recognizer.thresholds
    if thresholds is None:
        raise ConfigError(
            recognizer.no_thresholds_message() + "; or give the distance with --threshold"
        )
    if far is not None:
        value, rate = thresholds.threshold(far)
        return value, rate, f"pair FAR {rate:g}, calibrated on {thresholds.calibrated_on}"
    if not thresholds.at_far:
        thresholds.threshold(None)  # raises: the calibration supports no rate at all
    supported = [f for f in thresholds.at_far if f >= DEFAULT_FAR * (1 - 1e-9)]
    value, rate = thresholds.threshold(min(supported) if supported else max(thresholds.at_far))
    note = f"pair FAR {rate:g}, calibrated on {thresholds.calibrated_on}"
    if not math.isclose(rate, DEFAULT_FAR):
        note += f"; the calibration does not support the default {DEFAULT_FAR:g}"
    return value, rate, note


def cluster_photos(
    recognizer: RecognitionModel,
    photos: Sequence[Path | str],
    out: Path,
    algorithm: str = DEFAULT_ALGORITHM,
    far: float | None = None,
    threshold: float | None = None,
    every_face: bool = False,
    neighbours: int = DEFAULT_NEIGHBOURS,
    search: str = "auto",
    cache: Path | None = None,
    workers: int = 0,
    progress: bool = False,
    force: bool = False,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Group the faces of `photos` by person and write the result into `out` for review.

    Args:
        recognizer: the model (`load_recognizer`); its calibration gives the distance.
        photos: image files.
        algorithm: `siamese.clustering.ALGORITHMS`.
        far, threshold: the decision distance (`decision_distance`).
        every_face: every face of each photo instead of its main face.
        cache: the embedding cache (default `out/embeddings.sqlite`).
        force: replace folders a person already renamed in `out/people`.
    Returns:
        clusters.json's content: every face with its photo, box, cluster, distance to the
        centre and whether it is uncertain; the clusters largest first; the photos left out.
    Raises:
        ConfigError: no usable distance (see `decision_distance`), a bad option.
        DataError: no photos, or no face in any of them.
        OutputError: `out` not writable, or holding reviewed folders (without `force`).
    """
    check_options(algorithm, neighbours, search)
    distance, rate, basis = decision_distance(recognizer, far, threshold)
    out = Path(out)
    library = embed_library(
        recognizer,
        [Path(p).absolute() for p in photos],  # enrollment may run from another folder
        cache if cache is not None else out / "embeddings.sqlite",
        every_face,
        workers,
        progress,
    )
    if not library.faces:
        reason = f"no face found in any of the {library.photos} photo(s)"
        if library.unreadable:
            reason = (
                f"none of the {library.photos} photo(s) gave a face "
                f"({len(library.unreadable)} unreadable, e.g. {library.unreadable[0][1]})"
            )
        raise DataError(
            f"{reason}: nothing to cluster"
            + ("" if recognizer.preprocessing.face is None else "; try the other detector")
        )
    clustering = cluster_embeddings(
        library.z, recognizer.metric, distance, algorithm, neighbours, search
    )
    about = {
        "model": model_name if model_name is not None else str(recognizer.model_dir),
        "fingerprint": recognizer.fingerprint,
        "far": rate,
        "threshold_basis": basis,
        "every_face": every_face,
        "embedded_now": library.embedded,
    }
    return write_review(out, library, clustering, about, force)
