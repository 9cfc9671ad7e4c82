"""`load_dataset`: every data source behind one name.

Named datasets come from the data directory (`data_dir`, else `$SIAMESE_DATA_DIR`, else
`~/.cache/siamese`); `folder:PATH` and `arrays:PATH` read the user's own data.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from siamese.cache import cache_dir
from siamese.data.datasets.archives import cached_extraction, is_archive
from siamese.data.datasets.catalog import dataset_info, resolve_data_dir
from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError, DataError

FOLDER_OPTIONS = (
    "image_size",
    "channels",
    "resize",
    "on_bad_file",
    "workers",
    "use_cache",
    "max_pixels",
    "face",
    "stream",
)
GLYPH_OPTIONS = ("held_out", "seed", "fonts", "alphabets", "variants", "use_cache")
ARRAY_OPTIONS = ("labels", "label_column")
NAMED_IMAGE_OPTIONS = ("face", "image_size", "rotated_classes")
"""Options every named image dataset takes on top of its own, applied after loading (the
folder-backed 5-celebrity-faces resizes while decoding instead: see FOLDER_OPTIONS)."""
TRAINING_ONLY_OPTIONS = ("rotated_classes",)
"""Options that shape the training data only: evaluation reads another split, or another
dataset, without them (a run's own held-out validation part is a share of the data as it was
trained on, so it keeps them)."""


def load_dataset(
    name: str,
    split: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> LabeledData:
    """Load a dataset by name.

    Args:
        name: "mnist", "fashion-mnist", "orl", "omniglot", "5-celebrity-faces", "digits",
            "glyphs", "folder:PATH" (one subfolder per class; PATH may be a directory or a
            .tar.gz/.zip of one) or "arrays:PATH" (.npz, .npy, CSV, or a directory of .npy).
        split: the dataset's own split ("train"/"test" for MNIST, "background"/"evaluation"
            for Omniglot, "train"/"val" for folders that have them, "train"/"test" for glyphs
            with `held_out` characters, "all"); None takes the dataset's default.
        data_dir: where the named datasets are.
        options: source options: for folders and 5-celebrity-faces image_size (H, W),
            channels (1 or 3), resize ("stretch", "crop", "pad"), on_bad_file ("error" or
            "skip"), workers, use_cache, max_pixels, face (a face step: each photo becomes
            its largest face; `siamese.faces.FaceStep`), stream (true, false or "auto":
            decode batches on demand instead of every image up front; auto streams above
            2 GiB decoded, `siamese.data.folders.streamed`) (5-celebrity-faces defaults to
            image_size (160, 160), resize "crop", channels 3; with a face step, to the face
            crops' size); for every other named image dataset face, image_size (H, W)
            (bilinear, antialiased: ORL at 56×46, Omniglot at 28×28)
            and rotated_classes (each class turned by 90°, 180°, 270° as three new classes, as
            Prototypical Networks train on Omniglot; square images);
            for glyphs held_out, seed, fonts, alphabets, variants, use_cache; for omniglot
            use_cache; for arrays labels, label_column.
    Returns:
        LabeledData: x uint8 (N, C, H, W) for images ((N, F) or (N, T, F) for arrays),
        y int64 (N,), class names, per-example metadata.
    Raises:
        ConfigError: unknown name, split or option. DataError: missing or bad files.

    Example:
        >>> from siamese import load_dataset
        >>> digits = load_dataset("digits")  # ships with scikit-learn: no download
        >>> len(digits), tuple(digits.x.shape), digits.x.dtype, digits.classes[:3]
        (1797, (1797, 1, 8, 8), torch.uint8, ['0', '1', '2'])
        >>> glyphs = load_dataset(
        ...     "glyphs",
        ...     variants=1,
        ...     fonts=("DejaVuSans.ttf",),
        ...     alphabets=("digits",),
        ...     use_cache=False,
        ... )
        >>> tuple(glyphs.x.shape), glyphs.y.tolist()
        ((10, 1, 28, 28), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    if name.startswith("folder:"):
        _check_options(name, options, FOLDER_OPTIONS)
        return _load_folder_or_archive(_user_path(name, "folder:"), split, options)
    if name.startswith("arrays:"):
        _check_options(name, options, ARRAY_OPTIONS)
        if split not in (None, "all"):
            raise ConfigError(f"{name}: arrays have no splits; leave split unset (got {split!r})")
        from siamese.data.arrays import load_arrays

        labels = options.get("labels")
        return load_arrays(
            _user_path(name, "arrays:"),
            labels=None if labels is None else Path(labels).expanduser(),
            label_column=options.get("label_column"),
        )
    info = dataset_info(name)
    split = info.default_split if split is None else split
    if split not in info.splits:
        raise ConfigError(
            f"{name} has the splits {', '.join(repr(s) for s in info.splits)}, not {split!r}"
        )
    root = resolve_data_dir(data_dir)
    if not _takes_named_image_options(name):
        return _NAMED[name](split, root, options)
    options = dict(options)
    face = options.pop("face", None)
    size = options.pop("image_size", None)
    rotated = options.pop("rotated_classes", False)
    if not isinstance(rotated, bool):
        raise ConfigError(f"{name}: rotated_classes must be true or false, got {rotated!r}")
    data = _NAMED[name](split, root, options)
    if face is not None:  # on the dataset's own pixels, before any resizing
        from siamese.data.folders.face_crops import with_face_crops
        from siamese.faces.preprocessing import face_step

        data = with_face_crops(data, face_step(face), name)
    if size is not None:
        from siamese.data.derived.resized import image_size_option, resized

        data = resized(data, image_size_option(name, size))
    if rotated:  # after resizing: four copies of the smaller images
        from siamese.data.derived.rotated_classes import with_rotated_classes

        data = with_rotated_classes(data)
    return data


def _user_path(name: str, prefix: str) -> Path:
    raw = name[len(prefix) :]
    if not raw:
        raise ConfigError(f"{name!r}: give a path after {prefix!r}, e.g. {prefix}data/my_images")
    return Path(raw).expanduser()


def _takes_named_image_options(name: str) -> bool:
    """Whether `load_dataset` applies NAMED_IMAGE_OPTIONS to this source after loading."""
    return name in _NAMED and name != "5-celebrity-faces"


def _check_options(name: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        generic = NAMED_IMAGE_OPTIONS if _takes_named_image_options(name) else ()
        valid = ", ".join(allowed + generic) or "none"
        raise ConfigError(f"{name}: unknown option(s) {unknown}; valid options: {valid}")


def _load_folder_or_archive(path: Path, split: str | None, options: dict[str, Any]) -> LabeledData:
    """A class-folder tree, or an archive of one (extracted once into the cache); messages
    about an archive's files name them as `ARCHIVE:member`, not by their cached copy."""
    from siamese.data.folders.loading import load_folder

    if not (path.is_file() and is_archive(path)):
        return load_folder(path, split, **options)
    root = cached_extraction(path, cache_dir() / "extracted")
    in_cache, in_archive = f"{root}/", f"{path}:"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = load_folder(root, split, **options)
    except DataError as err:
        raise DataError(
            str(err).replace(in_cache, in_archive).replace(str(root), str(path))
        ) from None
    for warning in caught:
        text = str(warning.message).replace(in_cache, in_archive).replace(str(root), str(path))
        warnings.warn(text, warning.category, stacklevel=3)
    return data


def _mnist(name: str) -> Callable[[str, Path, dict[str, Any]], LabeledData]:
    def load(split: str, root: Path, options: dict[str, Any]) -> LabeledData:
        from siamese.data.datasets.mnist import load_mnist_format

        _check_options(name, options, ())
        return load_mnist_format(name, split, root)

    return load


def _orl(split: str, root: Path, options: dict[str, Any]) -> LabeledData:
    from siamese.data.datasets.orl import load_orl

    _check_options("orl", options, ())
    return load_orl(split, root)


def _omniglot(split: str, root: Path, options: dict[str, Any]) -> LabeledData:
    from siamese.data.datasets.omniglot import load_omniglot

    _check_options("omniglot", options, ("use_cache",))
    return load_omniglot(split, root, **options)


def _digits(split: str, root: Path, options: dict[str, Any]) -> LabeledData:
    from siamese.data.datasets.digits import load_digits

    _check_options("digits", options, ())
    return load_digits(split)


def _glyphs(split: str, root: Path, options: dict[str, Any]) -> LabeledData:
    from siamese.data.datasets.glyphs import load_glyphs
    from siamese.data.splits import split_classes

    _check_options("glyphs", options, GLYPH_OPTIONS)
    held_out = options.pop("held_out", 40)
    seed = options.get("seed", 0)
    if "fonts" in options:
        options["fonts"] = tuple(options["fonts"])
    if "alphabets" in options:
        options["alphabets"] = tuple(options["alphabets"])
    data = load_glyphs(**options)
    if split == "all":
        return data
    # A seeded class permutation (the rendering seed): its first `held_out` characters are
    # the test split, never trained on by the quick-start demo, which trains on `train`.
    test, train = split_classes(data.class_ids, [held_out], seed=seed)
    return data.with_classes(test if split == "test" else train)


def _celebrities(split: str, root: Path, options: dict[str, Any]) -> LabeledData:
    info = dataset_info("5-celebrity-faces")
    _check_options(info.name, options, FOLDER_OPTIONS)
    # The photos have many sizes: by default a centred square at FaceNet's input size; with
    # a face step, the face crops at the step's size.
    defaults = {"image_size": (160, 160), "resize": "crop"} if options.get("face") is None else {}
    options = {**defaults, "channels": 3, **options}
    return _load_folder_or_archive(info.locate(root, split), split, options)


_NAMED: dict[str, Callable[[str, Path, dict[str, Any]], LabeledData]] = {
    "mnist": _mnist("mnist"),
    "fashion-mnist": _mnist("fashion-mnist"),
    "orl": _orl,
    "omniglot": _omniglot,
    "5-celebrity-faces": _celebrities,
    "digits": _digits,
    "glyphs": _glyphs,
}
