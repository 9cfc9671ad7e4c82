"""Jobs that chain a training run and its evaluation: the quick-start demo (`demo`: the glyphs
recipe through `train_run` + `evaluate_run`, with its own report on top) and margin or
learning-rate sweeps (`sweep`: one run per value of one config key, the grid figure and a
table). May import every other package but `cli`; only `cli` imports it.
"""
