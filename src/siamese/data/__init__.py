"""Data: where labelled examples come from and how they are grouped, by concept.

- `labeled`: `LabeledData`, the one form every source produces, and `ImageSource`, the small
  protocol its images follow when they are not a tensor in memory.
- `batches`: `load_batches`, reading either kind of x in batches (streamed images decoded in
  worker processes).
- `sources`: `load_dataset`, every source behind one name; `arrays` (`arrays:PATH`: vectors or
  sequences from .npz, .npy, CSV); `image_files`: decoding one image file (torch-free).
- `datasets/`: the named datasets (catalog, download, archives, IDX, one module per dataset);
  `local_copies`: what of each is in the data directory, fetching what is not.
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

from typing import TYPE_CHECKING

from siamese.lazy_exports import lazy_getattr, public_names

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


__getattr__ = lazy_getattr(__name__, _PUBLIC, globals())
