"""Image folders: the user's own photos, one subfolder per class (`folder:PATH`).

- `listing`: the class-folder tree listed once (`split_folders`), the cached index of its
  image files, and the checks every load shares (which split, no empty class, no empty folder).
- `decoded`: the whole folder decoded into memory by worker processes, and the cache of
  decoded pixels keyed by the files' sizes and times.
- `streamed`: folders larger than memory, decoded batch by batch (`StreamedImages`, an
  `ImageSource` of `siamese.data.labeled`).
- `face_crops`: the face step (`siamese.faces.preprocessing`) applied to files and arrays.

May import `data.labeled`, `data.image_files`, `data.derived`, `faces`, `cache` and `errors`.
Decoding workers import only `siamese.data.image_files` and `face_crops`: no torch there.
"""
