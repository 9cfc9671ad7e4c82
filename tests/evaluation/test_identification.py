"""Open-set identification against plain loops in float64: best identities, the enrollment
split, the threshold at a false-positive identification rate, FNIR and DIR."""

from __future__ import annotations

import math

import pytest
import torch

from siamese.errors import DataError
from siamese.evaluation.identification import (
    Trial,
    best_identities,
    enrollment_trial,
    fnir,
    fpir,
    open_set_identification,
    threshold_at_fpir,
)


def test_best_identities_match_a_loop_over_every_gallery_example() -> None:
    g = torch.Generator().manual_seed(0)
    probes = torch.randn(40, 6, generator=g)
    gallery = torch.randn(25, 6, generator=g)
    labels = torch.randint(0, 7, (25,), generator=g) * 3  # sparse ids
    got_label, got_score = best_identities(probes, gallery, labels)
    for q in range(40):
        best = {}
        for k in range(25):
            d = math.dist(probes[q].double().tolist(), gallery[k].double().tolist())
            c = int(labels[k])
            best[c] = min(best.get(c, math.inf), d)
        name, score = min(best.items(), key=lambda item: item[1])
        assert int(got_label[q]) == name
        assert float(got_score[q]) == pytest.approx(score, abs=1e-5)


def test_an_enrollment_trial_splits_people_and_examples_as_stated() -> None:
    y = torch.arange(10).repeat_interleave(6)
    y = torch.cat([y, torch.tensor([10])])  # a person with one image: never enrolled at 1 shot
    z = torch.nn.functional.one_hot(y, 11).float()  # each person a point: rank-1 is perfect
    trial = enrollment_trial(
        z, y, shots=2, generator=torch.Generator().manual_seed(1), metric="euclidean"
    )
    assert trial.enrolled == 5
    assert trial.mated_best.numel() == 5 * 4  # 6 images, 2 enrolled
    assert trial.non_mated_best.numel() == 5 * 6 + 1
    assert bool(trial.mated_correct.all()) and float(trial.mated_best.max()) == 0.0
    assert float(trial.non_mated_best.min()) == pytest.approx(math.sqrt(2))
    with pytest.raises(DataError, match="at least 2 identities with more than 6"):
        enrollment_trial(z, y, shots=6, generator=torch.Generator(), metric="euclidean")


def test_threshold_at_fpir_accepts_at_most_that_share_of_strangers() -> None:
    scores = torch.tensor([0.5, 0.2, 0.9, 0.2, 0.7, 0.3, 0.8, 0.4, 0.6, 0.95] * 10)
    for rate in (0.01, 0.1, 0.25, 0.5):
        t = threshold_at_fpir(scores, rate)
        accepted = sum(1 for s in scores.tolist() if s <= t)
        assert accepted <= rate * scores.numel() + 1e-9
        nxt = min(s for s in scores.tolist() if s > t)  # one step further exceeds the rate
        assert sum(1 for s in scores.tolist() if s <= nxt) > rate * scores.numel()
    assert threshold_at_fpir(scores, 0.001) is None  # 100 strangers cannot measure 0.1 %
    assert threshold_at_fpir(scores, 0.02) < 0.2  # ties at 0.2: both or neither


def test_a_mated_probe_taken_for_another_enrolled_identity_is_a_miss() -> None:
    """NIST's counting: a mated probe whose best candidate is a wrong enrolled identity within
    the threshold is not identified (it counts for FNIR, against DIR), although it is
    accepted; only its own identity within the threshold is a hit."""
    gallery = torch.tensor([[0.0], [1.0]])  # identities 0 and 1, one example each
    gallery_labels = torch.tensor([0, 1])
    mated = torch.tensor([[0.9], [1.2], [0.3]])  # of 0 (nearest to 1), of 1, of 0
    mated_labels = torch.tensor([0, 1, 0])
    stranger = torch.tensor([[5.0]])
    identity, best = best_identities(mated, gallery, gallery_labels)
    assert identity.tolist() == [1, 1, 0]
    torch.testing.assert_close(best, torch.tensor([0.1, 0.2, 0.3]))
    _, stranger_best = best_identities(stranger, gallery, gallery_labels)
    trial = Trial(
        mated_correct=identity == mated_labels,
        mated_best=best,
        non_mated_best=stranger_best,
        enrolled=2,
    )
    # at 0.5 all three mated probes are accepted, but the first is accepted as the wrong person
    assert fnir(trial, 0.5) == pytest.approx(1 / 3)
    assert 1 - fnir(trial, 0.5) == pytest.approx(2 / 3)  # DIR
    assert fnir(trial, 0.25) == pytest.approx(2 / 3)  # the third is now beyond the threshold
    assert fpir(trial, 0.5) == 0.0 and fpir(trial, 4.5) == 1.0


