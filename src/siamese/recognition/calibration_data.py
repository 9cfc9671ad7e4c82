"""The labelled data `siamese calibrate` measures thresholds on, read as the model reads its
inputs, with how many of its classes the model trained on."""

from __future__ import annotations

import json
from typing import Any

from siamese.data.derived.resized import fitted_to
from siamese.data.labeled import LabeledData
from siamese.data.sources import load_dataset
from siamese.recognition.recognizer import Recognizer

# Sources decoded from image files: given the model's size, channels and resize mode, they
# decode exactly as `Recognizer.embed` decodes a file.
_FILE_SOURCES = ("folder:", "5-celebrity-faces")


def calibration_data(
    recognizer: Recognizer, name: str, split: str | None, options: dict[str, Any]
) -> tuple[LabeledData, str, int]:
    """Load `name` (a dataset name or folder:PATH) fitted to the model's input.

    Returns:
        (the data, a description for the thresholds ("folder:staff: 12 classes, 60
        examples"), how many of its classes the model's run trained on (0 when unknown)).
    Raises:
        ConfigError, DataError: as `load_dataset`.
    """
    pre = recognizer.preprocessing
    defaults: dict[str, Any] = {}
    if pre.face is not None:
        # the photos' faces, found and aligned as in training; thresholds are measured on
        # the faces found (a photo without one is left out, with a warning listing it)
        defaults["face"] = {**pre.face.as_dict(), "on_no_face": "skip"}
    if name.startswith(_FILE_SOURCES) and pre.is_image:
        channels, height, width = pre.input_shape
        defaults.update(image_size=(height, width), channels=channels, resize=pre.resize)
    options = {**defaults, **options}
    data = load_dataset(name, split, None, **options)
    data, _ = fitted_to(data, pre.input_shape, f"--data {name}")
    classes = int(data.y.unique().numel())
    where = f"{name} ({split})" if split else name
    description = f"{where}: {classes} classes, {len(data):,} examples"
    return data, description, _classes_trained_on(recognizer, name, data)


def _classes_trained_on(recognizer: Recognizer, name: str, data: LabeledData) -> int:
    """Classes of `data` named among the training classes of the model's run (split.json),
    when the run trained on the same dataset; 0 when that cannot be told."""
    split_file = recognizer.model_dir / "split.json"
    if not split_file.is_file() or not data.classes:
        return 0
    record = json.loads(split_file.read_text(encoding="utf-8"))
    if record.get("dataset") != name:
        return 0
    trained = set(record.get("parts", {}).get("train", {}).get("class_names", []))
    present = [data.classes[i] for i in data.y.unique().tolist()]
    return sum(1 for c in present if c in trained)
