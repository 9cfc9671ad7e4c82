"""Which triplets a batch trains on.

Every miner takes a distance matrix `(B, R)` between the batch (anchors) and a reference set
(the batch itself when `ref_labels` is None) and returns index tensors `(a, p, n)`: anchor
rows, positive columns and negative columns, with one entry per mined triplet. A positive is
a reference item of the anchor's class (not the anchor itself), a negative one of another
class. Mining never needs gradients: it reads `dist.detach()`. All miners are vectorised
(no Python loop over samples); the only host synchronisation is the final `nonzero`, which
fixes the number of triplets.
"""

from __future__ import annotations

from typing import Literal

import torch

from siamese.errors import ConfigError

Mining = Literal["semihard", "hard", "random"]
MINING_MODES: tuple[str, ...] = ("semihard", "hard", "random")

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def positive_negative_masks(
    labels: torch.Tensor, ref_labels: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks of valid positives and negatives for every (anchor, reference) pair.

    Args:
        labels: (B,) int64 anchor labels.
        ref_labels: (R,) int64 reference labels, or None to use the batch itself, in which
            case an anchor is never its own positive.
    Returns:
        (positive, negative): two (B, R) bool masks.
    """
    same_set = ref_labels is None
    ref = labels if ref_labels is None else ref_labels
    same = labels[:, None] == ref[None, :]
    positive = same
    if same_set:
        eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
        positive = same & ~eye
    return positive, ~same


# Up to this many positives per anchor, searching each positive pair's negatives directly
# (B·M·R comparisons) beats sorting every anchor's distances (B·R log R). P×K batches have
# K − 1 positives per anchor, so they always take the direct path.
DIRECT_SEARCH_MAX_POSITIVES = 32
_BLOCK_ELEMENTS = 1 << 24  # bounds the (rows, M, R) temporaries of the direct path


def padded_columns(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The column indices of each row's True entries, left-aligned and padded.

    Args:
        mask: (B, R) bool.
    Returns:
        (columns, present): (B, M) int64 columns (0 where padded) and (B, M) bool, where M is
        the largest row count.
    """
    rows, cols = mask.nonzero(as_tuple=True)  # row-major: each row's columns in order
    counts = mask.sum(dim=1)
    width = int(counts.max()) if counts.numel() else 0
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.numel(), device=mask.device) - starts[rows]
    columns = torch.zeros(mask.shape[0], width, dtype=torch.long, device=mask.device)
    present = torch.zeros(mask.shape[0], width, dtype=torch.bool, device=mask.device)
    columns[rows, slot] = cols
    present[rows, slot] = True
    return columns, present


