"""How examples are grouped into batches, pairs and triplets.

Label convention for pairs: 1 = same class (genuine), 0 = different class (impostor).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError, DataError


class PKSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of P classes × K samples each, for online mining.

    An epoch has `max(ceil(C / P), N // (P·K))` batches, where C counts the classes with at
    least 2 samples (a class with one sample can never form a positive, so it is never
    drawn) and N their samples: every such class is visited at least once, and about N
    samples are seen. Classes come from successive shuffled passes over the classes, and the
    samples of each class from successive shuffled passes over its members, so a sample
    repeats only after every other sample of its class was drawn. A class with fewer than
    K samples is drawn with replacement within its batch.

    The order depends only on (seed, epoch): call `set_epoch` before each epoch. With
    `world_size > 1` every rank generates the same global sequence and takes batches
    `rank, rank + world_size, ...`, so the ranks' batches are disjoint.

    Args:
        labels: (N,) integer class labels of the dataset.
        p: classes per batch (2 <= p <= C).
        k: samples per class (>= 2).
        seed: base seed of the order.
        rank, world_size: the shard of this process.
    """

    def __init__(
        self,
        labels: torch.Tensor | np.ndarray,
        p: int,
        k: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
        if labels.ndim != 1:
            raise DataError(f"PKSampler needs a 1-D label array, got shape {labels.shape}")
        classes, counts = np.unique(labels, return_counts=True)
        usable = classes[counts >= 2]
        if usable.size < 2:
            raise DataError(
                f"P×K sampling needs at least 2 classes with 2 or more samples each; this data has "
                f"{usable.size} (of {classes.size} classes). Add samples or classes."
            )
        if k < 2:
            raise ConfigError(f"K (samples per class) must be >= 2 to form positives, got {k}")
        if not 2 <= p <= usable.size:
            raise ConfigError(
                f"P (classes per batch) must be between 2 and the {usable.size} usable classes, got {p}"
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(
                f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}"
            )
        order = np.argsort(labels, kind="stable")
        starts = np.searchsorted(labels[order], usable)
        ends = np.searchsorted(labels[order], usable, side="right")
        self.members = [order[s:e] for s, e in zip(starts, ends, strict=True)]
        self.p, self.k = p, k
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        n_usable = int(sum(len(m) for m in self.members))
        self.global_batches = max(-(-len(self.members) // p), n_usable // (p * k))
        self.global_batches = -(-self.global_batches // world_size) * world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order `__iter__` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.global_batches // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        classes = _ShuffledCycle(np.arange(len(self.members)), rng)
        members = [_ShuffledCycle(m, rng) for m in self.members]
        for batch_index in range(self.global_batches):
            batch: list[int] = []
            for c in classes.take(self.p):
                if len(self.members[c]) < self.k:
                    batch.extend(rng.choice(self.members[c], size=self.k, replace=True).tolist())
                else:
                    batch.extend(members[c].take(self.k))
            if batch_index % self.world_size == self.rank:
                yield batch


class _ShuffledCycle:
    """Draws items in successive shuffled passes; a draw that spans two passes takes the
    rest of the old pass and completes it from the new one without repeating an item, and
    those items count as drawn in the new pass. So no draw holds an item twice, and within
    a pass every item is drawn once."""

    def __init__(self, items: np.ndarray, rng: np.random.Generator) -> None:
        self.items, self.rng = items, rng
        self.queue = rng.permutation(items)
        self.head = 0

    def take(self, n: int) -> list[int]:
        """n distinct items (n <= len(items))."""
        if self.head + n <= len(self.queue):
            out = self.queue[self.head : self.head + n]
            self.head += n
            return out.tolist()
        rest = self.queue[self.head :]
        fresh = self.rng.permutation(self.items)
        fresh = fresh[~np.isin(fresh, rest)]
        need = n - len(rest)
        # The new pass: the carried-over items first (already drawn), then the others.
        self.queue = np.concatenate([rest, fresh])
        self.head = n
        return np.concatenate([rest, fresh[:need]]).tolist()


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


class PairDataset(torch.utils.data.Dataset):
    """Offline pairs for the pair-based tutorials: `n_pairs` seeded pairs of `data`, half
    genuine (same class, label 1) and half impostor (different class, label 0), drawn by
    `balanced_pairs`. `set_epoch(e)` draws a new set (seed + e).

    Items are `(x1, x2, same)`: two examples and the int64 pair label.
    """

    def __init__(self, data: LabeledData, n_pairs: int, seed: int = 0) -> None:
        if n_pairs < 2:
            raise ConfigError(f"PairDataset needs n_pairs >= 2, got {n_pairs}")
        self.data, self.n_pairs, self.seed = data, n_pairs, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the pairs of `epoch`."""
        self.i, self.j, self.same = balanced_pairs(self.data.y, self.n_pairs, self.seed + epoch)

    def __len__(self) -> int:
        return self.n_pairs

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.data.x[self.i[index]], self.data.x[self.j[index]], self.same[index]


class TripletDataset(torch.utils.data.Dataset):
    """Offline random triplets, as the tutorials train: for each of `n_triplets` anchors drawn
    uniformly from the classes with 2+ examples, a random other example of its class and a
    random example of another class. `set_epoch(e)` draws a new set (seed + e).

    Items are `(anchor, positive, negative)` examples.
    """

    def __init__(self, data: LabeledData, n_triplets: int, seed: int = 0) -> None:
        if n_triplets < 1:
            raise ConfigError(f"TripletDataset needs n_triplets >= 1, got {n_triplets}")
        self.data, self.n_triplets, self.seed = data, n_triplets, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the triplets of `epoch`."""
        self.anchor, self.positive, self.negative = draw_triplets(
            self.data.y, self.n_triplets, self.seed + epoch
        )

    def __len__(self) -> int:
        return self.n_triplets

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.data.x
        return x[self.anchor[index]], x[self.positive[index]], x[self.negative[index]]


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
