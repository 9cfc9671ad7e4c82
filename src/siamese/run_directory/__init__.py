"""The run directory: one folder holding everything about one run (one training of one config),
the contract that training writes and evaluation, export, recognition and the CLI read.

- `layout`: the files a run directory holds (`RUN_FILES`), and the rules for claiming a
  folder (never write beside a user's files, never mix two runs).
- `data`: the run's data from its `config.yaml` alone: the training and validation examples,
  the record of their split (`split.json`), the held-out test classes, the pair protocol's
  pairs.
- `metrics`: `metrics.csv`, written as the run trains (and TensorBoard beside it), read back.

"Run" means this throughout siamese: `train_run` makes one, `evaluate_run` measures one,
`RunConfig` is its config. May import `config`, `data`, `atomic_files` and `errors`.
"""
