"""The AT&T / ORL Database of Faces: 40 people × 10 grayscale images of 112×92.

Read from `orl_faces.tar.gz` or `att_faces.zip` (in memory, nothing extracted) or from the
extracted `s1/ … s40/` folders, in the `orl_faces` folder of the data directory (every form
the catalog's `layouts` lists).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from siamese.data.datasets.archives import read_members
from siamese.data.datasets.catalog import dataset_info
from siamese.data.image_files import decode_gray_bytes
from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError, DataError

SUBJECTS, IMAGES_PER_SUBJECT, HEIGHT, WIDTH = 40, 10, 112, 92
_MEMBER = re.compile(r"(?:^|/)s(\d+)/(\d+)\.pgm$", re.IGNORECASE)


def load_orl(split: str, data_dir: Path) -> LabeledData:
    """All 400 ORL faces.

    Args:
        split: "all" (the dataset has no official split; split it by class or by sample).
        data_dir: the data directory; files are read from `data_dir/orl_faces/`.
    Returns:
        LabeledData with x uint8 (400, 1, 112, 92), y int64 (400,) = subject − 1, classes
        "s1" … "s40", meta["image"] (1..10, the file number), paths like "s1/1.pgm".
    Raises:
        DataError: files missing, damaged, or not laid out as 40 folders of 10 PGMs.
    """
    info = dataset_info("orl")
    if split != "all":
        raise ConfigError(f"orl has one split, 'all', not {split!r}; use split='all'")
    source = info.locate(data_dir, split)
    faces: dict[tuple[int, int], np.ndarray] = {}
    for name, payload in _files(source):
        match = _MEMBER.search(name)
        if match is None:
            continue
        where = f"{source}:{name}" if source.is_file() else str(source / name)
        faces[(int(match[1]), int(match[2]))] = decode_gray_bytes(
            payload, where, (HEIGHT, WIDTH), "ORL"
        )
    _check_layout(source, faces)
    keys = sorted(faces)
    return LabeledData(
        x=torch.from_numpy(np.stack([faces[k] for k in keys])[:, None]),
        y=torch.tensor([s - 1 for s, _ in keys], dtype=torch.int64),
        classes=[f"s{s}" for s in range(1, SUBJECTS + 1)],
        meta={"image": torch.tensor([i for _, i in keys], dtype=torch.int64)},
        paths=[f"s{s}/{i}.pgm" for s, i in keys],
    )


def _files(root: Path) -> Iterator[tuple[str, bytes]]:
    """The files of an archive or of the extracted folders, as (name, bytes), read lazily."""
    if root.is_file():
        return ((member.name, payload) for member, payload in read_members(root))
    return ((p.relative_to(root).as_posix(), p.read_bytes()) for p in sorted(root.glob("s*/*.pgm")))


def _check_layout(source: Path, faces: dict[tuple[int, int], np.ndarray]) -> None:
    expected = {(s, i) for s in range(1, SUBJECTS + 1) for i in range(1, IMAGES_PER_SUBJECT + 1)}
    missing, extra = sorted(expected - faces.keys()), sorted(faces.keys() - expected)
    if missing or extra:
        shown = ", ".join(f"s{s}/{i}.pgm" for s, i in (missing or extra)[:5])
        what = (
            f"{len(missing)} images missing ({shown} …)"
            if missing
            else (f"{len(extra)} unexpected images ({shown} …)")
        )
        raise DataError(
            f"{source}: unexpected layout for the ORL faces: {what}; expected s1/ … s40/ "
            "each holding 1.pgm … 10.pgm. Get a complete copy of the dataset"
        )
