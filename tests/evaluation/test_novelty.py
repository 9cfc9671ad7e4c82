import math

import pytest
import torch
from sklearn.metrics import roc_auc_score

from siamese.errors import ConfigError, DataError
from siamese.evaluation.novelty import (
    GiniDetector,
    NoveltyReport,
    gini_impurity,
    nearest_gallery_distance,
    novelty_auroc,
    novelty_metrics,
    novelty_threshold,
)


def test_gini_impurity_matches_a_loop() -> None:
    p = torch.softmax(torch.randn(50, 7, dtype=torch.float64), dim=1)
    got = gini_impurity(p)
    for n in range(50):
        assert float(got[n]) == pytest.approx(1 - sum(float(v) ** 2 for v in p[n]), abs=1e-12)
    assert gini_impurity(torch.eye(4)).tolist() == [0.0] * 4
    assert float(gini_impurity(torch.full((1, 5), 0.2))[0]) == pytest.approx(0.8)
    with pytest.raises(DataError, match=r"\(N, C\)"):
        gini_impurity(torch.ones(3))


@pytest.mark.parametrize("ties", [False, True])
def test_auroc_equals_scikit_learn_with_out_as_positive(ties: bool) -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.rand(300, generator=g, dtype=torch.float64)
    b = torch.rand(200, generator=g, dtype=torch.float64) + 0.3
    if ties:
        a, b = (a * 4).round(), (b * 4).round()
    truth = [0] * 300 + [1] * 200
    expected = roc_auc_score(truth, torch.cat([a, b]).numpy())
    assert novelty_auroc(a, b) == pytest.approx(expected, abs=1e-12)
    # Brute force: P(out > in) + half P(equal).
    wins = sum((y > x) + 0.5 * (y == x) for x in a.tolist() for y in b.tolist())
    assert novelty_auroc(a, b) == pytest.approx(float(wins) / (300 * 200), abs=1e-12)


def test_auroc_extremes() -> None:
    assert novelty_auroc(torch.tensor([0.1, 0.2]), torch.tensor([0.5, 0.9])) == 1.0
    assert novelty_auroc(torch.tensor([0.5, 0.9]), torch.tensor([0.1, 0.2])) == 0.0
    assert novelty_auroc(torch.zeros(3), torch.zeros(4)) == 0.5
    with pytest.raises(DataError, match="out_scores is empty"):
        novelty_auroc(torch.rand(3), torch.empty(0))
    with pytest.raises(DataError, match="NaN"):
        novelty_auroc(torch.tensor([float("nan")]), torch.rand(2))


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.05, 0.1, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("ties", [False, True])
def test_threshold_keeps_false_alarms_at_or_below_the_rate(rate: float, ties: bool) -> None:
    scores = torch.rand(200, generator=torch.Generator().manual_seed(2))
    if ties:
        scores = (scores * 5).round()
    t = novelty_threshold(scores, rate)
    flagged = float((scores > t).double().mean())
    assert flagged <= rate + 1e-12
    # The smallest such threshold among the observed scores (brute force).
    candidates = [s for s in scores.tolist() if float((scores > s).double().mean()) <= rate]
    if rate < 1.0:
        assert t == pytest.approx(min(candidates))
    else:
        assert flagged == 1.0


def test_threshold_rate_out_of_range() -> None:
    with pytest.raises(ConfigError, match="false_alarm_rate"):
        novelty_threshold(torch.rand(5), 1.5)


