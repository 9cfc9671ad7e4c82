"""N-way K-shot episodes on held-out classes: one-shot identification.

An episode draws N classes, K support examples of each and one query of each; a query is
assigned the class of its nearest prototype (the mean of the class's K support embeddings)
or of its nearest support example. Accuracy is averaged over queries and episodes, with a
95 % confidence interval from the spread of the per-episode accuracies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from siamese.distances import Metric, batched_pairwise_distances
from siamese.errors import ConfigError, DataError


@dataclass
class Episodes:
    """Indices of a batch of episodes into a labelled set.

    Attributes:
        classes: (E, N) class ids of each episode's ways.
        support: (E, N, K) indices of the support examples, way by way.
        query: (E, N) index of the query of each way.
    """

    classes: torch.Tensor
    support: torch.Tensor
    query: torch.Tensor


def sample_episodes(
    labels: torch.Tensor,
    n_way: int,
    k_shot: int,
    episodes: int,
    seed: int = 0,
    groups: torch.Tensor | None = None,
    candidates: int = 32,
) -> Episodes:
    """Seeded N-way K-shot episodes, vectorised over episodes.

    Classes with fewer than `k_shot + 1` examples (K supports and a query) are never drawn;
    a `DataError` is raised when fewer than `n_way` classes remain.

    Args:
        labels: (M,) int64 labels of the evaluation set.
        n_way, k_shot: classes per episode and support examples per class.
        episodes: number of episodes E.
        seed: random seed.
        groups: optional (M,) int64 group of each example (a writer, a session). When given,
            a query never shares a group with the supports of its class: the query is the
            first of `candidates` random other examples that does (or the first of them if
            none does).
        candidates: how many examples to look through for such a query.
    Returns:
        Episodes.
    """
    labels = labels.cpu()
    class_ids, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    eligible = torch.nonzero(counts >= k_shot + 1).flatten()
    if n_way < 2 or k_shot < 1 or episodes < 1:
        raise ConfigError(
            f"episodes need n_way >= 2, k_shot >= 1, episodes >= 1; got {n_way}, {k_shot}, {episodes}"
        )
    if eligible.numel() < n_way:
        raise DataError(
            f"{n_way}-way {k_shot}-shot episodes need {n_way} classes with at least {k_shot + 1} "
            f"examples; this set has {eligible.numel()} (of {class_ids.numel()} classes): use "
            f"fewer ways or shots, or an evaluation set with more examples per class"
        )
    g = torch.Generator().manual_seed(seed)
    pick = torch.rand(episodes, eligible.numel(), generator=g).argsort(dim=1)[:, :n_way]
    ways = eligible[pick]  # (E, N) dense class positions
    # One random order of every class's members per episode: sort by (class, random key).
    key = inverse[None, :].double() + torch.rand(
        episodes, labels.numel(), generator=g, dtype=torch.float64
    )
    order = key.argsort(dim=1)  # (E, M), class blocks in class order, shuffled within
    starts = torch.cumsum(counts, 0) - counts
    base = starts[ways]  # (E, N)
    shots = torch.arange(k_shot)
    support = order.gather(1, (base[..., None] + shots).flatten(1)).view(episodes, n_way, k_shot)
    available = counts[ways] - k_shot  # (E, N) members left after the supports
    window = torch.arange(min(candidates, int(available.max())))
    offsets = k_shot + torch.minimum(window, available[..., None] - 1)  # (E, N, W)
    pool = order.gather(1, (base[..., None] + offsets).flatten(1)).view(episodes, n_way, -1)
    if groups is None:
        query = pool[..., 0]
    else:
        groups = groups.cpu()
        clash = (groups[pool][..., :, None] == groups[support][..., None, :]).any(dim=-1)
        query = pool.gather(2, (~clash).long().argmax(dim=2, keepdim=True)).squeeze(2)
    return Episodes(classes=class_ids[ways], support=support, query=query)


def episode_predictions(
    embeddings: torch.Tensor,
    episodes: Episodes,
    rule: str = "prototype",
    metric: Metric | str = "euclidean",
) -> torch.Tensor:
    """The way each query is assigned to.

    Args:
        embeddings: (M, D) embeddings of the evaluation set.
        episodes: from `sample_episodes` on the same set.
        rule: "prototype" (nearest class mean) or "nearest" (nearest support example).
        metric: distance between embeddings.
    Returns:
        (E, N) int64 predicted way of each query (the right answer is its own way index).
    """
    e, n, k = episodes.support.shape
    support = embeddings[episodes.support]  # (E, N, K, D)
    query = embeddings[episodes.query]  # (E, N, D)
    if rule == "prototype":
        return batched_pairwise_distances(query, support.mean(dim=2), metric).argmin(dim=2)
    if rule == "nearest":
        refs = support.reshape(e, n * k, -1)
        return batched_pairwise_distances(query, refs, metric).argmin(dim=2) // k
    raise ConfigError(f"unknown few-shot rule {rule!r}: choose 'prototype' or 'nearest'")


def episodic_accuracy(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    n_way: int,
    k_shot: int,
    episodes: int = 1000,
    seed: int = 0,
    groups: torch.Tensor | None = None,
    rule: str = "prototype",
    metric: Metric | str = "euclidean",
) -> tuple[float, float]:
    """Mean N-way K-shot accuracy over seeded episodes and its 95 % confidence half-width.

    Each episode's accuracy is the share of its N queries assigned to the right way; 1,000
    or more episodes give a ci95 of about a percentage point.

    Args:
        embeddings: (M, D); labels: (M,) int64; groups: optional (M,) int64, see
            `sample_episodes`.
        n_way, k_shot, episodes, seed: see `sample_episodes`.
        rule: "prototype" (nearest class mean) or "nearest" (nearest support example).
        metric: distance between embeddings.
    Returns:
        (mean accuracy, ci95) with ci95 = 1.96 × std of per-episode accuracy / sqrt(E), std
        being the population standard deviation (0, not NaN, for a single episode).

    Example:
        >>> import torch
        >>> from siamese.evaluation.fewshot import episodic_accuracy
        >>> _ = torch.manual_seed(0)
        >>> labels = torch.arange(5).repeat_interleave(4)  # 5 classes, 4 examples each
        >>> embeddings = torch.nn.functional.one_hot(labels).float() + 0.1 * torch.randn(20, 5)
        >>> mean, ci95 = episodic_accuracy(embeddings, labels, n_way=3, k_shot=1, episodes=20)
        >>> round(mean, 4), round(ci95, 4)
        (1.0, 0.0)
    """
    if rule not in ("prototype", "nearest"):
        raise ConfigError(f"unknown few-shot rule {rule!r}: choose 'prototype' or 'nearest'")
    if embeddings.ndim != 2 or embeddings.shape[0] != labels.numel():
        raise DataError(
            f"embeddings must be (M, D) with one row per label; got {tuple(embeddings.shape)} "
            f"for {labels.numel()} labels"
        )
    if not torch.isfinite(embeddings).all():
        raise DataError("embeddings contain NaN or inf: check the model that produced them")
    sampled = sample_episodes(labels, n_way, k_shot, episodes, seed, groups)
    return accuracy_over_episodes(embeddings, sampled, rule, metric)


def accuracy_over_episodes(
    embeddings: torch.Tensor,
    episodes: Episodes,
    rule: str = "prototype",
    metric: Metric | str = "euclidean",
) -> tuple[float, float]:
    """Mean accuracy over given episodes and its 95 % confidence half-width (see
    `episodic_accuracy`), so that one set of episodes can score several embeddings or rules.

    Args:
        embeddings: (M, D) embeddings of the set the episodes were drawn from.
        episodes: from `sample_episodes`.
    Returns:
        (mean accuracy, ci95).
    """
    e, n_way, _ = episodes.support.shape
    correct = episode_predictions(embeddings, episodes, rule, metric) == torch.arange(n_way)
    per_episode = correct.double().mean(dim=1)
    # Population std: a single episode gives a 0-wide interval rather than NaN.
    ci95 = 1.96 * float(per_episode.std(correction=0)) / math.sqrt(e)
    return float(per_episode.mean()), ci95
