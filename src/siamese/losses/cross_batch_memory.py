"""Cross-batch memory (Wang, Zhang, Huang and Scott, "Cross-Batch Memory for Embedding
Learning", CVPR 2020: XBM).

A pair or triplet loss sees, besides its batch, the embeddings of the most recent earlier
batches, kept in a ring buffer: slowly drifting embeddings of a model that trains slowly are
nearly as good as fresh ones, and they give each anchor far more negatives than one batch
holds. The step's loss is the loss within the batch plus the loss of the batch against the
memory (weight 1, as the authors' code adds them), and the batch then joins the memory,
detached, displacing the oldest entries.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from siamese.errors import ConfigError
from siamese.losses.output import LossOutput


class CrossBatchMemory(torch.nn.Module):
    """A pair or triplet loss with a memory of the newest `size` embeddings of earlier batches.

    `forward(embeddings, labels)` returns `loss(batch) + loss(batch, ref=memory)` (the second
    term only once the memory holds something), then enqueues the batch. Gradients reach the
    current batch only: the memory holds detached copies. Memory entries of classes absent
    from the batch are negatives only; the wrapped loss handles that.

    State, all registered persistent buffers, so a checkpoint (`state_dict`) restores the
    memory exactly and training resumes as if never interrupted:

    - `memory_embeddings` (size, D) float32 and `memory_labels` (size,) int64: the ring;
    - `memory_filled` (0-d int64): how many slots hold an embedding (≤ size); slots
      0 … filled − 1 are the filled ones (the ring fills from slot 0 before wrapping);
    - `memory_next` (0-d int64): the slot the next embedding goes to (the oldest entry once
      the ring is full).

    Host synchronisation: using only the filled slots needs their count on the host (a slice
    length). Reading `memory_filled` every step would wait for the device, so the module keeps
    the two counters as Python ints as well (`_filled`, `_next`), updated in step with the
    buffers; they are deterministic (they depend on batch sizes only). `_load_from_state_dict`
    restores them from the loaded buffers (one read, at load time), so the ints and the
    buffers always agree.

    The memory is written in training mode only: a forward pass in eval mode (a validation
    loss) uses the memory but leaves it as it was.

    Args:
        loss: the wrapped loss: a module called as `loss(embeddings (B, D), labels (B,),
            ref_embeddings=None, ref_labels=None) -> LossOutput` (the pair and triplet losses).
        embedding_dim: D.
        size: how many embeddings the memory holds (≥ 1).
    Raises:
        ConfigError: `size` < 1, `embedding_dim` < 1, or a loss that takes no reference set.
    """

    memory_embeddings: torch.Tensor
    memory_labels: torch.Tensor
    memory_filled: torch.Tensor
    memory_next: torch.Tensor

    def __init__(self, loss: torch.nn.Module, embedding_dim: int, size: int) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"loss.memory must be an integer >= 1, got {size!r}")
        if (
            isinstance(embedding_dim, bool)
            or not isinstance(embedding_dim, int)
            or (embedding_dim < 1)
        ):
            raise ConfigError(
                f"cross-batch memory embedding_dim must be an integer >= 1, got {embedding_dim!r}"
            )
        if not _takes_reference_set(loss):
            raise ConfigError(
                f"loss.memory needs a loss that takes a reference set (ref_embeddings, "
                f"ref_labels); {type(loss).__name__} does not"
            )
        self.loss = loss
        self.size = size
        self.embedding_dim = embedding_dim
        self.register_buffer("memory_embeddings", torch.zeros(size, embedding_dim))
        self.register_buffer("memory_labels", torch.zeros(size, dtype=torch.int64))
        self.register_buffer("memory_filled", torch.zeros((), dtype=torch.int64))
        self.register_buffer("memory_next", torch.zeros((), dtype=torch.int64))
        self._filled = 0
        self._next = 0

    @property
    def generator(self) -> torch.Generator | None:
        """The wrapped loss's random generator (the random miner's), if it has one."""
        return getattr(self.loss, "generator", None)

    @generator.setter
    def generator(self, value: torch.Generator | None) -> None:
        if hasattr(self.loss, "generator") or value is not None:
            self.loss.generator = value

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        """Args:
            embeddings: (B, D) the batch, with gradient.
            labels: (B,) int64 class labels.
        Returns:
            LossOutput: the in-batch loss plus the batch-against-memory loss; the in-batch
            call's statistics plus `memory_fraction`, the share of the memory this step used
            (filled slots / size, before this batch joined).
        """
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"expected (B, {self.embedding_dim}) embeddings, got {tuple(embeddings.shape)}"
            )
        out = self.loss(embeddings, labels)
        loss = out.loss
        filled = self._filled
        if filled > 0:
            ref_embeddings = self.memory_embeddings[:filled]
            ref_labels = self.memory_labels[:filled]
            if torch.is_grad_enabled():
                # The wrapped loss may keep its references for the backward pass, which
                # comes after this batch has been written into the ring: it gets a copy.
                ref_embeddings, ref_labels = ref_embeddings.clone(), ref_labels.clone()
            loss = loss + self.loss(embeddings, labels, ref_embeddings, ref_labels).loss
        stats = dict(out.stat_tensors)
        stats["memory_fraction"] = torch.tensor(filled / self.size)
        if self.training:
            self.enqueue(embeddings, labels)
        return LossOutput(loss=loss, stat_tensors=stats)

    @torch.no_grad()
    def enqueue(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Write a batch into the ring, detached, as if one example at a time: the oldest
        entries are overwritten, and of a batch larger than the memory only its newest
        `size` examples stay. At most two slice copies, no loop over examples.

        Args:
            embeddings: (B, D); labels: (B,).
        """
        n = embeddings.shape[0]
        kept = min(n, self.size)
        # Example t of the batch goes to slot (next + t) mod size; the last `kept` survive.
        start = (self._next + n - kept) % self.size
        source = embeddings[n - kept :].detach().to(self.memory_embeddings.dtype)
        source_labels = labels[n - kept :].to(self.memory_labels.dtype)
        first = min(kept, self.size - start)
        self.memory_embeddings[start : start + first] = source[:first]
        self.memory_labels[start : start + first] = source_labels[:first]
        if kept > first:  # wraps around to slot 0
            self.memory_embeddings[: kept - first] = source[first:]
            self.memory_labels[: kept - first] = source_labels[first:]
        self._filled = min(self.size, self._filled + n)
        self._next = (self._next + n) % self.size
        self.memory_filled.fill_(self._filled)
        self.memory_next.fill_(self._next)

    @torch.no_grad()
    def reset(self) -> None:
        """Empty the memory."""
        self.memory_embeddings.zero_()
        self.memory_labels.zero_()
        self._filled = self._next = 0
        self.memory_filled.fill_(0)
        self.memory_next.fill_(0)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # The host counters follow the loaded buffers (one device read, at load time only).
        filled, next_slot = int(self.memory_filled), int(self.memory_next)
        if not (0 <= filled <= self.size and 0 <= next_slot < self.size):
            raise ValueError(
                f"cross-batch memory state out of range: filled={filled}, next={next_slot}, "
                f"size={self.size}"
            )
        self._filled, self._next = filled, next_slot

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, size={self.size}"


def _takes_reference_set(loss: torch.nn.Module) -> bool:
    """Whether `loss.forward` accepts `ref_embeddings` and `ref_labels`."""
    try:
        parameters = inspect.signature(loss.forward).parameters
    except (TypeError, ValueError):
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return True
    return "ref_embeddings" in parameters and "ref_labels" in parameters
