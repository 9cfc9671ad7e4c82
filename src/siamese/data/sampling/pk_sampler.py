"""P×K batches for online mining: P classes × K examples each, reproducible per epoch and
shardable across processes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

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

    Example:
        >>> import torch
        >>> from siamese import PKSampler
        >>> labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
        >>> sampler = PKSampler(labels, p=2, k=2, seed=0)
        >>> sampler.set_epoch(0)
        >>> batches = list(sampler)
        >>> len(sampler), [labels[batch].tolist() for batch in batches]
        (3, [[2, 2, 0, 0], [1, 1, 3, 3], [0, 0, 2, 2]])
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
