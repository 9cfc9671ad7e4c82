"""Offline pairs and triplets for the pair- and triplet-based tutorials: the seeded draws
(`balanced_pairs`, `draw_triplets`) and the batch plan that serves them (`TupleBatches`).

Label convention for pairs: 1 = same class (genuine), 0 = different class (impostor).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from siamese.errors import ConfigError, DataError


def _random_classmates(
    inverse: torch.Tensor, counts: torch.Tensor, anchors: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """For each anchor, a uniformly random other example of its class.

    Args:
        inverse: (N,) dense class index of every example; counts: (C,) examples per class.
        anchors: (T,) example indices whose class has 2 or more examples.
    Returns:
        (T,) example indices, never the anchor itself.
    """
    n = inverse.numel()
    order = torch.argsort(inverse, stable=True)  # class blocks, in class order
    starts = torch.cumsum(counts, 0) - counts
    position = torch.empty(n, dtype=torch.long)  # of each example within its class block
    position[order] = torch.arange(n) - starts[inverse[order]]
    c = inverse[anchors]
    offset = (torch.rand(anchors.numel(), generator=generator) * (counts[c] - 1).double()).long()
    offset = offset + (offset >= position[anchors]).long()  # skip the anchor's own position
    return order[starts[c] + offset]


def balanced_pairs(
    labels: torch.Tensor, n_pairs: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A seeded set of genuine and impostor pairs, half each, without self-pairs.

    Genuine pairs are drawn uniformly among the same-class pairs i != j (classes with one
    sample give none), impostor pairs uniformly among the different-class pairs.

    Args:
        labels: (N,) int64 labels.
        n_pairs: total number of pairs (genuine = n_pairs // 2, impostor the rest).
        seed: random seed.
    Returns:
        (i, j, same): (n_pairs,) int64 indices into `labels` and (n_pairs,) int64 pair labels,
        1 = genuine, 0 = impostor.
    """
    labels = labels.cpu()
    g = torch.Generator().manual_seed(seed)
    n = labels.shape[0]
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if classes.numel() < 2 or int(counts.max()) < 2:
        raise DataError(
            "balanced pairs need at least 2 classes and one class with 2 or more samples"
        )
    n_genuine = n_pairs // 2
    n_impostor = n_pairs - n_genuine
    # Genuine: pick an anchor with probability proportional to its class's pair count
    # (count − 1), then a different member of its class.
    weight = (counts[inverse] - 1).double()
    i_gen = torch.multinomial(weight, n_genuine, replacement=True, generator=g)
    j_gen = _random_classmates(inverse, counts, i_gen, g)
    # Impostor: rejection sampling of uniform pairs; different-class pairs are the majority
    # whenever there are several classes, so a few rounds suffice.
    i_imp = torch.empty(0, dtype=torch.long)
    j_imp = torch.empty(0, dtype=torch.long)
    while i_imp.numel() < n_impostor:
        draw = 2 * (n_impostor - i_imp.numel()) + 16
        i = torch.randint(n, (draw,), generator=g)
        j = torch.randint(n, (draw,), generator=g)
        keep = inverse[i] != inverse[j]
        i_imp = torch.cat([i_imp, i[keep]])
        j_imp = torch.cat([j_imp, j[keep]])
    i_imp, j_imp = i_imp[:n_impostor], j_imp[:n_impostor]
    same = torch.cat(
        [torch.ones(n_genuine, dtype=torch.long), torch.zeros(n_impostor, dtype=torch.long)]
    )
    return torch.cat([i_gen, i_imp]), torch.cat([j_gen, j_imp]), same


