"""The pair tutorials' protocol: one fixed set of balanced pairs over all examples, a share of
them held out for testing (closed-set: held-out pairs share examples with training pairs).

Label convention for pairs: 1 = same class (genuine), 0 = different class (impostor).
"""

from __future__ import annotations

import torch

from siamese.data.sampling.offline_tuples import balanced_pairs
from siamese.errors import ConfigError


def pair_split(
    labels: torch.Tensor, n_pairs: int, fraction: float, seed: int = 0
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The pair tutorials' protocol (e.g. the AT&T-faces contrastive tutorial): one fixed set
    of `n_pairs` balanced pairs over all examples (`balanced_pairs`, drawn with replacement),
    `round(fraction · n)` of the genuine and of the impostor pairs (at least one of each, never
    all) held out for testing, each part shuffled. Held-out pairs
    may share examples, and even whole pairs, with the training pairs: this is the tutorials'
    closed-set protocol, not an open-set one.

    Args:
        labels: (N,) int64 labels; n_pairs: pairs in all (>= 4); fraction: held-out share in
        (0, 1); seed: seeds the draw and the shuffle.
    Returns:
        (train, test): each `(i, j, same)`, (P,) int64 indices into `labels` and pair labels
        (1 = genuine, 0 = impostor).
    """
    if n_pairs < 4:
        raise ConfigError(f"the pair protocol needs at least 4 pairs, got {n_pairs}")
    if not 0 < fraction < 1:
        raise ConfigError(f"the held-out share of pairs must be in (0, 1), got {fraction}")
    i, j, same = balanced_pairs(labels.cpu(), n_pairs, seed)
    g = torch.Generator().manual_seed(seed + 1)
    # Stratified: the held-out share of the genuine and of the impostor pairs separately.
    train_rows, test_rows = [], []
    for kind in (1, 0):
        rows = (same == kind).nonzero().squeeze(1)
        rows = rows[torch.randperm(rows.numel(), generator=g)]
        n_test = min(max(round(fraction * rows.numel()), 1), rows.numel() - 1)
        train_rows.append(rows[: rows.numel() - n_test])
        test_rows.append(rows[rows.numel() - n_test :])
    parts = []
    for rows in (torch.cat(train_rows), torch.cat(test_rows)):
        rows = rows[torch.randperm(rows.numel(), generator=g)]
        parts.append((i[rows], j[rows], same[rows]))
    return parts[0], parts[1]
