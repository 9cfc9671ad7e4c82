"""The datasets `siamese` knows by name, and how their files reach the data directory.

- `catalog`: each dataset's files, official URLs, checksums, terms and accepted layouts.
- `download`: streaming a file into place with its length and checksum checked; `archives`:
  reading and extracting tar and zip archives safely; `idx`: the IDX format of MNIST.
- one module per dataset: `mnist` (MNIST, Fashion-MNIST), `omniglot`, `orl` (ORL faces),
  `digits` (scikit-learn's 8×8 digits) and `glyphs` (characters rendered from fonts, offline).

May import `data.labeled`, `data.image_files`, `cache`, `atomic_files` and `errors`; the one
entry point for users is `siamese.data.sources.load_dataset`, and what of each dataset is in the
data directory is `siamese.data.local_copies` (it loads them to check).
"""
