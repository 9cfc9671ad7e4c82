"""Data derived from other data, whatever its source: `resized` (the `image_size` option; fitting
out-of-distribution or cross-dataset examples to a model's input size and channel count) and
`rotated_classes` (rotations as new classes, the Omniglot class augmentation). Each takes a
`LabeledData` and gives one, in memory or streamed (the transform is then applied per batch).
May import `data.labeled` and `errors` only.
"""
