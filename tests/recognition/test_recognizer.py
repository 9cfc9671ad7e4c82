"""`Recognizer`: a trained run's model applied to real image files, PIL images, arrays and
tensors, and compared against the thresholds training calibrated on its validation classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from siamese.data.sources import load_dataset
from siamese.distances import paired_distances
from siamese.errors import CheckpointError, ConfigError, DataError
from siamese.recognition import Recognizer
from siamese.recognition.thresholds import calibrate, write_thresholds
from siamese.training.training_run import train_run
from tests.conftest import small_digits_config


@pytest.fixture
def run(digits_model: Path) -> Path:
    return digits_model


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight digits written as real PNG files (grey), read back through the decoder."""
    folder = tmp_path_factory.mktemp("digit_files")
    data = load_dataset("digits")
    paths = []
    for k in range(8):
        path = folder / f"digit{k}.png"
        Image.fromarray(data.x[k, 0].numpy(), "L").save(path)
        paths.append(path)
    return paths


def test_training_calibrates_thresholds_on_its_validation_classes(run: Path) -> None:
    description = json.loads((run / "model.json").read_text())
    t = description["thresholds"]
    assert "validation classes (5 classes" in t["calibrated_on"]
    assert t["metric"] == "euclidean" and t["impostor_pairs"] > 100_000
    assert "0.001" in t["at_far"] and 0 <= t["eer"] < 0.5
    assert description["preprocessing"] == {"resize": "stretch"}
    assert (
        "thresholds calibrated on the run's validation classes" in (run / "train.log").read_text()
    )


def test_a_run_without_validation_classes_says_how_to_calibrate(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_run(small_digits_config("data.validation=none", "train.epochs=1"), out, quiet=True)
    assert "thresholds" not in json.loads((out / "model.json").read_text())
    assert "siamese calibrate" in (out / "train.log").read_text()
    recognizer = Recognizer.load(out)
    with pytest.raises(ConfigError, match=r"no calibrated thresholds.*siamese calibrate"):
        recognizer.compare(torch.zeros(1, 8, 8, dtype=torch.uint8), torch.zeros(1, 8, 8))


def test_every_kind_of_input_gives_the_same_embedding(run: Path, digit_files: list[Path]) -> None:
    recognizer = Recognizer.load(run)
    data = load_dataset("digits")
    from_files = recognizer.embed(digit_files)
    assert from_files.shape == (8, 16) and from_files.dtype == torch.float32
    reference = recognizer.model(data.x[:8])  # the training pixels, straight into the model
    assert torch.allclose(from_files, reference.detach(), atol=1e-6)
    pil = [Image.open(p) for p in digit_files]
    hwc = [data.x[k, 0].numpy()[:, :, None] for k in range(8)]
    floats = [data.x[k, 0].numpy().astype(np.float32) / 255 for k in range(8)]
    for inputs in (pil, hwc, floats, data.x[:8], [str(p) for p in digit_files]):
        assert torch.allclose(recognizer.embed(inputs), from_files, atol=1e-6)
    assert torch.allclose(recognizer.embed(digit_files[3]), from_files[3:4], atol=1e-6)


def test_a_colour_photo_of_another_size_is_converted_as_the_model_declares(
    run: Path, tmp_path: Path
) -> None:
    recognizer = Recognizer.load(run)
    rgb = np.zeros((40, 32, 3), dtype=np.uint8)
    rgb[10:30, 8:24] = (200, 120, 40)
    png, jpeg = tmp_path / "photo.png", tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(png)
    Image.fromarray(rgb).save(jpeg, quality=95)
    x = recognizer.prepare([png, jpeg])
    assert x.shape == (2, 1, 8, 8) and x.dtype == torch.uint8
    # grey by ITU-R 601 luma (Pillow's "L"), then resized with the decoder's filter
    grey = Image.open(png).convert("L").resize((8, 8), Image.Resampling.LANCZOS, reducing_gap=3)
    assert np.array_equal(x[0, 0].numpy(), np.asarray(grey))
    luma = round(0.299 * 200 + 0.587 * 120 + 0.114 * 40)
    assert abs(int(x[1, 0, 4, 4]) - luma) <= 3  # the JPEG's centre: the same colour, lossy


def test_bad_inputs_are_named_and_explained(run: Path, tmp_path: Path) -> None:
    recognizer = Recognizer.load(run)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match=r"broken\.png"):
        recognizer.embed([torch.zeros(1, 8, 8, dtype=torch.uint8), broken])
    with pytest.raises(DataError, match=r"missing\.png: no such file"):
        recognizer.embed(tmp_path / "missing.png")
    with pytest.raises(DataError, match=r"image 2: float pixels must lie in \[0, 1\]"):
        recognizer.embed([np.zeros((8, 8)), np.full((8, 8), 3.0)])
    with pytest.raises(DataError, match="not an image"):
        recognizer.embed([np.zeros((8, 8, 7), dtype=np.uint8)])
    with pytest.raises(DataError, match="no images given"):
        recognizer.embed([])
    with pytest.raises(CheckpointError, match="no such run or model folder"):
        Recognizer.load(tmp_path / "nowhere")


def test_compare_reports_distance_threshold_rate_and_decision(
    run: Path, digit_files: list[Path]
) -> None:
    recognizer = Recognizer.load(run / "model.json")
    z = recognizer.embed(digit_files[:2])
    result = recognizer.compare(digit_files[0], digit_files[1], far=1e-2)
    expected = float(paired_distances(z[:1], z[1:])[0])
    assert result.distance == pytest.approx(expected, abs=1e-6)
    assert result.far == 1e-2
    assert result.threshold == recognizer.thresholds.at_far[1e-2]
    assert result.same == (result.distance <= result.threshold)
    assert "validation classes" in result.calibrated_on
    same_image = recognizer.compare(digit_files[0], digit_files[0])
    assert same_image.distance == pytest.approx(0.0, abs=1e-5) and same_image.same
    assert same_image.far == min(recognizer.thresholds.at_far)
    given = recognizer.compare(digit_files[0], digit_files[1], threshold=1e9)
    assert given.same and given.far is None
    with pytest.raises(ConfigError, match="not both"):
        recognizer.compare(digit_files[0], digit_files[1], far=1e-2, threshold=0.5)


def test_write_thresholds_replaces_them_and_keeps_the_weights(run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(run, copy)
    weights = (copy / "model.safetensors").read_bytes()
    recognizer = Recognizer.load(copy)
    data = load_dataset("digits")
    z = recognizer.embed(data.x[:200])
    write_thresholds(copy, calibrate(z, data.y[:200], "euclidean", "200 digits"))
    again = Recognizer.load(copy)
    assert again.thresholds.calibrated_on == "200 digits"
    assert (copy / "model.safetensors").read_bytes() == weights
    assert again.fingerprint == recognizer.fingerprint


def test_a_pair_classifier_decides_with_its_head(tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    train_run(small_digits_config("loss.name=pair_classifier", "train.epochs=1"), out, quiet=True)
    recognizer = Recognizer.load(out)
    assert recognizer.head is not None and recognizer.scale == "pair_head"
    assert recognizer.thresholds.metric == "pair_head"
    data = load_dataset("digits")
    result = recognizer.compare(data.x[0], data.x[1])
    assert 0.0 < result.distance < 1.0 and result.metric == "pair_head"
