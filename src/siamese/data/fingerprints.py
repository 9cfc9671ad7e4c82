"""Content fingerprints of examples: which examples of one set also stand in another (an
evaluation set against the training set), whatever their order, source or file names."""

from __future__ import annotations

import torch

from siamese.data.batches import load_batches, ranges
from siamese.data.labeled import ImageSource, Inputs

_CHUNK_BYTES = 1 << 25  # bytes of examples hashed at a time (bounds the int64 temporaries)
_STREAMED_BATCH = 256  # streamed images decoded per batch


def example_fingerprints(x: Inputs) -> torch.Tensor:
    """A 63-bit hash of each example's bytes: equal examples (same dtype, shape and values)
    get equal fingerprints; distinct ones collide with probability about 2^-63 per pair.

    Integer arithmetic (wrapping int64 products and sums of the raw bytes with fixed random
    weights), so the result does not depend on summation order or on the batch an example
    sits in, as a floating-point hash would.

    Args:
        x: (N, ...) examples of any dtype; streamed images are decoded batch by batch in
            worker processes (memory stays bounded; it costs one decoding pass).
    Returns:
        (N,) int64 fingerprints.
    """
    if isinstance(x, ImageSource):
        from siamese.data.folders.listing import default_workers

        batches = load_batches(x, ranges(len(x), _STREAMED_BATCH), workers=default_workers())
        parts = [example_fingerprints(batch) for batch in batches]
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
    n = x.shape[0]
    rows = x.detach().cpu().contiguous().reshape(n, -1).view(torch.uint8).reshape(n, -1)
    width = rows.shape[1]
    g = torch.Generator().manual_seed(0x5EED)
    # Odd weights below 2^62: each byte position counts differently.
    weights = torch.randint(1, 2**62, (width,), generator=g, dtype=torch.long) | 1
    out = torch.empty(n, dtype=torch.long)
    step = max(1, _CHUNK_BYTES // max(1, width * 8))
    for start in range(0, n, step):
        block = rows[start : start + step].long() + 1  # + 1: a zero byte still counts
        out[start : start + step] = (block * weights).sum(dim=1)
    return out & (2**63 - 1)


def shared_examples(x: Inputs, reference: Inputs) -> torch.Tensor:
    """(N,) bool: which examples of `x` (N, ...) also stand in `reference` (M, ...), by content.
    Examples of another shape or dtype never match. Streamed images are decoded for it (one
    pass, in worker processes)."""
    if x.shape[1:] != reference.shape[1:] or x.dtype != reference.dtype:
        return torch.zeros(x.shape[0], dtype=torch.bool)
    return torch.isin(example_fingerprints(x), example_fingerprints(reference))
