"""`siamese evaluate RUN` and `siamese plot RUN KIND` on a small real run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from siamese.config import load_config
from siamese.training.training_run import train_run
from tests.cli_runner import run_cli


def small_digits_config(*overrides: str):  # type: ignore[no-untyped-def]
    """A seconds-long digits run: 5 classes to train on, 5 held out."""
    base = [
        "data.name=digits",
        "data.validation_fraction=0.5",
        "model.options.widths=[8]",
        "model.embedding_dim=8",
        "batches.p=5",
        "batches.k=4",
    ]
    return load_config(None, [*base, *overrides])


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("evaluate") / "run"
    config = load_config(
        None,
        [
            "data.name=digits",
            "data.validation_fraction=0.5",  # 5 held-out digits: 5-way episodes fit
            "model.options.widths=[8, 16]",
            "model.embedding_dim=16",
            "batches.p=5",
            "batches.k=4",
            "train.epochs=2",
            "train.validate_every=0",  # one validation, at the end: it chooses nothing
        ],
    )
    train_run(config, run, quiet=True)
    return run


@pytest.mark.slow
def test_evaluate_writes_the_three_reports(
    digits_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(["evaluate", str(digits_run), "--episodes", "200"], capsys)
    assert code == 0, out
    assert "ROC AUC" in out and "precision@1" in out and "5-way 1-shot" in out
    assert "20-way" not in out  # 5 classes: 5-way is every class at once
    metrics = json.loads((digits_run / "evaluation" / "metrics.json").read_text())
    assert metrics["data"] == "digits (the run's held-out validation part)"
    assert metrics["classes"] == 5
    statement = metrics["statement"]
    assert statement["classes_seen"] == 0 and statement["setting"].startswith("open-set")
    assert statement["examples_trained_on"] == 0 and statement["warnings"] == []
    assert "Classes seen in training: 0 of 5 (open-set" in out
    assert {"verification", "retrieval", "fewshot"} <= set(metrics["metrics"])
    assert 0.5 < metrics["metrics"]["verification"]["auc"] <= 1
    assert 0 <= metrics["metrics"]["retrieval"]["map_at_r"] <= 1
    markdown = (digits_run / "evaluation" / "report.md").read_text()
    assert markdown.splitlines()[2].startswith("Data: digits (the run's held-out validation part)")
    assert markdown.splitlines()[3].startswith("Classes seen in training: 0 of 5")
    assert markdown.splitlines()[4].startswith("Examples trained on: 0 of")
    assert "| ROC AUC |" in markdown and "![Verification ROC](figures/roc.png)" in markdown
    page = (digits_run / "evaluation" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(metrics["figures"]) >= 5
    for figure in metrics["figures"].values():
        with Image.open(digits_run / "evaluation" / figure) as image:
            assert image.size[0] > 300 and image.getextrema() != ((255, 255),) * 4
    # pairs.csv re-derives the verification numbers: balanced pairs, the same AUC.
    import csv

    import torch

    from siamese.evaluation.verification import roc_auc

    with (digits_run / "evaluation" / "pairs.csv").open() as f:
        rows = list(csv.DictReader(f))
    same = torch.tensor([int(r["same"]) for r in rows])
    distance = torch.tensor([float(r["distance"]) for r in rows], dtype=torch.float64)
    assert (
        int(same.sum()) == int((same == 0).sum()) == metrics["metrics"]["verification"]["n_genuine"]
    )
    assert roc_auc(distance, same) == pytest.approx(metrics["metrics"]["verification"]["auc"])


@pytest.mark.slow
def test_evaluate_measures_raw_inputs_beside_and_checks_the_episode_groups(
    digits_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(["evaluate", str(digits_run), "--episodes", "100", "--baseline"], capsys)
    assert code == 0, out
    metrics = json.loads((digits_run / "evaluation" / "metrics.json").read_text())
    raw = metrics["metrics"]["raw_inputs"]
    model = metrics["metrics"]["verification"]
    # The same pairs: as many genuine and impostor pairs, another AUC.
    assert raw["verification"]["n_genuine"] == model["n_genuine"]
    assert 0.5 < raw["verification"]["auc"] <= 1 and raw["verification"]["auc"] != model["auc"]
    assert "5-way 1-shot" in raw["fewshot"] and "5-way 1-shot (raw inputs)" in metrics["headline"]
    # Evaluated on the run's own validation part: no threshold may be chosen there.
    assert "accuracy_at_validation_threshold" not in model
    code, out = run_cli(["evaluate", str(digits_run), "--fewshot-across", "writer"], capsys)
    assert code == 1 and "has no such per-example attribute" in out and "Traceback" not in out


@pytest.mark.slow
def test_evaluate_refuses_data_that_chose_the_checkpoint_and_warns_on_trained_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    config = small_digits_config("train.epochs=2", "train.validate_every=1")
    train_run(config, run, quiet=True)
    code, out = run_cli(["evaluate", str(run), "--episodes", "20"], capsys)
    assert code == 1 and "validated 2 times" in out and "--data" in out
    assert not (run / "evaluation").exists()
    # Asked for explicitly, data the run trained on is evaluated, with a warning.
    code, out = run_cli(["evaluate", str(run), "--data", "digits", "--episodes", "20"], capsys)
    assert code == 0, out
    statement = json.loads((run / "evaluation" / "metrics.json").read_text())["statement"]
    assert statement["setting"] == "partly seen classes" and statement["classes_seen"] == 5
    assert 800 <= statement["examples_trained_on"] <= 1000  # the 5 training digits
    assert "were trained on" in statement["warnings"][0] and "Warning:" in out


def test_a_run_on_all_of_a_dataset_is_not_evaluated_on_one_of_its_splits() -> None:
    from siamese.run_evaluation.data import evaluation_data

    config = load_config(None, ["data.name=glyphs", "data.split=all", "data.validation=classes"])
    chosen = evaluation_data(config)
    assert chosen.source == "validation"  # not glyphs "train", which "all" contains
    trained = load_config(None, ["data.name=glyphs", "data.split=train"])
    assert evaluation_data(trained).description == "glyphs (test)"


@pytest.mark.slow
def test_a_failed_evaluation_leaves_the_earlier_one_intact_and_out_chooses_the_folder(
    digits_run: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from siamese.run_evaluation import protocols

    code, out = run_cli(["evaluate", str(digits_run), "--episodes", "50"], capsys)
    assert code == 0, out
    folder = digits_run / "evaluation"
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert Path("figures/embedding.png") in before and Path("pairs.csv") in before

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the disk filled up")

    # Fails after the embedding figure and the verification were drawn.
    monkeypatch.setattr(protocols, "retrieval", broken)
    with pytest.raises(RuntimeError, match="disk filled up"):
        run_cli(["evaluate", str(digits_run), "--episodes", "60", "--seed", "3"], capsys)
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in digits_run.iterdir() if p.name.startswith(".evaluation")] == []
    monkeypatch.undo()
    elsewhere = tmp_path / "reports" / "digits"
    code, out = run_cli(
        ["evaluate", str(digits_run), "--episodes", "50", "--out", str(elsewhere)], capsys
    )
    assert code == 0 and str(elsewhere / "report.md") in out
    assert (elsewhere / "figures" / "roc.png").is_file()
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before


def test_a_pair_classifier_run_is_scored_by_its_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    import torch

    import siamese
    from siamese.data.sources import load_dataset
    from siamese.run_directory.metrics import read_metrics

    run = tmp_path / "run"
    config = small_digits_config(
        "loss.name=pair_classifier", "train.epochs=1", "train.validate_every=0"
    )
    train_run(config, run, quiet=True)
    code, out = run_cli(["evaluate", str(run), "--protocol", "verification"], capsys)
    assert code == 0, out
    folder = run / "evaluation"
    verification = json.loads((folder / "metrics.json").read_text())["metrics"]["verification"]
    assert verification["score"] == "1 - p(same) from the pair classifier's head"
    with (folder / "pairs.csv").open() as f:
        rows = list(csv.DictReader(f))[:50]
    net = siamese.load_siamese_net(run)
    data = load_dataset("digits")
    i = torch.tensor([int(r["i"]) for r in rows])
    j = torch.tensor([int(r["j"]) for r in rows])
    held_out = json.loads((run / "split.json").read_text())["parts"]["validation"]["class_ids"]
    x = data.x[torch.isin(data.y, torch.tensor(held_out))]
    with torch.no_grad():
        expected = 1 - net.probability(x[i], x[j])
    got = torch.tensor([float(r["distance"]) for r in rows])
    torch.testing.assert_close(got, expected.float(), atol=1e-5, rtol=1e-4)
    # Training-time validation scored the same way: its AUC is the head's, not a distance's.
    from siamese.evaluation.validation import validate
    from siamese.run_directory.data import load_training_data

    _, val_data, _ = load_training_data(config)
    rows = [r for r in read_metrics(run / "metrics.csv") if r["kind"] == "validation"]
    logged = float(rows[-1]["val_roc_auc"])
    by_head = validate(net.embedding_net, val_data, seed=config.seed, head=net.head)["roc_auc"]
    by_distance = validate(net.embedding_net, val_data, seed=config.seed)["roc_auc"]
    assert logged == pytest.approx(by_head, abs=1e-5) and by_head != by_distance


@pytest.mark.slow
def test_test_classes_are_held_out_by_folds_and_evaluated_with_a_validation_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from siamese.run_directory.data import load_training_data

    base = ["data.name=digits", "data.test_fraction=0.25", "data.validation_fraction=0.3"]
    tests = []
    for fold in range(4):
        config = load_config(None, [*base, f"data.test_fold={fold}"])
        train, validation, record = load_training_data(config)
        test = set(record["test"]["class_names"])
        assert not test & {train.classes[c] for c in train.class_ids.tolist()}
        assert not test & {validation.classes[c] for c in validation.class_ids.tolist()}
        tests.append(test)
    assert set().union(*tests) == {str(d) for d in range(10)}
    assert sum(len(t) for t in tests) == 10  # the folds partition the classes

    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"name": "digits", "test_fraction": 0.5, "validation_fraction": 0.4},
                "model": {"options": {"widths": [8]}, "embedding_dim": 8},
                "batches": {"p": 3, "k": 4},
                "train": {"steps": 4, "epochs": None, "log_every": 2},
            }
        )
    )
    out_dir = tmp_path / "folds"
    argv = ["sweep", str(config), "--out", str(out_dir), "--episodes", "20"]
    code, out = run_cli([*argv, "--set", "data.test_fold=0,1"], capsys)
    assert code == 0, out
    document = json.loads((out_dir / "sweep.json").read_text())
    assert len(document["folds"]) == 2 and "EER" in document["mean_std"]
    assert "mean ± std over 2 folds" in (out_dir / "sweep.md").read_text()
    metrics = json.loads((out_dir / "data.test_fold=1" / "evaluation" / "metrics.json").read_text())
    assert metrics["data"].startswith("digits (held-out test classes: fold 1 of 2)")
    assert (
        metrics["statement"]["classes_seen"] == 0
        and metrics["statement"]["examples_trained_on"] == 0
    )
    assert "accuracy_at_validation_threshold" in metrics["metrics"]["verification"]
    code, out = run_cli([*argv, "--set", "data.test_fold=0,2"], capsys)
    assert code == 1 and "test_fold = 2" in out and "choose 0 to 1" in out


def test_plot_draws_one_figure_and_errors_are_one_line(
    digits_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(["plot", str(digits_run), "roc"], capsys)
    assert code == 0 and out.strip().endswith("figures/roc.png")
    code, out = run_cli(["plot", str(digits_run), "rock"], capsys)
    assert code == 1 and "unknown figure 'rock'" in out
    code, out = run_cli(["evaluate", str(digits_run), "--protocol", "novelty"], capsys)
    assert code == 1 and "needs out-of-distribution examples" in out
    code, out = run_cli(["evaluate", str(digits_run), "--gallery", "train"], capsys)
    assert code == 1 and "class-disjoint split" in out and "--gallery self" in out
    code, out = run_cli(["evaluate", str(digits_run), "--data-option", "channels=1"], capsys)
    assert code == 1 and "give --data" in out


@pytest.mark.slow
def test_photos_are_fitted_to_the_model_or_read_with_data_options(
    digits_run: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "owl"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for k in range(4):
            pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{k}.png")
    data = f"folder:{tmp_path / 'photos'}"
    base = ["evaluate", str(digits_run), "--data", data, "--episodes", "20"]
    code, out = run_cli([*base, "--out", str(tmp_path / "fitted")], capsys)
    assert code == 0, out
    document = json.loads((tmp_path / "fitted" / "metrics.json").read_text())
    assert "converted from 3 channels to 1, resized from 20×24 to 8×8" in document["data"]
    assert document["statement"]["classes_seen"] == 0
    options = ["--data-option", "image_size=8,8", "--data-option", "channels=1"]
    code, out = run_cli([*base, *options, "--out", str(tmp_path / "options")], capsys)
    assert code == 0, out
    document = json.loads((tmp_path / "options" / "metrics.json").read_text())
    assert "resized" not in document["data"] and "converted" not in document["data"]
    code, out = run_cli(
        [*base, "--data-option", "image_size", "--out", str(tmp_path / "x")], capsys
    )
    assert code == 1 and "expected KEY=VALUE" in out and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_sweep_trains_one_run_per_value_and_draws_the_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"name": "digits", "validation_fraction": 0.5},
                "model": {"options": {"widths": [8]}, "embedding_dim": 8},
                "batches": {"p": 5, "k": 4},
                "train": {"steps": 6, "epochs": None, "log_every": 3},
            }
        )
    )
    argv = ["sweep", str(config), "--out", str(tmp_path / "sweep"), "--episodes", "50"]
    code, out = run_cli([*argv, "--set", "loss.margin=0.1,0.5", "--set", "seed=2"], capsys)
    assert code == 0, out
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [r["loss.margin"] for r in rows] == [0.1, 0.5] and "MAP@R" in rows[0]
    assert load_config(tmp_path / "sweep" / "loss.margin=0.5" / "config.yaml").seed == 2
    with Image.open(tmp_path / "sweep" / "sweep.png") as image:
        assert image.size == (600, 390)
    assert "| loss.margin |" in (tmp_path / "sweep" / "sweep.md").read_text()
    code, out = run_cli([*argv, "--set", "loss.margin=0.1"], capsys)
    assert code == 1 and "a sweep varies one key" in out


@pytest.mark.slow
def test_sweep_of_words_with_a_fixed_list_and_the_training_gallery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"name": "digits", "validation": "samples"},
                "model": {"embedding_dim": 8},
                "batches": {"p": 5, "k": 4},
                "train": {"steps": 4, "epochs": None, "log_every": 2},
            }
        )
    )
    out_dir = tmp_path / "sweep"
    argv = ["sweep", str(config), "--out", str(out_dir), "--episodes", "20", "--gallery", "train"]
    sets = ["--set", "model.options.widths=[8, 16]", "--set", "loss.mining=semihard,hard"]
    code, out = run_cli([*argv, *sets], capsys)
    assert code == 0, out
    rows = json.loads((out_dir / "sweep.json").read_text())
    assert [r["loss.mining"] for r in rows] == ["semihard", "hard"]
    assert "1-NN accuracy (gallery: training set)" in rows[0]
    run = out_dir / "loss.mining=hard"
    assert load_config(run / "config.yaml").model.options["widths"] == [8, 16]


def test_sweep_values_split_at_top_level_commas_only() -> None:
    from siamese.experiments.sweep import parse_sweep

    key, values, fixed = parse_sweep(
        ["model.options.widths=[8, 16]", "loss.margin=0.1, 0.2", "data.options={a: 1, b: 2}"]
    )
    assert key == "loss.margin" and values == [0.1, 0.2]
    assert fixed == ["model.options.widths=[8, 16]", "data.options={a: 1, b: 2}"]
    key, values, _ = parse_sweep(["model.options.widths=[8,16],[16,32]", "note='a,b'"])
    assert key == "model.options.widths" and values == [[8, 16], [16, 32]]


def test_the_retrieval_figure_of_a_training_gallery_shows_training_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import siamese.plots
    from siamese.data.labeled import LabeledData
    from siamese.run_evaluation import protocols
    from siamese.run_evaluation.result import Evaluation

    drawn = {}

    def capture(images, labels, queries, neighbours, path, title, **kwargs):  # type: ignore[no-untyped-def]
        drawn.update(images=images, labels=labels, queries=queries, neighbours=neighbours)
        return path

    monkeypatch.setattr(siamese.plots, "plot_retrieval_grid", capture)
    y = torch.arange(4).repeat_interleave(3)
    test = LabeledData(x=torch.zeros(12, 1, 4, 4, dtype=torch.uint8), y=y, classes=list("abcd"))
    gallery_x = torch.full((12, 1, 4, 4), 255, dtype=torch.uint8)
    z = torch.nn.functional.one_hot(y, 4).float()
    result = Evaluation(tmp_path, "test", 12, 4, tmp_path)
    protocols.retrieval(result, test, z, "euclidean", tmp_path, 0, (z + 0.01, y), gallery_x)
    images, neighbours = drawn["images"], drawn["neighbours"]
    assert bool((images[drawn["queries"]] == 0).all())  # the queries: test images
    assert bool((images[neighbours] == 255).all())  # their neighbours: training images
    assert bool((drawn["labels"][neighbours[:, 0]] == drawn["labels"][drawn["queries"]]).all())


@pytest.mark.skipif(
    not os.environ.get("SIAMESE_DATA_DIR"), reason="SIAMESE_DATA_DIR is not set to a directory"
)
@pytest.mark.slow
def test_novelty_of_an_mnist_model_against_fashion_mnist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "mnist"
    config = load_config(
        None,
        [
            "data.name=mnist",
            "data.validation=none",
            "model.options.widths=[16, 32]",
            "batches.p=10",
            "batches.k=8",
            "train.steps=40",
            "train.epochs=null",
        ],
    )
    train_run(config, run, quiet=True)
    argv = ["evaluate", str(run), "--protocol", "novelty", "--ood", "fashion-mnist:test"]
    code, out = run_cli(argv, capsys)
    assert code == 0, out
    novelty = json.loads((run / "evaluation" / "metrics.json").read_text())["metrics"]["novelty"]
    assert novelty["ood"] == "fashion-mnist:test"
    # Even a briefly trained digit embedding tells clothes from digits by distance; the
    # Gini detector needs a longer-trained model (0.97 after 150 steps by hand), so here
    # it is only checked to be a valid AUROC.
    assert novelty["distance"]["auroc"] > 0.8 and 0.0 <= novelty["gini"]["auroc"] <= 1.0
    assert novelty["gini"]["n_out"] == 10_000 and novelty["ood_resized"] == ""
    assert novelty["gini"]["n_in"] == novelty["gini"]["n_calibration"] == 5_000
    assert 0.5 < novelty["probe_accuracy"] <= 1 and "probe accuracy" in out
    # Omniglot's 105×105 characters are resized to the model's 28×28 input.
    argv = ["evaluate", str(run), "--protocol", "novelty", "--ood", "omniglot:evaluation"]
    code, out = run_cli(argv, capsys)
    assert code == 0, out
    novelty = json.loads((run / "evaluation" / "metrics.json").read_text())["metrics"]["novelty"]
    assert novelty["ood_resized"] == "resized from 105×105 to 28×28"
    assert novelty["ood_examples"] == 13_180 and novelty["distance"]["auroc"] > 0.6
    # The tutorials' 1-NN test accuracy: MNIST test queries against the 60,000 training images.
    argv = ["evaluate", str(run), "--protocol", "retrieval", "--gallery", "train"]
    code, out = run_cli(argv, capsys)
    assert code == 0 and "1-NN accuracy (gallery: training set)" in out
    retrieval = json.loads((run / "evaluation" / "metrics.json").read_text())["metrics"][
        "retrieval"
    ]
    assert retrieval["gallery"] == "training examples" and retrieval["queries"] == 10_000
    assert retrieval["precision_at_1"] > 0.5  # 40 steps of training; chance is 0.1
