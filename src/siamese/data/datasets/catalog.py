"""The datasets `siamese` knows by name: their files, official URLs, checksums and terms.

Each dataset lives in its own folder of the data directory (`--data-dir`, else
`$SIAMESE_DATA_DIR`, else `~/.cache/siamese`), with the file names its source publishes.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from siamese.errors import ConfigError, DataError


@dataclass(frozen=True)
class RemoteFile:
    """A file of a dataset, relative to the dataset's folder in the data directory.

    `checksum` is "sha256:<hex>", or "md5:<hex>" where the source publishes only an md5;
    None where nobody publishes one (the loader then checks the layout instead).
    """

    name: str
    urls: tuple[str, ...]
    checksum: str | None
    size: int | None = None


@dataclass(frozen=True)
class Layout:
    """One form of a dataset's files that its loader reads, relative to the dataset's folder.

    `marker` is the path whose presence means this form is there; `root` what the loader opens
    (an archive, a pack or a folder, "." for the dataset's folder itself; the marker when
    None). Both may hold "{split}", replaced by the split's file stem.
    """

    marker: str
    root: str | None = None

    def paths(self, folder: Path, stem: str) -> tuple[Path, Path]:
        """(marker, root) under `folder` for the split with file stem `stem`."""
        marker = folder / self.marker.format(split=stem)
        root = folder / (self.root if self.root is not None else self.marker).format(split=stem)
        return marker, root


@dataclass(frozen=True)
class DatasetInfo:
    """What `siamese datasets list` shows, and where `download` and the loaders look.

    `layouts` lists every form of the files the loader accepts, in the order it tries them;
    `check` and the loaders both go by it.
    """

    name: str
    folder: str
    summary: str
    splits: tuple[str, ...]
    default_split: str
    files: tuple[RemoteFile, ...] = ()
    layouts: tuple[Layout, ...] = ()
    split_stems: dict[str, str] = field(default_factory=dict)  # split -> "{split}" in layouts
    manual: str | None = None  # how to get it where no download is possible
    terms: str = ""
    citation: str = ""
    bundled: bool = False  # generated or shipped with a package: nothing to download
    requires: str | None = None  # the Python package a bundled dataset ships in, if not ours

    def find_layout(self, folder: Path, split: str) -> tuple[Layout, Path] | None:
        """The first layout present in `folder` (the dataset's folder) that holds `split`,
        with the path the loader opens; None when there is none."""
        stem = self.split_stems.get(split, split)
        for layout in self.layouts:
            marker, root = layout.paths(folder, stem)
            if marker.exists():
                return layout, root
        return None

    def locate(self, data_dir: Path, split: str) -> Path:
        """The path the loader opens for `split` under `data_dir`: the first accepted layout
        present. Raises DataError naming every accepted layout and how to get the files."""
        folder = data_dir / self.folder
        found = self.find_layout(folder, split)
        if found is None:
            raise DataError(missing_files_error(self, folder, self.layout_names(split)))
        return found[1]

    def layout_names(self, split: str) -> list[str]:
        """The markers of every accepted layout for `split`, for messages."""
        stem = self.split_stems.get(split, split)
        return [layout.marker.format(split=stem) for layout in self.layouts]


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_OMNIGLOT_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"


_IDX_LAYOUTS = (
    Layout("{split}-images-idx3-ubyte.gz"),
    Layout("{split}-images-idx3-ubyte"),  # decompressed, as in torchvision's raw/ folder
)
_IDX_STEMS = {"train": "train", "test": "t10k"}
# Digests of the repacked files of the project's shared data directory, which the loaders
# accept beside the official ones: `check` verifies them by file name.
SHARED_PACKS: dict[str, str] = {
    "orl_faces.tar.gz": "sha256:3f572092f8449fc56bc6eb94fd2c0e9948a5e1adc56f60da5c9291cd22c28abc",
    "omniglot_background.npz": "sha256:e2f7a9a94059fcf71375fa1594cf69f739f6e1ee10172d29ee3a60e33824fb49",
    "omniglot_evaluation.npz": "sha256:a369b5db7302554c8c0cf24d28c6eabab05381ba0155914a826b67dda31f768b",
    "5-celebrity-faces-dataset.tar.gz": "sha256:94d97d478dea6867e4849f6e8a277eb1720fea2eaa667d5937f08e9d23296964",
}


def _idx_files(
    mirrors: tuple[str, ...], sums: dict[str, tuple[str, int]]
) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(name, tuple(m + name for m in mirrors), f"sha256:{digest}", size)
        for name, (digest, size) in sums.items()
    )


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="mnist",
            folder="mnist",
            summary="handwritten digits, 10 classes, 60,000 train + 10,000 test, 28×28 gray",
            splits=("train", "test"),
            default_split="train",
            files=_idx_files(
                _MNIST_MIRRORS,
                {
                    "train-images-idx3-ubyte.gz": (
                        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                        9912422,
                    ),
                    "train-labels-idx1-ubyte.gz": (
                        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                        28881,
                    ),
                    "t10k-images-idx3-ubyte.gz": (
                        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                        1648877,
                    ),
                    "t10k-labels-idx1-ubyte.gz": (
                        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                        4542,
                    ),
                },
            ),
            layouts=_IDX_LAYOUTS,
            split_stems=_IDX_STEMS,
            terms="© Yann LeCun and Corinna Cortes; commonly redistributed under CC BY-SA 3.0",
            citation="LeCun, Bottou, Bengio, Haffner (1998), Gradient-based learning applied to document recognition",
        ),
        DatasetInfo(
            name="fashion-mnist",
            folder="fashion-mnist",
            summary="Zalando article images, 10 classes, 60,000 train + 10,000 test, 28×28 gray",
            splits=("train", "test"),
            default_split="train",
            files=_idx_files(
                _FASHION_MIRRORS,
                {
                    "train-images-idx3-ubyte.gz": (
                        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                        26421880,
                    ),
                    "train-labels-idx1-ubyte.gz": (
                        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                        29515,
                    ),
                    "t10k-images-idx3-ubyte.gz": (
                        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                        4422102,
                    ),
                    "t10k-labels-idx1-ubyte.gz": (
                        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                        5148,
                    ),
                },
            ),
            layouts=_IDX_LAYOUTS,
            split_stems=_IDX_STEMS,
            terms="MIT, © 2017 Zalando SE",
            citation="Xiao, Rasul, Vollgraf (2017), Fashion-MNIST: a novel image dataset for benchmarking machine learning algorithms",
        ),
        DatasetInfo(
            name="orl",
            folder="orl_faces",
            summary="AT&T / ORL faces, 40 people × 10 images, 112×92 gray",
            splits=("all",),
            default_split="all",
            files=(
                RemoteFile(
                    "att_faces.zip",
                    ("https://www.cl.cam.ac.uk/research/dtg/attarchive/pub/data/att_faces.zip",),
                    None,
                ),
            ),
            layouts=(
                Layout("orl_faces.tar.gz"),
                Layout("att_faces.zip"),
                Layout("att_faces.tar.gz"),
                Layout("orl_faces.zip"),
                Layout("s1", "."),
                Layout("orl_faces/s1", "orl_faces"),
                Layout("att_faces/s1", "att_faces"),
            ),
            manual=(
                "AT&T Laboratories Cambridge no longer serves the original archive reliably. Put "
                "att_faces.zip or orl_faces.tar.gz (or the extracted s1/ … s40/ folders of .pgm "
                "files) in this folder; copies are on Kaggle and GitHub under 'ORL faces'. The "
                "loader checks the layout: 40 folders × 10 PGM images of 112×92."
            ),
            terms="no formal license; credit Olivetti Research Laboratory (research use)",
            citation="Samaria, Harter (1994), Parameterisation of a stochastic model for human face identification",
        ),
        DatasetInfo(
            name="omniglot",
            folder="omniglot",
            summary="handwritten characters of 50 alphabets × 20 drawers, 105×105 binary; "
            "background 964 characters, evaluation 659",
            splits=("background", "evaluation"),
            default_split="background",
            files=(
                RemoteFile(
                    "images_background.zip",
                    (_OMNIGLOT_URL + "images_background.zip",),
                    # The md5s the torchvision Omniglot loader publishes; no sha256 is published.
                    "md5:68d2efa1b9178cc56df9314c21c6e718",
                ),
                RemoteFile(
                    "images_evaluation.zip",
                    (_OMNIGLOT_URL + "images_evaluation.zip",),
                    "md5:6b91aef0f799c5bb55b94e3f2daec811",
                ),
            ),
            layouts=(
                Layout("omniglot_{split}.npz"),
                Layout("images_{split}.zip"),
                Layout("images_{split}"),
            ),
            terms="MIT, © 2015 Brenden Lake",
            citation="Lake, Salakhutdinov, Tenenbaum (2015), Human-level concept learning through probabilistic program induction",
        ),
        DatasetInfo(
            name="5-celebrity-faces",
            folder="5-celebrity-faces",
            summary="web photos of 5 people, 93 train + 25 val JPGs of varied sizes, RGB",
            splits=("train", "val", "all"),
            default_split="all",
            layouts=(
                Layout("5-celebrity-faces-dataset.tar.gz"),
                Layout("5-celebrity-faces-dataset.zip"),
                Layout("5-celebrity-faces-dataset/train", "5-celebrity-faces-dataset"),
                Layout("data/train", "data"),
                Layout("train", "."),
            ),
            manual=(
                "Kaggle needs a login: download dansbecker/5-celebrity-faces-dataset from "
                "kaggle.com and put the archive (as 5-celebrity-faces-dataset.tar.gz or .zip) or "
                "its extracted train/ and val/ folders here."
            ),
            terms="Kaggle demo set of scraped web photos; research and tests only",
        ),
        DatasetInfo(
            name="digits",
            folder="",
            summary="scikit-learn's 8×8 handwritten digits, 10 classes, 1,797 images",
            splits=("all",),
            default_split="all",
            bundled=True,
            requires="sklearn",
            manual="ships with scikit-learn: pip install scikit-learn",
            terms="BSD (scikit-learn); UCI Optical Recognition of Handwritten Digits",
        ),
        DatasetInfo(
            name="glyphs",
            folder="",
            summary="characters rendered from matplotlib's 16 font styles, 143 classes, 28×28",
            splits=("all", "train", "test"),
            default_split="all",
            bundled=True,
            manual="generated offline from the fonts that ship with matplotlib",
            terms="DejaVu and STIX font licenses (free)",
        ),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """The catalog entry of `name`, or a ConfigError listing the known names."""
    if name not in DATASETS:
        known = ", ".join(DATASETS)
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown dataset {name!r}{hint}; known datasets: {known}, or folder:PATH and "
            "arrays:PATH for your own data"
        )
    return DATASETS[name]


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: `data_dir`, else `$SIAMESE_DATA_DIR`, else
    `$XDG_CACHE_HOME/siamese` (default `~/.cache/siamese`)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    explicit = os.environ.get("SIAMESE_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "siamese"


def how_to_get(info: DatasetInfo, data_dir: Path | None = None) -> str:
    """One line on how to get `info`'s files: the download command and/or the manual way."""
    where = f" --data-dir {data_dir}" if data_dir is not None else ""
    command = f"run `siamese datasets download {info.name}{where}`"
    if info.files and all(f.checksum for f in info.files):
        return command
    if info.files:
        return f"{command} (it tries the original address), or: {info.manual}"
    return info.manual or ""


def missing_files_error(info: DatasetInfo, folder: Path, wanted: list[str]) -> str:
    """The message for a dataset whose files are not where they should be."""
    lines = "\n".join(f"  {folder / name}" for name in wanted)
    return (
        f"{info.name}: files not found. Expected:\n{lines}\n{how_to_get(info, folder.parent)}\n"
        "(the data directory is --data-dir, else $SIAMESE_DATA_DIR, else ~/.cache/siamese)"
    )
