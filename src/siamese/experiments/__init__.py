"""Experiments that chain training runs and their evaluation: the quick-start demo (`demo`: the
glyphs recipe through `train_run` + `evaluate_run`, with its own report on top) and margin or
learning-rate sweeps (`sweep`: one run per value of one config key, the grid figure and a
table). May import `config`, `plots`, `run_directory`, `run_evaluation` and `training`; only
`cli` imports it.
"""