def test_fnir_fpir_and_the_open_set_report_agree_with_counting() -> None:
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(20, 8, generator=g) * 2
    y = torch.arange(20).repeat_interleave(8)
    z = centres[y] + torch.randn(160, 8, generator=g)
    trial = enrollment_trial(z, y, 1, torch.Generator().manual_seed(4), "euclidean")
    t = 2.5
    hits = sum(
        1
        for ok, d in zip(trial.mated_correct.tolist(), trial.mated_best.tolist(), strict=True)
        if ok and d <= t
    )
    assert fnir(trial, t) == pytest.approx(1 - hits / trial.mated_best.numel())
    strangers = sum(1 for d in trial.non_mated_best.tolist() if d <= t)
    assert fpir(trial, t) == pytest.approx(strangers / trial.non_mated_best.numel())
    report = open_set_identification(z, y, shots=1, trials=5, seed=4, thresholds={1e-2: t})
    assert report["enrolled"] == 10 and report["mated_probes"] == 70
    assert report["non_mated_probes"] == 80
    assert 0 <= report["rank1"]["mean"] <= 1 and report["rank1"]["trials"] == 5
    assert report["fnir_at_fpir"]["0.01"] is None  # 80 strangers: 1 % is not measurable
    assert report["fnir_at_fpir"]["0.1"]["trials"] == 5
    first = report["at_threshold"]["0.01"]
    assert first["threshold"] == t and 0 <= first["dir"]["mean"] <= 1
    again = open_set_identification(z, y, shots=1, trials=5, seed=4, thresholds={1e-2: t})
    assert again == report  # seeded


def test_evaluate_measures_open_set_identification_with_thresholds_from_other_classes(
    tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    import json

    from siamese.training.training_run import train_run
    from tests.cli_runner import run_cli
    from tests.conftest import small_digits_config

    run = tmp_path / "run"
    # 4 digits to test on; of the rest, some validate (and calibrate the thresholds)
    train_run(small_digits_config("data.test_fraction=0.4", "batches.p=3"), run, quiet=True)
    code, out = run_cli(["evaluate", str(run), "--protocol", "identification"], capsys)
    assert code == 0, out
    assert "open-set rank-1 (1-shot)" in out and "FNIR at FPIR 10% (5-shot)" in out
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())["metrics"]
    report = metrics["identification"]
    assert report["thresholds"].startswith("calibrated on the run's validation classes (")
    one = report["1-shot"]
    assert one["enrolled"] == 2 and one["trials"] == 10
    assert set(one["at_threshold"]) >= {"0.01", "0.001"}
    assert 0 <= one["at_threshold"]["0.01"]["fpir"]["mean"] <= 1
    # on the validation classes themselves the thresholds would be circular: not applied
    code, out = run_cli(
        [
            "evaluate",
            str(run),
            "--protocol",
            "identification",
            "--data",
            "digits",
            "--out",
            str(tmp_path / "on_all"),
        ],
        capsys,
    )
    assert code == 0, out
    report = json.loads((tmp_path / "on_all" / "metrics.json").read_text())["metrics"]
    validation = json.loads((run / "split.json").read_text())["parts"]["validation"]
    expected = f"{validation['classes']} of which are in this evaluation data: not applied"
    assert expected in report["identification"]["thresholds"]
    assert report["identification"]["1-shot"]["at_threshold"] == {}
