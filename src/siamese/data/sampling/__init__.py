"""How examples are grouped for training and for the pair tutorials' tests: `pk_sampler` (P×K
batches for online mining, reproducible per epoch and shardable), `offline_tuples` (seeded
balanced pairs and triplets drawn ahead of time, and `TupleBatches` that serves them) and
`pair_protocol` (one fixed set of balanced pairs over all examples with a held-out share).
These see only labels, never pixels. May import `errors` only.
"""
