"""The pair tutorials' protocol (`data.validation: pairs`): one fixed pair set over all
examples, a share held out, training passing over the rest, evaluation on the held-out pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from siamese.config import load_config
from siamese.data.sampling.offline_tuples import TupleBatches
from siamese.data.sampling.pair_protocol import pair_split
from siamese.errors import ConfigError
from siamese.training.training_run import train_run
from tests.cli_runner import run_cli


def test_pair_split_holds_out_the_share_and_is_seeded() -> None:
    labels = torch.arange(40) % 8
    train, test = pair_split(labels, 1000, 0.25, seed=3)
    assert train[0].numel() == 750 and test[0].numel() == 250
    for i, j, same in (train, test):
        assert torch.equal((labels[i] == labels[j]).long(), same)
        assert bool((i != j).all())
    assert int(train[2].sum()) == 375 and int(test[2].sum()) == 125  # stratified
    again = pair_split(labels, 1000, 0.25, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(train + test, again[0] + again[1], strict=True))
    other = pair_split(labels, 1000, 0.25, seed=4)
    assert not torch.equal(train[0], other[0][0])
    with pytest.raises(ConfigError, match="held-out share"):
        pair_split(labels, 1000, 1.0)
    with pytest.raises(ConfigError, match="at least 4 pairs"):
        pair_split(labels, 3, 0.25)


def test_fixed_pairs_are_each_seen_once_per_epoch_in_a_new_order() -> None:
    labels = torch.arange(30) % 5
    fixed, _ = pair_split(labels, 200, 0.25, seed=0)
    batches = TupleBatches(labels, "pairs", 32, per_epoch=9999, seed=1, fixed=fixed)
    assert len(batches) == 5  # ceil(150 / 32), per_epoch ignored

    def epoch(e: int) -> torch.Tensor:
        batches.set_epoch(e)
        rows = [torch.stack(b, 1) for b in batches]
        return torch.cat(rows)

    first, second = epoch(0), epoch(1)
    whole = torch.stack(fixed, 1)
    for seen in (first, second):
        assert seen.shape == whole.shape
        assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, whole.tolist()))
    assert not torch.equal(first, second)
    with pytest.raises(ConfigError, match="for kind 'pairs'"):
        TupleBatches(labels, "triplets", 4, 100, fixed=fixed)


def test_pairs_validation_needs_pair_batches() -> None:
    with pytest.raises(ConfigError, match=r"needs batches\.kind 'pairs'"):
        load_config(None, ["data.validation=pairs"])
    pairs = ["data.validation=pairs", "batches.kind=pairs", "loss.name=contrastive"]
    with pytest.raises(ConfigError, match=r"holds out 1 genuine pair\(s\); verification needs"):
        load_config(None, [*pairs, "data.pairs=8"])
    with pytest.raises(ConfigError, match=r"batches\.per_epoch = 500 does not apply"):
        load_config(None, [*pairs, "batches.per_epoch=500"])
    assert load_config(None, [*pairs, "data.pairs=16"]).data.pairs == 16


def test_a_pair_protocol_run_is_evaluated_on_its_held_out_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    config = load_config(
        None,
        [
            "data.name=digits",
            "data.validation=pairs",
            "data.pairs=2000",
            "data.validation_fraction=0.25",
            "model.options.widths=[8, 16]",
            "model.embedding_dim=16",
            "model.normalize=false",
            "loss.name=contrastive",
            "loss.margin=1.0",
            "batches.kind=pairs",
            "batches.size=64",
            "train.epochs=2",
        ],
    )
    result = train_run(config, run, quiet=True)
    assert result.steps == 2 * 24  # ceil(1,500 training pairs / 64) per epoch
    split = json.loads((run / "split.json").read_text())
    assert split["method"] == "pairs" and split["pairs"] == 2000
    code, out = run_cli(["evaluate", str(run)], capsys)
    assert code == 0, out
    assert "accuracy at d < margin/2" in out and "precision@1" not in out
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert metrics["data"] == "digits (the run's held-out 25% of 2,000 pairs)"
    protocol = metrics["metrics"]["pair_protocol"]
    assert protocol["held_out_pairs"] == 500 and protocol["training_pairs"] == 1500
    # 1,797 digits give ~1.6M distinct pairs: few held-out pairs repeat a training pair,
    # but nearly every held-out pair's two digits were trained on.
    assert protocol["held_out_pairs_also_training_pairs"] < 0.05
    assert protocol["held_out_pairs_with_both_examples_trained_on"] > 0.5
    verification = metrics["metrics"]["verification"]
    assert 0.5 <= verification["accuracy_at_half_margin"] <= 1
    assert set(metrics["metrics"]) == {"pair_protocol", "verification"}
