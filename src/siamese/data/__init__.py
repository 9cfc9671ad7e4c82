"""Data: where labelled examples come from and how they are grouped, by concept.

- `labeled`: `LabeledData`, the one form every source produces, and `ImageSource`, the small
  protocol its images follow when they are not a tensor in memory.
- `sources`: `load_dataset`, every source behind one name; `arrays` (`arrays:PATH`: vectors or
  sequences from .npz, .npy, CSV); `image_files`: decoding one image file (torch-free).
- `datasets/`: the named datasets (catalog, download, archives, IDX, local copies, one module
  per dataset).
- `folders/`: image folders (listing and shared checks, decoded, streamed, face crops).
- `derived/`: data made from data (resized, fitted to a model, rotated classes).
- `sampling/`: P×K batches, offline pairs and triplets, the pair tutorials' protocol.
- `splits` (seeded splits and their record), `transforms` (batch augmentation),
  `fingerprints` (which examples of one set stand in another).

May import `atomic_files`, `cache`, `faces` (the face step a source declares) and `errors`:
data knows nothing of models or training, and faces never imports data.

Names are imported on first use: decoding worker processes import
`siamese.data.image_files`, which must not pay for importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any


def public_names(modules: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """A lazily exporting package's table, written by module, as `lazy_getattr` takes it.

    Args:
        modules: each module's dotted name → the public names the package takes from it.
    Returns:
        Each public name → the dotted name of its module.
    """
    return {name: module for module, names in modules.items() for name in names}


def lazy_getattr(
    package: str, public: Mapping[str, str], namespace: dict[str, Any] | None = None
) -> Callable[[str], Any]:
    """The module-level `__getattr__` of a package whose public names are imported on first use
    (PEP 562), so that importing the package costs nothing until a name is used.

    It lives here, in the lowest layer that every lazily exporting package may import, because
    this package must itself stay torch-free (see above).

    Args:
        package: the package's dotted name, for the AttributeError's message.
        public: each public name → the dotted name of the module that defines it.
        namespace: the package's `globals()`, where a resolved name is kept so that the next
            look-up does not come back here; None: resolved again at each look-up.
    Returns:
        `__getattr__(name)`: the attribute `name` of its module (imported now).
    Raises (from `__getattr__`):
        AttributeError: `name` is not one of `public`.
    """

    def __getattr__(name: str) -> Any:
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(public[name]), name)
        if namespace is not None:
            namespace[name] = value
        return value

    return __getattr__


_PUBLIC = public_names(
    {
        "siamese.data.splits": ("DataSplit", "split_classes", "split_data"),
        "siamese.data.labeled": ("LabeledData", "SkippedFile"),
        "siamese.data.sources": ("load_dataset",),
        "siamese.data.datasets.glyphs": ("load_glyphs",),
    }
)
__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from siamese.data.datasets.glyphs import load_glyphs
    from siamese.data.labeled import LabeledData, SkippedFile
    from siamese.data.sources import load_dataset
    from siamese.data.splits import DataSplit, split_classes, split_data


__getattr__ = lazy_getattr(__name__, _PUBLIC)
