"""A clustering written for a person to review, and read back after they renamed it.

`write_review(out, ...)` writes into OUT:

- `clusters.json` / `clusters.csv`: every face (id, photo, box, cluster, distance to its
  cluster's centre, uncertain and the cluster it could join), the clusters, the photos left
  out (no face, unreadable), the model and the decision distance;
- `people/cluster-001/ …`: a folder per cluster, largest first, holding links to its photos
  (`f000012-IMG_0042.jpg`: face 12 of clusters.json), and `people/unclustered/` for the
  singletons;
- `sheets/cluster-001.png …`: a contact sheet of each cluster's faces, nearest the centre
  first, uncertain ones framed in orange; `index.html` shows them all, largest first.

A person renames the folders they recognise (`people/cluster-001` → `people/Ann`), moves a
wrong face's link to the right folder (or into a new folder to split a cluster), and
`reviewed_clusters(out)` reads that back: each named folder is a person, its links the faces.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from siamese.atomic_files import write_bytes_atomic, write_json_atomic
from siamese.clustering.clusters import Clustering
from siamese.clustering.photo_faces import LibraryFaces, PhotoFace
from siamese.errors import DataError, OutputError

FORMAT_VERSION = 1
PEOPLE = "people"
UNCLUSTERED = "unclustered"
SHEET_FACES = 60
"""Faces shown on a cluster's contact sheet at most (nearest its centre first)."""
THUMBNAIL = 96
_GENERATED = re.compile(r"^(cluster-\d{3,}|unclustered)$")
_LINK = re.compile(r"^f(\d{6,})-")


def cluster_name(label: int) -> str:
    """The folder name of cluster `label` (0-based): cluster-001, cluster-002, …"""
    return f"cluster-{label + 1:03d}"


def is_generated_name(name: str) -> bool:
    """Whether a folder still has the name `siamese cluster` gave it (not yet named)."""
    return bool(_GENERATED.match(name))


def write_review(
    out: Path,
    library: LibraryFaces,
    clustering: Clustering,
    about: dict[str, Any],
    force: bool = False,
) -> dict[str, Any]:
    """Write the clustering of `library` into `out` for review (see the module docstring).

    Args:
        about: what made it (model, fingerprint, far, every_face, …), kept in clusters.json.
        force: replace a `people/` folder a person already renamed folders in.
    Returns:
        The content of clusters.json.
    Raises:
        OutputError: `out` is not writable, or holds reviewed folders (without `force`).
    """
    out = Path(out)
    people = out / PEOPLE
    reviewed = _reviewed_names(people)
    if reviewed and not force:
        listed = ", ".join(reviewed[:5]) + (" …" if len(reviewed) > 5 else "")
        raise OutputError(
            f"{people}: holds folders a person named ({listed}); enroll them first "
            f"(siamese gallery enroll GALLERY --clusters {out}), choose another --out, or "
            "pass --force to replace them"
        )
    record = _record(library, clustering, about)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if people.exists():
            shutil.rmtree(people)
        sheets = out / "sheets"
        if sheets.exists():
            shutil.rmtree(sheets)
        _write_links(people, library.faces, clustering)
        sheet_files = _write_sheets(sheets, library.faces, clustering)
        write_json_atomic(out / "clusters.json", record)
        _write_csv(out / "clusters.csv", record["faces"])
        write_bytes_atomic(out / "index.html", _index_html(record, sheet_files).encode())
    except OSError as err:
        raise OutputError(f"{out}: cannot write the clusters there ({err})") from None
    return record


def _reviewed_names(people: Path) -> list[str]:
    """Folders a person touched: renamed, or holding a file that is not one of our links (a
    photo they added)."""
    if not people.is_dir():
        return []
    return sorted(
        p.name
        for p in people.iterdir()
        if p.is_dir()
        and (
            not is_generated_name(p.name)
            or any(not _LINK.match(e.name) for e in p.iterdir() if not e.name.startswith("."))
        )
    )


def _record(library: LibraryFaces, clustering: Clustering, about: dict[str, Any]) -> dict:
    faces = []
    for i, face in enumerate(library.faces):
        label = int(clustering.labels[i])
        other = int(clustering.alternative[i])
        faces.append(
            {
                "id": i,
                "file": face.file,
                "face": face.face,
                "box": face.box,
                "sha256": face.sha256,
                "cluster": cluster_name(label) if label >= 0 else None,
                "distance_to_centre": round(float(clustering.centre_distances[i]), 6),
                "uncertain": other >= 0,
                "could_join": cluster_name(other) if other >= 0 else None,
            }
        )
    uncertain = clustering.uncertain_per_cluster().tolist()
    clusters = [
        {
            "name": cluster_name(k),
            "size": int(size),
            "uncertain": int(uncertain[k]),
            "folder": f"{PEOPLE}/{cluster_name(k)}",
        }
        for k, size in enumerate(clustering.sizes.tolist())
    ]
    return {
        "format": FORMAT_VERSION,
        **about,
        "algorithm": clustering.algorithm,
        "threshold": clustering.threshold,
        "metric": clustering.metric,
        "photos": library.photos,
        "faces_found": len(library.faces),
        "clusters": clusters,
        "singletons": clustering.singletons,
        "no_face": library.no_face,
        "unreadable": [{"file": f, "reason": r} for f, r in library.unreadable],
        "faces": faces,
    }


