"""A gallery measured on its own people: each enrolled example, its identity left out, is a
stranger to the rest, scored exactly as the gallery scores (nearest example or centroid); each
example of an identity with two or more is a genuine probe of it. The result
(`siamese.recognition.fpir.GalleryCalibration`) is what `siamese gallery calibrate` stores and
what the gallery's FPIR rule reads (`siamese.recognition.decisions.identification_basis`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from siamese.distances import pairwise_distances
from siamese.recognition.fpir import GalleryCalibration, StrangerScores, stranger_scores
from siamese.recognition.score_normalisation import COHORT

MAX_PROBES = 2_000
"""Enrolled examples scored as strangers at most (a seeded uniform subset beyond)."""
MAX_REFERENCE_EXAMPLES = 100_000
"""Examples of other identities they are scored against at most: beyond, a seeded subset of
whole identities (the estimate then reads each probe's scores against that many)."""
_BLOCK = 256


def measure_gallery(
    vectors: np.ndarray,
    owners: np.ndarray,
    metric: str,
    scoring: str,
    generation: int,
    seed: int = 0,
) -> GalleryCalibration:
    """The gallery's calibration on its own enrolled examples.

    Args:
        vectors: (M, D) float32 enrolled embeddings; owners: (M,) their identity ids.
        metric: the model's distance; scoring: "nearest" or "centroid".
        generation: the gallery's write counter these rows were read at.
    """
    owners = np.asarray(owners, dtype=np.int64)
    identities, owner_index = np.unique(owners, return_inverse=True)
    n = identities.size
    g = np.random.default_rng(seed)
    z = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    index = torch.from_numpy(owner_index)
    if n < 2:
        empty = np.empty(0)
        return GalleryCalibration(
            generation, int(n), stranger_scores(np.empty((0, 0)), None), math.nan, math.nan, 0,
            empty, empty,
        )  # fmt: skip
    # the identities strangers are scored against: all, or whole identities up to the cap
    if vectors.shape[0] > MAX_REFERENCE_EXAMPLES:
        order = g.permutation(n)
        sizes = np.bincount(owner_index, minlength=n)[order]
        chosen = order[: max(2, int(np.searchsorted(np.cumsum(sizes), MAX_REFERENCE_EXAMPLES)))]
        in_reference = np.isin(owner_index, chosen)
    else:
        in_reference = np.ones(vectors.shape[0], dtype=bool)
    ref_rows = torch.from_numpy(np.flatnonzero(in_reference))
    ref_z, ref_owner = z[ref_rows], index[ref_rows]
    counts = torch.bincount(index, minlength=n)
    centroids = torch.zeros(n, z.shape[1]).index_add_(0, index, z) / counts[:, None].clamp_min(1)
    referenced = torch.zeros(n, dtype=torch.bool)
    referenced[ref_owner.unique()] = True
    probes = np.sort(g.permutation(vectors.shape[0])[:MAX_PROBES])
    smallest: list[np.ndarray] = []
    seen: list[np.ndarray] = []
    genuine: list[np.ndarray] = []
    genuine_cohort: list[np.ndarray] = []
    rival: list[np.ndarray] = []
    total, total_sq, pairs = 0.0, 0.0, 0
    for start in range(0, probes.size, _BLOCK):
        rows = torch.from_numpy(probes[start : start + _BLOCK])
        d = pairwise_distances(z[rows], ref_z, metric).double()  # (B, R)
        mine = index[rows][:, None] == ref_owner[None, :]
        other = d[~mine]
        total += float(other.sum())
        total_sq += float((other * other).sum())
        pairs += int(other.numel())
        if scoring == "nearest":
            scores = torch.full((rows.numel(), n), math.inf, dtype=torch.float64)
            scores.scatter_reduce_(
                1, ref_owner.expand(rows.numel(), -1), d, reduce="amin", include_self=True
            )
        else:
            scores = pairwise_distances(z[rows], centroids, metric).double()
        own = torch.zeros(rows.numel(), n, dtype=torch.bool)
        own[torch.arange(rows.numel()), index[rows]] = True
        scores[:, ~referenced] = math.inf  # identities outside the reference subset
        part = stranger_scores(scores.numpy(), own.numpy())
        smallest.append(part.smallest)
        seen.append(part.identities)
        # genuine: the probe against its own identity without itself
        multi = counts[index[rows]] >= 2
        if bool(multi.any()):
            if scoring == "nearest":
                self_col = (ref_rows[None, :] == rows[:, None]) | ~mine
                own_score = d.masked_fill(self_col, math.inf).min(dim=1).values
            else:
                k = counts[index[rows]].double()[:, None]
                rest = (centroids[index[rows]].double() * k - z[rows].double()) / (k - 1).clamp_min(
                    1
                )
                own_score = pairwise_distances(z[rows].double(), rest, metric).diagonal()
            others = scores.masked_fill(own, math.inf)
            cohort = others.topk(min(COHORT, n), dim=1, largest=False).values
            genuine.append(own_score[multi].numpy())
            rival.append(cohort[:, 0][multi].numpy())
            genuine_cohort.append(cohort[multi].numpy())
    strangers = StrangerScores(np.concatenate(smallest), np.concatenate(seen))
    genuine_scores = np.concatenate(genuine) if genuine else np.empty(0)
    mean = total / pairs if pairs else math.nan
    std = math.sqrt(max(total_sq / pairs - mean * mean, 0.0)) if pairs else math.nan
    return GalleryCalibration(
        generation=generation,
        identities=int(n),
        strangers=strangers,
        impostor_mean=mean,
        impostor_std=std,
        impostor_pairs=pairs,
        genuine=genuine_scores,
        genuine_rival=np.concatenate(rival) if rival else np.empty(0),
        genuine_cohort=np.concatenate(genuine_cohort) if genuine else np.empty((0, 0)),
    )


__all__ = ["MAX_PROBES", "measure_gallery"]
