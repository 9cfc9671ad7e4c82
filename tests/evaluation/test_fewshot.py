import inspect
import math

import pytest
import torch

from siamese.errors import ConfigError, DataError
from siamese.evaluation.fewshot import episode_predictions, episodic_accuracy, sample_episodes


def make_set(n_classes: int = 12, per_class: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    groups = torch.arange(per_class).repeat(n_classes)
    return labels[torch.randperm(labels.numel())], groups


def test_episode_structure() -> None:
    labels, groups = make_set()
    ep = sample_episodes(labels, n_way=5, k_shot=3, episodes=200, seed=0, groups=groups)
    assert (
        ep.support.shape == (200, 5, 3)
        and ep.query.shape == (200, 5)
        and ep.classes.shape == (200, 5)
    )
    for e in range(200):
        assert len(set(ep.classes[e].tolist())) == 5
        for w in range(5):
            shots = ep.support[e, w].tolist()
            assert len(set(shots)) == 3
            assert (labels[ep.support[e, w]] == ep.classes[e, w]).all()
            assert labels[ep.query[e, w]] == ep.classes[e, w]
            assert int(ep.query[e, w]) not in shots
            assert int(groups[ep.query[e, w]]) not in groups[ep.support[e, w]].tolist()


def test_episodes_are_seeded() -> None:
    labels, _ = make_set()
    a = sample_episodes(labels, 5, 1, 50, seed=1)
    b = sample_episodes(labels, 5, 1, 50, seed=1)
    c = sample_episodes(labels, 5, 1, 50, seed=2)
    assert torch.equal(a.support, b.support) and torch.equal(a.query, b.query)
    assert not torch.equal(a.support, c.support)


def test_perfect_and_random_embeddings() -> None:
    labels, groups = make_set()
    one_hot = torch.nn.functional.one_hot(labels, 12).float()
    mean, ci = episodic_accuracy(one_hot, labels, 5, 1, episodes=300, seed=0, groups=groups)
    assert mean == 1.0 and ci == 0.0
    noise = torch.randn(labels.numel(), 16)
    mean, ci = episodic_accuracy(noise, labels, 5, 1, episodes=2000, seed=0)
    assert abs(mean - 0.2) < 0.03 and 0 < ci < 0.03


@pytest.mark.parametrize("rule", ["prototype", "nearest"])
def test_predictions_match_a_loop(rule: str) -> None:
    labels, _ = make_set()
    emb = torch.randn(labels.numel(), 8)
    ep = sample_episodes(labels, 4, 3, 30, seed=4)
    got = episode_predictions(emb, ep, rule=rule)
    for e in range(30):
        for q in range(4):
            query = emb[ep.query[e, q]]
            if rule == "prototype":
                dists = [float((query - emb[ep.support[e, w]].mean(0)).norm()) for w in range(4)]
            else:
                dists = [
                    min(float((query - emb[i]).norm()) for i in ep.support[e, w]) for w in range(4)
                ]
            assert int(got[e, q]) == min(range(4), key=dists.__getitem__)


def test_errors() -> None:
    labels, _ = make_set(n_classes=3)
    with pytest.raises(DataError, match="5-way"):
        sample_episodes(labels, 5, 1, 10)
    with pytest.raises(ConfigError, match="n_way"):
        sample_episodes(labels, 1, 1, 10)
    with pytest.raises(ConfigError, match="rule"):
        episode_predictions(torch.randn(30, 2), sample_episodes(labels, 2, 1, 2), rule="knn")


@pytest.mark.parametrize("rule", ["prototype", "nearest"])
def test_mean_and_ci95_match_a_loop_over_episodes(rule: str) -> None:
    labels, _ = make_set(n_classes=8, per_class=6)
    emb = torch.randn(labels.numel(), 4, generator=torch.Generator().manual_seed(3))
    n_way, k_shot, episodes = 3, 2, 25
    ep = sample_episodes(labels, n_way, k_shot, episodes, seed=9)
    per_episode = []
    for e in range(episodes):
        right = 0
        for q in range(n_way):
            query = emb[ep.query[e, q]].double()
            dists = []
            for w in range(n_way):
                shots = emb[ep.support[e, w]].double()
                if rule == "prototype":
                    dists.append(float((query - shots.mean(0)).norm()))
                else:
                    dists.append(min(float((query - s).norm()) for s in shots))
            right += min(range(n_way), key=dists.__getitem__) == q
        per_episode.append(right / n_way)
    mean = sum(per_episode) / episodes
    std = math.sqrt(sum((a - mean) ** 2 for a in per_episode) / episodes)
    got_mean, got_ci = episodic_accuracy(emb, labels, n_way, k_shot, episodes, seed=9, rule=rule)
    assert got_mean == pytest.approx(mean, abs=1e-12)
    assert got_ci == pytest.approx(1.96 * std / math.sqrt(episodes), abs=1e-12)


def test_defaults_use_1000_seeded_episodes() -> None:
    labels, _ = make_set()
    emb = torch.randn(labels.numel(), 8)
    assert inspect.signature(episodic_accuracy).parameters["episodes"].default >= 1000
    assert episodic_accuracy(emb, labels, 5, 1) == episodic_accuracy(emb, labels, 5, 1, 1000, 0)
    assert episodic_accuracy(emb, labels, 5, 1, seed=1) != episodic_accuracy(emb, labels, 5, 1)
    mean, ci = episodic_accuracy(emb, labels, 5, 1, episodes=1)
    assert 0 <= mean <= 1 and ci == 0.0


def test_small_classes_are_never_drawn() -> None:
    labels = torch.cat([torch.arange(4).repeat_interleave(3), torch.tensor([10, 11, 11])])
    ep = sample_episodes(labels, 3, 2, 200, seed=0)
    assert set(ep.classes.flatten().tolist()) == {0, 1, 2, 3}
    with pytest.raises(DataError, match="5-way 2-shot episodes need 5 classes with at least 3"):
        sample_episodes(labels, 5, 2, 10)
    with pytest.raises(DataError, match="at least 3"):
        episodic_accuracy(torch.randn(3, 2), torch.tensor([0, 0, 1]), 2, 2, 10)


def test_episodic_accuracy_input_errors() -> None:
    labels, _ = make_set(n_classes=4)
    with pytest.raises(DataError, match="one row per label"):
        episodic_accuracy(torch.randn(5, 2), labels, 2, 1, 10)
    with pytest.raises(DataError, match="NaN"):
        episodic_accuracy(torch.full((labels.numel(), 2), float("nan")), labels, 2, 1, 10)
    with pytest.raises(ConfigError, match="rule"):
        episodic_accuracy(torch.randn(labels.numel(), 2), labels, 2, 1, 10, rule="knn")
    with pytest.raises(ConfigError, match="k_shot"):
        episodic_accuracy(torch.randn(labels.numel(), 2), labels, 2, 0, 10)
