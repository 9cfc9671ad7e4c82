"""Reviewed clusters enrolled into a gallery: each named folder of a `siamese cluster` output
is a person, each face linked from it one of their examples (`gallery enroll --clusters`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from siamese.clustering.review import read_record, reviewed_clusters
from siamese.errors import DataError
from siamese.recognition.model_inputs import PreparedImages

MATCHING_OVERLAP = 0.5
"""A face found again matches the recorded one when their boxes overlap this much (IoU)."""


@dataclass(frozen=True)
class ClusterEnrollment:
    """What `enroll_clusters` did.

    Attributes:
        enrolled: one `Enrollment` per person (folders given the same name are one person).
        unnamed: folders left with their generated names (not enrolled).
    """

    enrolled: list[Any] = field(default_factory=list)
    unnamed: list[str] = field(default_factory=list)


def enroll_clusters(
    gallery: Any, out: Path, names: dict[str, str] | None = None, force: bool = False
) -> ClusterEnrollment:
    """Enroll the named folders of a reviewed `siamese cluster` output into `gallery`.

    Args:
        gallery: an open `Gallery`.
        out: the `--out` folder of `siamese cluster`.
        names: folder or cluster number → name, for folders not renamed.
        force: enroll a photo even if another identity has it.
    Raises:
        DataError: not a cluster folder; no folder named; a photo moved or changed since it
            was clustered (its face is no longer found). Nothing of a person is stored when
            one of their photos fails; the people enrolled before are named in the message.
    """
    record = read_record(out)
    every_face = bool(record.get("every_face"))
    folders = reviewed_clusters(out, names)
    people: dict[str, tuple[list[dict], list[Path]]] = {}
    unnamed = []
    for folder in folders:
        if folder.name is None:
            unnamed.append(folder.folder)
            continue
        faces, extra = people.setdefault(folder.name, ([], []))
        faces.extend(folder.faces)
        extra.extend(folder.extra_photos)
    if not people:
        raise DataError(
            f"{out}/people: no folder is named yet ({len(unnamed)} keep their generated "
            "names): rename the folders of the people you recognise, or give --name "
            "cluster-001=NAME"
        )
    result = ClusterEnrollment([], unnamed)
    for name, (faces, extra) in sorted(people.items()):
        try:
            if every_face and faces:
                result.enrolled.append(
                    gallery.enroll(name, _face_examples(gallery, faces), force=force)
                )
                if extra:
                    result.enrolled.append(gallery.enroll(name, extra, force=force))
            else:
                files = list(dict.fromkeys([*(Path(f["file"]) for f in faces), *extra]))
                if files:
                    result.enrolled.append(gallery.enroll(name, files, force=force))
        except DataError as err:
            done = ", ".join(dict.fromkeys(e.identity for e in result.enrolled)) or "nobody"
            raise DataError(f"{name}: {err} (enrolled before this: {done})") from None
    return result


def _face_examples(gallery: Any, faces: list[dict]) -> Any:
    """The recorded faces of group photos found again by the gallery's model and embedded:
    each face an example of its own (its crop's pixels identify it, not the photo's bytes,
    so two people of one photo are two examples)."""
    files = list(dict.fromkeys(f["file"] for f in faces))
    prepared = gallery.recognizer.prepare_images(files, every_face=True)
    boxes = prepared.boxes or []
    rows_of: dict[str, list[int]] = {}
    for row, owner in enumerate(prepared.image):
        rows_of.setdefault(files[owner], []).append(row)
    rows, sources = [], []
    for face in faces:
        candidates = rows_of.get(face["file"], [])
        overlaps = [_overlap(boxes[r], face["box"]) for r in candidates]
        best = int(np.argmax(overlaps)) if overlaps else -1
        if best < 0 or overlaps[best] < MATCHING_OVERLAP:
            raise DataError(
                f"{face['file']}: the face at {face['box']} is not found there any more (the "
                "photo changed since it was clustered, or another model finds faces "
                "differently): run siamese cluster again"
            )
        rows.append(candidates[best])
        sources.append(f"{face['file']} (face {face['face'] + 1})")
    x = prepared.x[rows]
    given = [np.transpose(pixels, (1, 2, 0)) for pixels in x]
    chosen = PreparedImages(given, sources, x, list(range(len(rows))))
    return gallery.recognizer.embed_images(chosen)


def _overlap(a: list[float], b: list[float] | None) -> float:
    """Intersection over union of two [left, top, right, bottom] boxes."""
    if b is None:
        return 0.0
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
