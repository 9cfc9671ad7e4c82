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