def _link_name(index: int, face: PhotoFace) -> str:
    return f"f{index:06d}-{Path(face.file).name}"


def _write_links(people: Path, faces: list[PhotoFace], clustering: Clustering) -> None:
    """A folder per cluster (and one for the singletons) of links to the photos; a copy
    where the file system has no symbolic links."""
    for i, face in enumerate(faces):
        label = int(clustering.labels[i])
        folder = people / (cluster_name(label) if label >= 0 else UNCLUSTERED)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / _link_name(i, face)
        source = Path(face.file).resolve()
        try:
            os.symlink(source, target)
        except OSError:
            shutil.copyfile(source, target)


def _thumbnail(face: PhotoFace, decoded: dict[str, np.ndarray | None]) -> Image.Image:
    """The face cut from its photo with a margin (the whole image without a box), square."""
    from siamese.data.image_files import BadImageError, decode_image

    if face.file not in decoded:
        try:
            decoded[face.file] = decode_image(face.file, 3, None, "stretch")
        except (BadImageError, OSError):
            decoded[face.file] = None
    pixels = decoded[face.file]
    if pixels is None:
        return Image.new("RGB", (THUMBNAIL, THUMBNAIL), (200, 200, 200))
    image = Image.fromarray(np.transpose(pixels, (1, 2, 0)))
    if face.box is not None:
        left, top, right, bottom = face.box
        margin = 0.25 * max(right - left, bottom - top)
        image = image.crop(
            (
                int(max(0, left - margin)),
                int(max(0, top - margin)),
                int(min(image.width, right + margin)),
                int(min(image.height, bottom + margin)),
            )
        )
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    square = Image.new("RGB", (THUMBNAIL, THUMBNAIL), (255, 255, 255))
    square.paste(image, ((THUMBNAIL - image.width) // 2, (THUMBNAIL - image.height) // 2))
    return square


def _sheet(
    title: str, members: np.ndarray, faces: list[PhotoFace], uncertain: np.ndarray, decoded: dict
) -> bytes:
    """A PNG grid of the members' faces under a title line."""
    shown = members[:SHEET_FACES]
    columns = min(10, max(1, shown.size))
    rows = -(-shown.size // columns)
    pad, header = 4, 22
    cell = THUMBNAIL + pad
    sheet = Image.new("RGB", (columns * cell + pad, header + rows * cell + pad), "white")
    draw = ImageDraw.Draw(sheet)
    more = f" (first {shown.size} of {members.size})" if members.size > shown.size else ""
    draw.text((pad, 5), f"{title}: {members.size} face(s){more}", fill="black")
    for j, index in enumerate(shown.tolist()):
        x, y = pad + (j % columns) * cell, header + (j // columns) * cell
        sheet.paste(_thumbnail(faces[index], decoded), (x, y))
        if uncertain[index]:
            draw.rectangle((x, y, x + THUMBNAIL - 1, y + THUMBNAIL - 1), outline="orange", width=4)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def _write_sheets(sheets: Path, faces: list[PhotoFace], clustering: Clustering) -> list[str]:
    sheets.mkdir(parents=True, exist_ok=True)
    decoded: dict[str, np.ndarray | None] = {}
    names = []
    for k, members in enumerate(clustering.every_cluster()):
        name = cluster_name(k)
        png = _sheet(name, members, faces, clustering.uncertain, decoded)
        write_bytes_atomic(sheets / f"{name}.png", png)
        names.append(name)
        if len(decoded) > 256:
            decoded.clear()  # bounded memory on large libraries
    alone = np.flatnonzero(clustering.labels < 0)
    if alone.size:
        png = _sheet(UNCLUSTERED, alone, faces, clustering.uncertain, decoded)
        write_bytes_atomic(sheets / f"{UNCLUSTERED}.png", png)
        names.append(UNCLUSTERED)
    return names


def _write_csv(path: Path, faces: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = ["id", "file", "face", "box", "cluster", "distance_to_centre", "uncertain"]
    writer.writerow([*columns, "could_join"])
    for face in faces:
        box = "" if face["box"] is None else " ".join(f"{v:g}" for v in face["box"])
        writer.writerow(
            [
                face["id"],
                face["file"],
                face["face"],
                box,
                face["cluster"] or "",
                face["distance_to_centre"],
                int(face["uncertain"]),
                face["could_join"] or "",
            ]
        )
    write_bytes_atomic(path, buffer.getvalue().encode())


def _index_html(record: dict, sheets: list[str]) -> str:
    parts = [
        "<!doctype html><meta charset='utf-8'><title>siamese cluster</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}img{max-width:100%;"
        "border:1px solid #ccc}section{margin-bottom:2em}</style>",
        f"<h1>{len(record['clusters'])} clusters in {record['photos']} photos</h1>",
        "<p>"
        + html.escape(
            f"{record['faces_found']} faces, {record['singletons']} left alone; decided at "
            f"distance {record['threshold']:.4g} ({record['algorithm']}). Faces framed in "
            "orange are uncertain (another cluster is as near). Rename a folder in people/ "
            "to name the person, move a wrong face's link to its folder, then: siamese "
            "gallery enroll GALLERY --clusters THIS_FOLDER"
        )
        + "</p>",
    ]
    sizes = {c["name"]: c for c in record["clusters"]}
    for name in sheets:
        info = sizes.get(name)
        caption = (
            f"{name}: {info['size']} faces, {info['uncertain']} uncertain — folder {info['folder']}"
            if info
            else f"{name}: faces in no cluster — folder {PEOPLE}/{UNCLUSTERED}"
        )
        parts.append(
            f"<section><h2>{html.escape(caption)}</h2>"
            f"<img src='sheets/{html.escape(name)}.png' alt='{html.escape(name)}'></section>"
        )
    if record["no_face"] or record["unreadable"]:
        parts.append(
            f"<p>No face found in {len(record['no_face'])} photo(s); "
            f"{len(record['unreadable'])} unreadable (listed in clusters.json).</p>"
        )
    return "\n".join(parts)


@dataclass(frozen=True)
class ReviewedCluster:
    """One folder of a reviewed clustering.

    Attributes:
        folder: its name in `people/`.
        name: the person's name: the folder's, or the one given for it; None while the folder
            keeps its generated name (not enrolled).
        faces: the faces linked from it (clusters.json's records).
        extra_photos: image files a person added that `siamese cluster` did not write (their
            main face is enrolled).
    """

    folder: str
    name: str | None
    faces: list[dict]
    extra_photos: list[Path]


def read_record(out: Path) -> dict:
    """clusters.json of a `siamese cluster` output folder.

    Raises:
        DataError: the folder is not one (no or unreadable clusters.json).
    """
    path = Path(out) / "clusters.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{out}: no clusters.json; give the --out folder of `siamese cluster`"
        ) from None
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read it ({err}); run siamese cluster again") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT_VERSION:
        raise DataError(f"{path}: not a clusters.json of this version; run siamese cluster again")
    return record


def reviewed_clusters(out: Path, names: dict[str, str] | None = None) -> list[ReviewedCluster]:
    """The folders of `out/people/` as a person left them.

    Args:
        names: folder (or cluster number, "3" for cluster-003) → person's name, for folders
            not renamed.
    Raises:
        DataError: not a `siamese cluster` folder; a name given for a folder that does not
            exist; a link to a face clusters.json does not have.
    """
    from siamese.data.image_files import IMAGE_SUFFIXES

    record = read_record(out)
    faces = {int(f["id"]): f for f in record["faces"]}
    people = Path(out) / PEOPLE
    if not people.is_dir():
        raise DataError(f"{people}: missing; run siamese cluster again to write it")
    folders = sorted(p for p in people.iterdir() if p.is_dir() and not p.name.startswith("."))
    given = _resolve_names(names or {}, [p.name for p in folders], people)
    out_clusters = []
    for folder in folders:
        linked, extra = [], []
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            match = _LINK.match(entry.name)
            if match:
                face_id = int(match.group(1))
                if face_id not in faces:
                    raise DataError(
                        f"{entry}: names face {face_id}, which {out}/clusters.json does not "
                        "hold; rename the file without its f-number prefix to enroll it as a "
                        "new photo"
                    )
                linked.append(faces[face_id])
            elif entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
                extra.append(entry)
        name = given.get(folder.name)
        if name is None and not is_generated_name(folder.name):
            name = folder.name
        out_clusters.append(ReviewedCluster(folder.name, name, linked, extra))
    return out_clusters


def _resolve_names(names: dict[str, str], folders: list[str], people: Path) -> dict[str, str]:
    resolved = {}
    for key, name in names.items():
        folder = cluster_name(int(key) - 1) if key.isdigit() else key
        if folder not in folders:
            raise DataError(
                f"--name {key}={name}: {people} has no folder {folder!r} (it has "
                f"{', '.join(folders[:8])}{' …' if len(folders) > 8 else ''})"
            )
        resolved[folder] = name
    return resolved