def draw_triplets(
    labels: torch.Tensor, n_triplets: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded random triplets: `n_triplets` anchors drawn uniformly from the examples whose
    class has 2+ examples, each with a random other example of its class and a random example
    of another class.

    Args:
        labels: (N,) int64 labels.
    Returns:
        (anchor, positive, negative): (n_triplets,) int64 indices into `labels`.
    """
    labels = labels.cpu()
    g = torch.Generator().manual_seed(seed)
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if int((counts >= 2).sum()) < 1 or counts.numel() < 2:
        raise DataError("random triplets need 2+ classes, one of them with 2+ examples")
    n = labels.numel()
    order = torch.argsort(inverse, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    # Anchor: a uniform example among those whose class has a positive.
    weight = (counts[inverse] >= 2).double()
    anchor = torch.multinomial(weight, n_triplets, replacement=True, generator=g)
    positive = _random_classmates(inverse, counts, anchor, g)
    c = inverse[anchor]
    # Negative: uniform over the examples outside the anchor's class.
    offset = (torch.rand(n_triplets, generator=g) * (n - counts[c]).double()).long()
    offset = offset + (offset >= starts[c]).long() * counts[c]  # skip the class block
    return anchor, positive, order[offset]


class TupleBatches:
    """Batches of offline pairs or triplets for the pair- and triplet-based tutorials.

    Every epoch draws `per_epoch` tuples afresh (seed, epoch): `pairs` are balanced genuine /
    impostor pairs (`balanced_pairs`, shuffled so that every batch holds both kinds),
    `triplets` are random triplets (`draw_triplets`). Each batch is a tuple of index tensors:
    `(i, j, same)` for pairs (same: 1 = genuine, 0 = impostor), `(anchor, positive,
    negative)` for triplets, each (size,) int64 (the last batch of an epoch may be smaller).

    With `world_size > 1` every rank draws the same tuples and takes batches
    `rank, rank + world_size, ...`; the batch count is rounded up to a multiple of
    `world_size` (the extra batches wrap around the epoch's tuples).

    With `fixed` pairs (the tutorials' fixed training pairs, see `pair_split`) every epoch
    is one pass over them in a fresh seeded order instead, and `per_epoch` is their number.

    Args:
        labels: (N,) int64 labels of the training examples.
        kind: "pairs" or "triplets".
        size: tuples per batch.
        per_epoch: tuples per epoch (ignored with `fixed`).
        seed: base seed; rank, world_size: this process's shard.
        fixed: (i, j, same) pairs, (P,) int64 each, to pass over every epoch; kind "pairs".

    Example:
        >>> import torch
        >>> from siamese import TupleBatches
        >>> labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
        >>> pairs = TupleBatches(labels, kind="pairs", size=4, per_epoch=8, seed=0)
        >>> i, j, same = next(iter(pairs))
        >>> len(pairs), tuple(i.shape), same.tolist()
        (2, (4,), [0, 1, 0, 1])
        >>> torch.equal(same, (labels[i] == labels[j]).long())  # 1 = same class
        True
        >>> triplets = TupleBatches(labels, kind="triplets", size=3, per_epoch=6, seed=0)
        >>> anchor, positive, negative = next(iter(triplets))
        >>> bool((labels[anchor] == labels[positive]).all())
        True
        >>> bool((labels[anchor] != labels[negative]).all())
        True
    """

    def __init__(
        self,
        labels: torch.Tensor,
        kind: str,
        size: int,
        per_epoch: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        fixed: tuple[torch.Tensor, ...] | None = None,
    ) -> None:
        if kind not in ("pairs", "triplets"):
            raise ConfigError(f"TupleBatches kind must be 'pairs' or 'triplets', got {kind!r}")
        if fixed is not None:
            if kind != "pairs" or len(fixed) != 3:
                raise ConfigError("fixed tuples are (i, j, same) pairs, for kind 'pairs'")
            per_epoch = int(fixed[0].numel())
        self.fixed = fixed
        if size < 1 or per_epoch < size:
            raise ConfigError(
                f"{kind}: need 1 <= batch size <= tuples per epoch, got size={size}, "
                f"per_epoch={per_epoch}"
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(
                f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}"
            )
        self.labels = labels.cpu()
        self.kind, self.size, self.per_epoch = kind, size, per_epoch
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        global_batches = -(-per_epoch // size)
        self.global_batches = -(-global_batches // world_size) * world_size
        draw = balanced_pairs if kind == "pairs" else draw_triplets
        draw(self.labels, 2, seed)  # fail now, not at the first epoch, if the labels can't

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose tuples `__iter__` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.global_batches // self.world_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        seed = self.seed * 1_000_003 + self.epoch
        if self.fixed is not None:
            order = torch.randperm(self.per_epoch, generator=torch.Generator().manual_seed(seed))
            columns = tuple(c[order] for c in self.fixed)
        elif self.kind == "pairs":
            i, j, same = balanced_pairs(self.labels, self.per_epoch, seed)
            order = torch.randperm(self.per_epoch, generator=torch.Generator().manual_seed(seed))
            columns: tuple[torch.Tensor, ...] = (i[order], j[order], same[order])
        else:
            columns = draw_triplets(self.labels, self.per_epoch, seed)
        for b in range(self.rank, self.global_batches, self.world_size):
            rows = torch.arange(b * self.size, (b + 1) * self.size) % self.per_epoch
            if self.world_size == 1:
                rows = rows[rows >= b * self.size]  # no wrap-around in one process
            yield tuple(c[rows] for c in columns)
