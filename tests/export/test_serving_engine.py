"""The runtime that serves a model: onnxruntime through an export made on first use, verified,
cached by the weights' SHA-256 beside the run, else PyTorch with the reason stated."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from siamese.errors import ConfigError
from siamese.export import serving_engine
from siamese.export.serving_engine import load_serving_recognizer
from siamese.recognition import Recognizer
from siamese.recognition.onnx_recognizer import OnnxRecognizer
from tests.conftest import small_digits_config


@pytest.fixture
def run(digits_model: Path, tmp_path: Path) -> Path:
    """A copy of the trained digits run, without any export made beside it."""
    copy = tmp_path / "run"
    shutil.copytree(digits_model, copy, ignore=shutil.ignore_patterns("exports"))
    return copy


def _digit_images() -> torch.Tensor:
    from sklearn.datasets import load_digits

    images = load_digits().images[:40]
    return torch.from_numpy((images * 255 / 16).astype(np.uint8))[:, None]


def test_auto_exports_once_verifies_and_embeds_as_pytorch_does(run: Path) -> None:
    onnx, choice = load_serving_recognizer(run, "cpu")
    assert isinstance(onnx, OnnxRecognizer) and choice.engine == "onnxruntime"
    assert "first use" in choice.reason and choice.max_abs_difference <= 1e-4
    fingerprint = Recognizer.load(run, device="cpu").fingerprint
    folder = run / "exports" / f"onnx-{fingerprint[:16]}"
    assert Path(choice.export_dir) == folder and (folder / "model.onnx").is_file()
    made = (folder / "model.onnx").stat().st_mtime_ns
    # the same embeddings and decisions as the PyTorch model, on real images
    pytorch = Recognizer.load(run, device="cpu")
    x = _digit_images()
    np.testing.assert_allclose(
        np.asarray(onnx.embed(list(x))), pytorch.embed(list(x)).numpy(), atol=1e-4, rtol=0
    )
    assert onnx.fingerprint == pytorch.fingerprint and onnx.model_dir == run
    assert onnx.thresholds == pytorch.thresholds
    # the second start loads the cached export: not exported again
    again, second = load_serving_recognizer(run, "cpu")
    assert isinstance(again, OnnxRecognizer)
    assert second.engine == "onnxruntime" and "cached" in second.reason
    assert (folder / "model.onnx").stat().st_mtime_ns == made


def test_the_runs_current_thresholds_win_over_the_exports(run: Path) -> None:
    load_serving_recognizer(run, "cpu")  # the export carries the thresholds of its time
    description = json.loads((run / "model.json").read_text())
    description["thresholds"]["at_far"] = {"0.01": 0.123}
    (run / "model.json").write_text(json.dumps(description))  # as `siamese calibrate` does
    onnx, choice = load_serving_recognizer(run, "cpu")
    assert choice.engine == "onnxruntime" and "cached" in choice.reason
    assert onnx.thresholds.at_far == {0.01: 0.123}


def test_a_damaged_cached_export_is_made_again(run: Path) -> None:
    _, first = load_serving_recognizer(run, "cpu")
    model_file = Path(first.export_dir) / "model.onnx"
    model_file.write_bytes(model_file.read_bytes()[:-100])
    onnx, choice = load_serving_recognizer(run, "cpu")
    assert choice.engine == "onnxruntime" and "first use" in choice.reason
    assert onnx.embed(list(_digit_images()[:2])).shape == (2, 16)


def test_an_export_of_other_weights_is_never_used(run: Path) -> None:
    _, first = load_serving_recognizer(run, "cpu")
    record_file = Path(first.export_dir) / "export.json"
    record = json.loads(record_file.read_text())
    fingerprint = record["source_sha256"]
    record["source_sha256"] = "f" * 64  # an export of other weights in the cache's place
    record_file.write_text(json.dumps(record))
    _, choice = load_serving_recognizer(run, "cpu")
    assert choice.engine == "onnxruntime" and "first use" in choice.reason
    assert json.loads(record_file.read_text())["source_sha256"] == fingerprint


def test_a_read_only_run_caches_its_export_in_the_users_cache(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_access = os.access
    monkeypatch.setattr(
        serving_engine.os,
        "access",
        lambda path, mode: False if Path(path).parent == run else real_access(path, mode),
    )
    _, choice = load_serving_recognizer(run, "cpu")
    from siamese.cache import cache_dir

    assert choice.engine == "onnxruntime"
    assert Path(choice.export_dir).parent == cache_dir() / "exports"


def test_pytorch_is_used_with_the_reason_where_onnxruntime_cannot(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytorch, choice = load_serving_recognizer(run, "cpu", "pytorch")
    assert isinstance(pytorch, Recognizer) and choice.reason == "--engine pytorch"
    assert not (run / "exports").exists() or not any((run / "exports").iterdir())

    from siamese.training.training_run import train_run

    pair_run = tmp_path / "pair"
    train_run(small_digits_config("loss.name=pair_classifier", "train.epochs=1"), pair_run)
    recognizer, choice = load_serving_recognizer(pair_run, "cpu")
    assert isinstance(recognizer, Recognizer) and "pair classifier" in choice.reason
    with pytest.raises(ConfigError, match=r"--engine onnxruntime: cannot run .*pair classifier"):
        load_serving_recognizer(pair_run, "cpu", "onnxruntime")

    monkeypatch.setattr(serving_engine, "missing_export_modules", lambda: ["onnxscript"])
    recognizer, choice = load_serving_recognizer(run, "cpu")
    assert isinstance(recognizer, Recognizer)
    assert "onnxscript missing" in choice.reason and "siamese[export]" in choice.reason
    with pytest.raises(ConfigError, match=r"must be one of auto, onnxruntime, pytorch"):
        load_serving_recognizer(run, "cpu", "tensorrt")


def test_an_export_that_fails_leaves_the_service_on_pytorch(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siamese.export import model_export

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the exporter met an operator it cannot convert")

    monkeypatch.setattr(model_export, "_to_onnx", broken)
    recognizer, choice = load_serving_recognizer(run, "cpu")
    assert isinstance(recognizer, Recognizer)
    assert choice.engine == "pytorch" and "cannot convert" in choice.reason
