"""Omniglot: handwritten characters of 50 alphabets, 20 drawers each, 105×105.

Read, in the `omniglot` folder of the data directory, from the first of:
- the `.npz` packs `omniglot_<split>.npz` (arrays images, alphabet, alphabet_names, character,
  char_id, drawer, label, path; pixels 1 = background, 0 = ink);
- the official `images_<split>.zip` (decoded once, then cached);
- the extracted `images_<split>/<alphabet>/characterNN/XXXX_DD.png` folders.
Pixels are returned as ink 255 on background 0, like MNIST.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from siamese.cache import load_npz, save_npz_atomic, source_cache_path
from siamese.data.datasets.archives import read_members
from siamese.data.datasets.catalog import dataset_info
from siamese.data.image_files import decode_gray_bytes
from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError, DataError

SIZE = 105
_FORMAT_VERSION = 1
_FILE = re.compile(r"(?:^|/)images_(\w+)/([^/]+)/character(\d+)/(\d+)_(\d+)\.png$")
_PACK_ARRAYS = ("images", "alphabet", "alphabet_names", "character", "char_id", "drawer", "label")


def load_omniglot(split: str, data_dir: Path, use_cache: bool = True) -> LabeledData:
    """One of Omniglot's two sets.

    Args:
        split: "background" (30 alphabets, 964 characters, 19,280 images) or "evaluation"
            (20 alphabets, 659 characters, 13,180 images).
        data_dir: the data directory; files are read from `data_dir/omniglot/`.
        use_cache: keep the pixels decoded from a zip in the cache directory (an extracted
            folder is decoded every time: its files could change without the folder's date).
    Returns:
        LabeledData with x uint8 (N, 1, 105, 105) (ink 255), y int64 (N,) dense in
        (alphabet, character) order, classes "<alphabet>/characterNN", meta["alphabet"]
        (with meta_names["alphabet"]), meta["character"] (1-based within the alphabet),
        meta["drawer"] (1..20), meta["char_id"] (the global id of the file name), paths.
    Raises:
        DataError: files missing or damaged.
    """
    info = dataset_info("omniglot")
    if split not in info.splits:
        raise ConfigError(f"omniglot has the splits 'background' and 'evaluation', not {split!r}")
    source = info.locate(data_dir, split)
    if source.suffix == ".npz":
        arrays = _read_pack(source)
    elif source.is_file():
        members = ((member.name, payload) for member, payload in read_members(source))
        arrays = _decoded(source, split, use_cache, members)
    else:
        files = (
            (path.relative_to(data_dir / info.folder).as_posix(), path.read_bytes())
            for path in sorted(source.rglob("*.png"))
        )
        arrays = _decode_files(source, split, files)
    return _to_labeled(arrays)


def _read_pack(pack: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(pack, allow_pickle=False) as npz:
            missing = [name for name in (*_PACK_ARRAYS, "path") if name not in npz.files]
            if missing:
                raise DataError(
                    f"{pack}: the pack lacks the arrays {missing}; expected {list(_PACK_ARRAYS)} "
                    "and path: this is not an Omniglot pack made for siamese"
                )
            arrays = {name: npz[name] for name in (*_PACK_ARRAYS, "path")}
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{pack}: cannot read the pack ({err}); get it again") from None
    n = arrays["images"].shape[0]
    if arrays["images"].shape[1:] != (SIZE, SIZE) or any(
        arrays[name].shape != (n,) for name in ("alphabet", "character", "drawer", "label", "path")
    ):
        raise DataError(f"{pack}: arrays of inconsistent shapes; get the pack again")
    arrays["ink"] = (1 - arrays.pop("images").astype(np.uint8)) * np.uint8(255)
    return arrays


def _decoded(
    source: Path, split: str, use_cache: bool, files: Iterator[tuple[str, bytes]]
) -> dict[str, np.ndarray]:
    """The arrays of a zip (its files as (name, bytes), read lazily), from the cache when the
    zip is unchanged."""
    if not use_cache:
        return _decode_files(source, split, files)
    cache_file = source_cache_path("omniglot", source, f"{_FORMAT_VERSION}|{split}", ".npz")
    cached = load_npz(cache_file)
    if cached is not None:
        return cached
    arrays = _decode_files(source, split, files)
    save_npz_atomic(cache_file, **arrays)
    return arrays


def _decode_files(
    source: Path, split: str, files: Iterator[tuple[str, bytes]]
) -> dict[str, np.ndarray]:
    records: list[tuple[str, int, int, int, np.ndarray]] = []
    for name, payload in files:
        match = _FILE.search(name)
        if match is None or match[1] != split:
            continue
        pixels = decode_gray_bytes(payload, f"{source}:{name}", (SIZE, SIZE), "Omniglot")
        records.append((match[2], int(match[3]), int(match[4]), int(match[5]), pixels))
    if not records:
        raise DataError(
            f"{source}: no images_{split}/<alphabet>/characterNN/XXXX_DD.png files found; "
            "this is not the official Omniglot layout"
        )
    records.sort(key=lambda r: (r[0], r[1], r[3]))
    alphabet_names = sorted({r[0] for r in records})
    alphabet = np.array([alphabet_names.index(r[0]) for r in records], dtype=np.int16)
    character = np.array([r[1] for r in records], dtype=np.int16)
    _, label = np.unique(alphabet.astype(np.int64) * 1000 + character, return_inverse=True)
    return {
        "ink": 255 - np.stack([r[4] for r in records]),
        "alphabet": alphabet,
        "alphabet_names": np.array(alphabet_names),
        "character": character,
        "char_id": np.array([r[2] for r in records], dtype=np.int16),
        "drawer": np.array([r[3] for r in records], dtype=np.int8),
        "label": label.astype(np.int16),
        "path": np.array(
            [
                f"images_{split}/{r[0]}/character{r[1]:02d}/{r[2]:04d}_{r[3]:02d}.png"
                for r in records
            ]
        ),
    }


def _to_labeled(arrays: dict[str, np.ndarray]) -> LabeledData:
    names = [str(a) for a in arrays["alphabet_names"]]
    label = arrays["label"].astype(np.int64)
    n_classes = int(label.max()) + 1
    first = np.zeros(n_classes, dtype=np.int64)
    first[label[::-1]] = np.arange(label.size)[::-1]  # first example of every class
    classes = [
        f"{names[arrays['alphabet'][i]]}/character{int(arrays['character'][i]):02d}" for i in first
    ]
    as_long = lambda name: torch.from_numpy(arrays[name].astype(np.int64))  # noqa: E731
    return LabeledData(
        x=torch.from_numpy(np.ascontiguousarray(arrays["ink"])[:, None]),
        y=torch.from_numpy(label),
        classes=classes,
        meta={name: as_long(name) for name in ("alphabet", "character", "drawer", "char_id")},
        meta_names={"alphabet": names},
        paths=[str(p) for p in arrays["path"]],
    )