def brute_nearest(x: torch.Tensor, gallery: torch.Tensor, metric: str) -> list[float]:
    out = []
    for q in x.double().tolist():
        best = math.inf
        for r in gallery.double().tolist():
            if metric == "euclidean":
                d = math.sqrt(sum((a - b) ** 2 for a, b in zip(q, r, strict=True)))
            else:
                dot = sum(a * b for a, b in zip(q, r, strict=True))
                d = 1 - dot / math.sqrt(sum(a * a for a in q) * sum(b * b for b in r))
            best = min(best, d)
        out.append(best)
    return out


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nearest_gallery_distance_matches_a_loop(metric: str) -> None:
    x, gallery = torch.randn(37, 5), torch.randn(11, 5)
    got = nearest_gallery_distance(x, gallery, metric, block_rows=8)
    assert got.shape == (37,)
    torch.testing.assert_close(
        got.double(),
        torch.tensor(brute_nearest(x, gallery, metric), dtype=torch.float64),
        atol=1e-5,
        rtol=0,
    )
    assert float(nearest_gallery_distance(gallery[:3], gallery).max()) < 1e-3


def test_nearest_gallery_distance_errors() -> None:
    with pytest.raises(DataError, match="empty"):
        nearest_gallery_distance(torch.randn(3, 2), torch.empty(0, 2))
    with pytest.raises(DataError, match="same D"):
        nearest_gallery_distance(torch.randn(3, 2), torch.randn(4, 3))


def test_gini_detector_flags_inputs_between_the_known_classes() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    y = torch.randint(3, (300,), generator=g)
    x = centres[y] + 0.5 * torch.randn(300, 2, generator=g)
    detector = GiniDetector.fit(x, y)
    x_in = centres[y[:100]] + 0.5 * torch.randn(100, 2, generator=g)
    x_out = centres.mean(0) + 0.3 * torch.randn(100, 2, generator=g)  # between the classes
    in_scores, out_scores = detector.scores(x_in), detector.scores(x_out)
    assert in_scores.shape == (100,) and (in_scores >= 0).all() and (in_scores < 2 / 3).all()
    torch.testing.assert_close(in_scores, gini_impurity(detector.probe.predict_proba(x_in)))
    assert novelty_auroc(in_scores, out_scores) > 0.95
    assert not detector.is_novel(x_in).any()  # uncalibrated: threshold 1.0 flags nothing
    t = detector.threshold_at(in_scores, 0.05)
    assert detector.threshold == t
    assert float(detector.is_novel(x_in).double().mean()) <= 0.05
    assert float(detector.is_novel(x_out).double().mean()) > 0.8


def test_novelty_metrics_report() -> None:
    a = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    b = torch.tensor([0.95, 1.5, 2.0, 0.05])
    report = novelty_metrics(a, b, false_alarm_rate=0.1)
    assert isinstance(report, NoveltyReport)
    assert report.threshold == pytest.approx(0.9)
    assert report.false_alarm_rate == pytest.approx(0.1)
    assert report.detection_rate == pytest.approx(0.75)  # 0.95, 1.5, 2.0
    assert report.auroc == pytest.approx(novelty_auroc(a, b))
    assert (report.n_in, report.n_out) == (10, 4)
    assert all(not math.isnan(float(v)) for v in report.as_dict().values())


def test_the_false_alarm_rate_is_measured_on_scores_that_did_not_set_the_threshold() -> None:
    g = torch.Generator().manual_seed(0)
    calibration = torch.rand(1000, generator=g)
    # The reported in-distribution scores drift higher than the calibration ones: a held-out
    # threshold shows it, a threshold set on the reported scores would hide it (0.05 exactly).
    reported = torch.rand(1000, generator=g) * 1.2
    out = torch.rand(200, generator=g) + 1.0
    held_out = novelty_metrics(reported, out, 0.05, calibration_scores=calibration)
    circular = novelty_metrics(reported, out, 0.05)
    assert circular.false_alarm_rate == pytest.approx(0.05, abs=0.002)
    assert held_out.threshold == pytest.approx(float(calibration.quantile(0.95)), abs=0.01)
    expected = float((reported > held_out.threshold).double().mean())
    assert held_out.false_alarm_rate == pytest.approx(expected) and expected > 0.15
    assert (held_out.n_calibration, circular.n_calibration) == (1000, 0)