def row_blocks(n_rows: int, per_row: int) -> list[slice]:
    """Row slices whose blocks hold at most ~`_BLOCK_ELEMENTS` elements of `per_row` each."""
    step = max(1, _BLOCK_ELEMENTS // max(1, per_row))
    return [slice(start, start + step) for start in range(0, n_rows, step)]


def semihard_triplets(
    dist: torch.Tensor, labels: torch.Tensor, ref_labels: torch.Tensor | None = None
) -> Triplets:
    """Semi-hard negatives for every positive pair (Schroff et al. 2015).

    The semantics of TensorFlow Addons' `TripletSemiHardLoss`: for each positive pair (a, p),
    the negative is the one with the smallest d(a, n) strictly greater than d(a, p); when no
    negative is farther than the positive, the farthest negative. Anchors without negatives
    give no triplet. With few positives per anchor (P×K batches) each pair's negatives are
    searched directly, in bounded blocks; otherwise each anchor's negative distances are
    sorted once and every positive distance located with `searchsorted`, O(B·R log R).

    Args:
        dist: (B, R) distances between anchors and references.
        labels: (B,) int64 anchor labels.
        ref_labels: (R,) int64 reference labels, or None when the references are the batch.
    Returns:
        (a, p, n): int64 index tensors of equal length T (one triplet per positive pair).
    """
    positive, negative = positive_negative_masks(labels, ref_labels)
    d = dist.detach()
    pos_cols, pos_present = padded_columns(positive)
    d_ap = d.gather(1, pos_cols)  # (B, M)
    n_neg = negative.sum(dim=1, keepdim=True)
    if pos_cols.shape[1] <= DIRECT_SEARCH_MAX_POSITIVES:
        chosen = torch.empty_like(pos_cols)
        for rows in row_blocks(d.shape[0], pos_cols.shape[1] * d.shape[1]):
            db, nb = d[rows, None, :], negative[rows, None, :]
            farther = nb & (db > d_ap[rows, :, None])  # (b, M, R)
            nearest_farther = db.masked_fill(~farther, float("inf")).argmin(dim=2)
            farthest = d[rows].masked_fill(~negative[rows], float("-inf")).argmax(dim=1)
            chosen[rows] = torch.where(farther.any(dim=2), nearest_farther, farthest[:, None])
    else:
        chosen = torch.empty_like(pos_cols)
        for rows in row_blocks(d.shape[0], d.shape[1]):
            neg_sorted, neg_order = d[rows].masked_fill(~negative[rows], float("inf")).sort(dim=1)
            # First position whose negative distance is strictly greater than d(a, p); the
            # sort puts the non-negatives (inf) last, so a position past the negatives means
            # "none": then the farthest negative, the last one before them.
            position = torch.searchsorted(neg_sorted, d_ap[rows], right=True)
            position = torch.minimum(position, n_neg[rows] - 1).clamp_min(0)
            chosen[rows] = neg_order.gather(1, position)
    a, slot = (pos_present & (n_neg > 0)).nonzero(as_tuple=True)
    return a, pos_cols[a, slot], chosen[a, slot]


def hardest_triplets(
    dist: torch.Tensor, labels: torch.Tensor, ref_labels: torch.Tensor | None = None
) -> Triplets:
    """Batch-hard triplets (Hermans et al. 2017): per anchor, its farthest positive and nearest
    negative. Anchors lacking a positive or a negative give no triplet.

    Args:
        dist: (B, R) distances between anchors and references.
        labels: (B,) int64 anchor labels.
        ref_labels: (R,) int64 reference labels, or None when the references are the batch.
    Returns:
        (a, p, n): int64 index tensors of equal length T <= B.
    """
    positive, negative = positive_negative_masks(labels, ref_labels)
    d = dist.detach()
    hardest_p = d.masked_fill(~positive, float("-inf")).argmax(dim=1)
    hardest_n = d.masked_fill(~negative, float("inf")).argmin(dim=1)
    (a,) = (positive.any(dim=1) & negative.any(dim=1)).nonzero(as_tuple=True)
    return a, hardest_p[a], hardest_n[a]


def random_triplets(
    dist: torch.Tensor,
    labels: torch.Tensor,
    ref_labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Triplets:
    """One uniformly random positive and negative per anchor: the tutorials' baseline.

    Args:
        dist: (B, R) distances; only its shape and device are used.
        labels: (B,) int64 anchor labels.
        ref_labels: (R,) int64 reference labels, or None when the references are the batch.
        generator: random source, for reproducible draws.
    Returns:
        (a, p, n): int64 index tensors of equal length T <= B.
    """
    positive, negative = positive_negative_masks(labels, ref_labels)
    # Drawn where the generator lives (a CPU generator for a CUDA batch), then moved: the same
    # draws on every device, so a checkpoint resumes the same stream anywhere.
    on = generator.device if generator is not None else dist.device
    scores = torch.rand(dist.shape, generator=generator, device=on).to(dist.device)
    # Valid entries score in [0, 1), invalid ones -1, so argmax is uniform over the valid.
    random_p = scores.masked_fill(~positive, -1.0).argmax(dim=1)
    random_n = scores.masked_fill(~negative, -1.0).argmax(dim=1)
    (a,) = (positive.any(dim=1) & negative.any(dim=1)).nonzero(as_tuple=True)
    return a, random_p[a], random_n[a]


def mine_triplets(
    mining: str,
    dist: torch.Tensor,
    labels: torch.Tensor,
    ref_labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Triplets:
    """Dispatch to the miner named `mining` ("semihard", "hard" or "random")."""
    if mining == "semihard":
        return semihard_triplets(dist, labels, ref_labels)
    if mining == "hard":
        return hardest_triplets(dist, labels, ref_labels)
    if mining == "random":
        return random_triplets(dist, labels, ref_labels, generator)
    raise ConfigError(f"unknown mining {mining!r}: choose one of {', '.join(MINING_MODES)}")
