from collections import Counter

import numpy as np
import pytest
import torch

from siamese.data.sampling.offline_tuples import balanced_pairs
from siamese.data.sampling.pk_sampler import PKSampler
from siamese.errors import ConfigError, DataError


def make_labels() -> np.ndarray:
    rng = np.random.default_rng(0)
    # 23 classes of 2..15 samples, one singleton class (id 99), shuffled.
    labels = np.concatenate([np.full(rng.integers(2, 16), c) for c in range(23)] + [np.array([99])])
    return rng.permutation(labels)


def test_batches_hold_p_distinct_classes_of_k_each() -> None:
    labels = make_labels()
    sampler = PKSampler(labels, p=5, k=4, seed=1)
    for batch in sampler:
        counts = Counter(labels[batch].tolist())
        assert len(batch) == 20 and len(counts) == 5 and set(counts.values()) == {4}
        assert 99 not in counts  # a singleton class can never form a positive


def test_every_usable_class_is_visited_and_samples_are_spread() -> None:
    labels = make_labels()
    sampler = PKSampler(labels, p=4, k=2, seed=0)
    seen = [i for batch in sampler for i in batch]
    assert set(labels[seen].tolist()) == set(range(23))
    assert len(sampler) == max(-(-23 // 4), (len(labels) - 1) // 8)
    # Within a class, a sample repeats only after the others were drawn.
    big = [c for c in range(23) if (labels == c).sum() >= 8]
    for c in big:
        drawn = [i for i in seen if labels[i] == c]
        first = drawn[: (labels == c).sum()]
        assert len(set(first)) == len(first)


def test_order_depends_only_on_seed_and_epoch() -> None:
    labels = make_labels()
    a, b = PKSampler(labels, 4, 2, seed=3), PKSampler(labels, 4, 2, seed=3)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    a.set_epoch(1)
    assert list(a) == list(b)
    assert list(PKSampler(labels, 4, 2, seed=4)) != list(PKSampler(labels, 4, 2, seed=3))


def test_ranks_get_disjoint_shards_of_the_global_sequence() -> None:
    labels = make_labels()
    whole = list(PKSampler(labels, 4, 2, seed=5, world_size=1))
    shards = [list(PKSampler(labels, 4, 2, seed=5, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1])
    interleaved = [b for pair in zip(*shards, strict=True) for b in pair]
    assert interleaved[: len(whole)] == whole[: len(interleaved)]


def test_small_classes_are_drawn_with_replacement() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    batch = next(iter(PKSampler(labels, p=2, k=4)))
    assert Counter(labels[batch].tolist()) == {0: 4, 1: 4}


def test_clear_errors() -> None:
    with pytest.raises(DataError, match="at least 2 classes"):
        PKSampler(np.array([0, 0, 1]), p=2, k=2)
    with pytest.raises(ConfigError, match="K"):
        PKSampler(make_labels(), p=2, k=1)
    with pytest.raises(ConfigError, match="P"):
        PKSampler(make_labels(), p=50, k=2)
    with pytest.raises(ConfigError, match="rank"):
        PKSampler(make_labels(), p=2, k=2, rank=2, world_size=2)


def test_balanced_pairs() -> None:
    labels = torch.tensor(make_labels())
    i, j, same = balanced_pairs(labels, 1001, seed=0)
    assert i.shape == j.shape == same.shape == (1001,)
    assert int(same.sum()) == 500
    genuine = same == 1
    assert (labels[i[genuine]] == labels[j[genuine]]).all() and (i[genuine] != j[genuine]).all()
    assert (labels[i[~genuine]] != labels[j[~genuine]]).all()
    i2, j2, _ = balanced_pairs(labels, 1001, seed=0)
    assert torch.equal(i, i2) and torch.equal(j, j2)


def test_balanced_genuine_pairs_are_uniform_over_same_class_pairs() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1])  # ordered same-class pairs: 6 + 2 = 8
    i, j, same = balanced_pairs(labels, 16000, seed=1)
    counts = Counter(zip(i[same == 1].tolist(), j[same == 1].tolist(), strict=True))
    assert len(counts) == 8
    assert all(abs(c / 8000 - 1 / 8) < 0.02 for c in counts.values())


def test_tuple_batches_pairs_are_balanced_and_redrawn_each_epoch() -> None:
    from siamese.data.sampling.offline_tuples import TupleBatches

    labels = torch.tensor(make_labels())
    batches = TupleBatches(labels, "pairs", size=200, per_epoch=200, seed=0)
    ((i, j, same),) = list(batches)
    assert int(same.sum()) == 100
    assert torch.equal(labels[i] == labels[j], same.bool()) and bool((i != j).all())
    batches.set_epoch(1)
    ((i1, _, _),) = list(batches)
    assert not torch.equal(i, i1)


def test_draw_triplets_gives_valid_uniform_triplets() -> None:
    from siamese.data.sampling.offline_tuples import draw_triplets

    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3])  # class 2 and 3 have no positive
    a, p, n = draw_triplets(labels, 20000, seed=0)
    assert (labels[a] == labels[p]).all() and (a != p).all() and (labels[n] != labels[a]).all()
    assert set(a.tolist()) == {0, 1, 2, 3, 4}
    # Negatives of anchors in class 0 are uniform over the 4 other examples.
    counts = Counter(n[labels[a] == 0].tolist())
    assert set(counts) == {3, 4, 5, 6}
    total = sum(counts.values())
    assert all(abs(c / total - 0.25) < 0.02 for c in counts.values())
    with pytest.raises(DataError, match="2\\+ classes"):
        draw_triplets(torch.tensor([0, 1, 2]), 5)
