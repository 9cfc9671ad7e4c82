import pytest
import torch
from sklearn.linear_model import LogisticRegression

from siamese.errors import ConfigError, DataError
from siamese.evaluation.probe import LinearProbe, probe_accuracy, train_probe


def blobs(
    n: int, d: int, labels: list[int], spread: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = 4.0 * torch.randn(len(labels), d, generator=torch.Generator().manual_seed(99))
    which = torch.randint(len(labels), (n,), generator=g)
    x = centres[which] + spread * torch.randn(n, d, generator=g)
    return x, torch.tensor(labels)[which]


def test_separable_data_is_classified_perfectly_with_non_contiguous_labels() -> None:
    labels = [3, 10, 42, -1]
    x, y = blobs(400, 8, labels, 0.3, seed=0)
    xt, yt = blobs(200, 8, labels, 0.3, seed=1)
    assert probe_accuracy(x, y, xt, yt, epochs=30) == 1.0
    probe = train_probe(x, y, epochs=30)
    assert probe.classes.tolist() == sorted(labels)
    assert set(probe.predict(xt).tolist()) <= set(labels)


def test_probabilities_are_a_softmax_over_classes() -> None:
    x, y = blobs(300, 5, [0, 1, 2], 1.0, seed=2)
    probe = train_probe(x, y)
    p = probe.predict_proba(x)
    assert p.shape == (300, 3) and (p >= 0).all()
    torch.testing.assert_close(p.sum(dim=1), torch.ones(300))
    torch.testing.assert_close(p, torch.softmax(x @ probe.weight.T + probe.bias, dim=1))
    assert torch.equal(probe.predict(x), probe.classes[p.argmax(dim=1)])


def test_predictions_equal_scikit_learn_logistic_regression() -> None:
    x, y = blobs(500, 6, [0, 1, 2, 3], 2.0, seed=3)
    weight_decay = 1e-2
    probe = train_probe(x, y, weight_decay=weight_decay)
    reference = LogisticRegression(C=1 / (weight_decay * 500), max_iter=2000, tol=1e-10)
    reference.fit(x.double().numpy(), y.numpy())
    expected = torch.from_numpy(reference.predict(x.double().numpy()))
    assert torch.equal(probe.predict(x), expected)
    proba = torch.from_numpy(reference.predict_proba(x.double().numpy())).float()
    torch.testing.assert_close(probe.predict_proba(x), proba, atol=2e-3, rtol=0)


def test_training_is_deterministic_given_the_seed() -> None:
    x, y = blobs(200, 4, [0, 1], 1.5, seed=4)
    a, b = train_probe(x, y, epochs=20, seed=7), train_probe(x, y, epochs=20, seed=7)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_unseen_test_labels_count_as_errors() -> None:
    x, y = blobs(100, 4, [0, 1], 0.1, seed=5)
    xt, yt = blobs(50, 4, [0, 1], 0.1, seed=6)
    yt[:10] = 7
    assert probe_accuracy(x, y, xt, yt, epochs=20) == pytest.approx(0.8)


def test_errors() -> None:
    x, y = blobs(20, 4, [0, 1], 1.0, seed=0)
    with pytest.raises(DataError, match="2 classes"):
        train_probe(x, torch.zeros(20, dtype=torch.long))
    with pytest.raises(DataError, match="20 embeddings but 19"):
        train_probe(x, y[:19])
    with pytest.raises(DataError, match="NaN"):
        train_probe(torch.full((20, 4), float("nan")), y)
    with pytest.raises(DataError, match=r"\(N, D\)"):
        train_probe(x[0], y[:1])
    with pytest.raises(ConfigError, match="epochs"):
        train_probe(x, y, epochs=0)
    probe = train_probe(x, y, epochs=5)
    with pytest.raises(DataError, match="4-d"):
        probe.predict(torch.randn(3, 5))
    with pytest.raises(DataError, match="non-empty"):
        probe_accuracy(x, y, torch.empty(0, 4), torch.empty(0, dtype=torch.long))
    assert isinstance(probe, LinearProbe)
