"""The face pipeline: dlib's file format, the PyTorch port of dlib's face ResNet against dlib's
own descriptors, detection, alignment, the face step in folder sources, models and the
gallery. Needs the `faces` extra (`.ci/run` installs it) and the shared datasets."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from siamese.errors import ConfigError, DataError
from tests.cli_runner import run_cli
from tests.conftest import celebrity_photos, data_dir

_EXTRA = all(importlib.util.find_spec(m) for m in ("cv2", "dlib", "face_recognition_models"))
if not _EXTRA and os.environ.get("CI"):
    raise RuntimeError("CI must install the faces extra (.ci/run does): the face tests need it")
needs_faces = pytest.mark.skipif(not _EXTRA, reason="the faces extra is not installed")
needs_data = pytest.mark.skipif(data_dir() is None, reason="SIAMESE_DATA_DIR is not set")


# ------------------------------------------------------------------------------------------
# dlib's serialisation


def _int(value: int) -> bytes:
    """dlib's integer encoding: a control byte (size, sign bit 0x80), little-endian bytes."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def test_dlib_primitives_decode_as_dlib_writes_them() -> None:
    from siamese.faces.dlib_format import _Reader

    raw = (
        _int(0) + _int(1) + _int(150) + _int(4736) + _int(-28) + _int(2**40 + 3)
        + _int(10737418) + _int(-28)  # 0.04 as dlib writes it: mantissa, exponent
        + _int(5) + b"con_4" + b"10"
        + _int(2) + _int(1) + _int(2) + _int(1) + _int(1) + struct.pack("<2f", 1.5, -2.25)
    )  # fmt: skip
    reader = _Reader(raw, "x.dat")
    assert [reader.integer() for _ in range(6)] == [0, 1, 150, 4736, -28, 2**40 + 3]
    assert reader.real() == pytest.approx(0.04, abs=1e-9)
    assert reader.string() == "con_4"
    assert reader.flag() is True and reader.flag() is False
    tensor = reader.tensor()
    assert tensor.shape == (1, 2, 1, 1) and tensor.ravel().tolist() == [1.5, -2.25]
    with pytest.raises(DataError, match=r"x\.dat: .*the file ends early at byte"):
        reader.integer()


@needs_faces
def test_a_truncated_or_foreign_network_file_is_a_clear_error(tmp_path: Path) -> None:
    from siamese.faces.dlib_format import read_dlib_network
    from siamese.faces.face_resnet import weights_file

    cut = tmp_path / "cut.dat"
    cut.write_bytes(weights_file().read_bytes()[:5000])
    with pytest.raises(DataError, match=r"cut\.dat: not a dlib network file .*ends early"):
        read_dlib_network(cut)
    other = tmp_path / "other.dat"
    other.write_bytes(_int(1) + _int(12) + b"loss_mmod_2_")
    with pytest.raises(DataError, match=r"the loss layer 'loss_mmod_2_'"):
        read_dlib_network(other)
    with pytest.raises(DataError, match=r"cannot read the dlib network file"):
        read_dlib_network(tmp_path / "missing.dat")


@needs_faces
def test_the_file_holds_exactly_the_restated_architecture() -> None:
    from siamese.faces.dlib_format import read_dlib_network
    from siamese.faces.face_resnet import _state_from_layers, weights_file

    network = read_dlib_network(weights_file())
    assert network.loss_settings["distance_threshold"] == pytest.approx(0.6)
    assert len(network.layers) == 109
    state = _state_from_layers(network.layers, "x.dat")
    assert sum(v.numel() for k, v in state.items() if k != "pixel_mean") == 5_614_592
    broken = [layer for layer in network.layers if layer.kind != "max_pool"]
    with pytest.raises(DataError, match=r"not dlib's face recognition ResNet \(layer 4 is"):
        _state_from_layers(broken, "x.dat")


def test_zero_padded_sum_matches_a_float64_reference() -> None:
    from siamese.faces.face_resnet import _zero_padded_sum

    generator = torch.Generator().manual_seed(0)
    for a_shape, b_shape in [
        ((2, 64, 3, 3), (2, 32, 4, 4)),
        ((1, 8, 5, 5), (1, 8, 5, 5)),
        ((2, 4, 2, 3), (2, 6, 3, 2)),
    ]:
        a, b = torch.randn(a_shape, generator=generator), torch.randn(b_shape, generator=generator)
        shape = [max(x, y) for x, y in zip(a_shape, b_shape, strict=True)]
        expected = torch.zeros(shape, dtype=torch.float64)
        expected[:, : a.shape[1], : a.shape[2], : a.shape[3]] += a.double()
        expected[:, : b.shape[1], : b.shape[2], : b.shape[3]] += b.double()
        torch.testing.assert_close(_zero_padded_sum(a, b).double(), expected)


# ------------------------------------------------------------------------------------------
# The port against dlib


def _aligned(split: str | None, dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    from siamese.data.sources import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the photos without a face, listed
        data = load_dataset(dataset, split, face={"detector": "hog", "on_no_face": "skip"})
    return data.x, data.y


@pytest.mark.slow
@needs_faces
@needs_data
def test_the_port_equals_dlibs_descriptors_on_orl_and_celebrity_chips() -> None:
    import dlib

    from siamese.faces.face_resnet import DlibFaceResNet, weights_file

    chips = torch.cat(
        [
            _aligned("all", "orl")[0],
            _aligned("train", "5-celebrity-faces")[0],
            _aligned("val", "5-celebrity-faces")[0],
        ]
    )
    assert len(chips) >= 510  # 400 + 118 photos, a few without a face found
    reference = dlib.face_recognition_model_v1(str(weights_file()))
    arrays = [np.ascontiguousarray(c.permute(1, 2, 0).numpy()) for c in chips]
    expected = np.array([np.array(d) for d in reference.compute_face_descriptor(arrays)])
    model = DlibFaceResNet().eval()
    with torch.no_grad():
        ours = torch.cat([model(chips[i : i + 64].float() / 255) for i in range(0, len(chips), 64)])
    difference = np.abs(ours.numpy().astype(np.float64) - expected).max()
    assert difference <= 1e-4, difference
    with torch.no_grad():  # uint8 chips are read as 0 … 255
        torch.testing.assert_close(model(chips[:8]), ours[:8])


@needs_faces
def test_converted_weights_are_cached_and_a_damaged_cache_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siamese.faces import face_resnet

    monkeypatch.setenv("SIAMESE_CACHE_DIR", str(tmp_path))
    first = face_resnet.dlib_weights()
    (cached,) = (tmp_path / "faces").glob("dlib_face_resnet-*.safetensors")
    calls = []
    real = face_resnet.read_dlib_network
    monkeypatch.setattr(face_resnet, "read_dlib_network", lambda p: calls.append(p) or real(p))
    second = face_resnet.dlib_weights()
    assert calls == [] and all(torch.equal(first[k], second[k]) for k in first)
    cached.write_bytes(b"damaged")
    third = face_resnet.dlib_weights()
    assert len(calls) == 1 and all(torch.equal(first[k], third[k]) for k in first)


# ------------------------------------------------------------------------------------------
# Detection and alignment


def _celebrity_photo(split: str, person: str, index: int = 0) -> Path:
    return celebrity_photos(split, person)[index]


@needs_faces
@needs_data
@pytest.mark.parametrize("detector", ["hog", "haar"])
def test_detectors_find_the_face_of_a_photo_and_none_in_a_blank(detector: str) -> None:
    from siamese.faces.detection import detect_faces
    from siamese.faces.preprocessing import FaceStep, face_crops

    photo = np.asarray(Image.open(_celebrity_photo("val", "ben_afflek")).convert("RGB"))
    boxes = detect_faces(photo, detector)
    assert boxes, "a face should be found"
    box = boxes[0]
    height, width = photo.shape[:2]
    assert 0 <= box.left < box.right <= width and 0 <= box.top < box.bottom <= height
    assert box.area > 0.05 * width * height  # a portrait: the face is large
    crops = face_crops(photo, FaceStep(detector=detector))
    assert len(crops) == 1 and crops[0].pixels.shape == (150, 150, 3)
    assert crops[0].landmarks is not None and crops[0].landmarks.shape == (5, 2)
    assert face_crops(np.full((240, 320, 3), 128, np.uint8), FaceStep(detector=detector)) == []


def test_the_main_face_is_the_largest_confident_box() -> None:
    from siamese.faces.detection import FaceBox, main_face

    faint_large = FaceBox(0, 0, 90, 90, 0.06)
    face = FaceBox(40, 70, 128, 158, 1.5)
    small_sure = FaceBox(0, 0, 20, 20, 2.0)
    assert main_face([faint_large, face]) == face
    assert main_face([face, small_sure]) == face
    assert main_face([]) is None


@needs_faces
def test_a_margin_crop_is_centred_on_the_box_and_black_outside_the_photo() -> None:
    from siamese.faces.alignment import margin_crop
    from siamese.faces.detection import FaceBox

    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 40:60] = 255
    crop = margin_crop(image, FaceBox(40, 40, 60, 60, 1.0), size=40, margin=0.5)
    # the box fills the middle half of the crop
    assert crop[12:28, 12:28].min() == 255 and crop[:8].max() == 0
    edge = margin_crop(image, FaceBox(0, 0, 20, 20, 1.0), size=40, margin=0.5)
    assert edge[:8, :8].max() == 0  # outside the photo: black


def test_face_step_options_are_checked() -> None:
    from siamese.faces.preprocessing import FaceStep, face_step

    assert face_step("haar") == FaceStep(detector="haar")
    assert face_step(None) is None and face_step(False) is None
    assert face_step({"detector": "hog", "retry_sides": [300]}).retry_sides == (300,)
    with pytest.raises(ConfigError, match=r"'cnn' is not a detector: give 'hog' or 'haar'"):
        face_step("cnn")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['aligned'\]"):
        face_step({"aligned": True})
    with pytest.raises(ConfigError, match=r"face\.size must be an integer ≥ 16"):
        face_step({"size": 8})
    with pytest.raises(ConfigError, match=r"face\.on_no_face must be 'error' or 'skip'"):
        face_step({"on_no_face": "ignore"})
    assert FaceStep(**json.loads(json.dumps(FaceStep().as_dict()))) == FaceStep()


def test_face_resnet_reads_every_size_from_its_smallest_and_refuses_smaller() -> None:
    """The smallest side is computed from the layers: one pixel less fails in the network."""
    from siamese.faces.face_resnet import SMALLEST_SIDE, DlibFaceResNet

    assert SMALLEST_SIDE == 103
    net = DlibFaceResNet((3, 150, 150), pretrained=False)
    with torch.no_grad():
        assert net(torch.rand(1, 3, SMALLEST_SIDE, SMALLEST_SIDE + 40)).shape == (1, 128)
        with pytest.raises(RuntimeError):
            net(torch.rand(1, 3, SMALLEST_SIDE - 1, SMALLEST_SIDE))
    with pytest.raises(ConfigError, match=r"at least 103×103 .* not 102×150"):
        DlibFaceResNet((3, 102, 150), pretrained=False)


def test_a_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from siamese.faces import dependencies

    real = importlib.import_module

    def refuse(name: str, *args: object) -> object:
        if name in ("cv2", "dlib"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(dependencies.importlib, "import_module", refuse)
    with pytest.raises(
        ConfigError, match=r"opencv-python-headless.*pip install 'siamese\[faces\]'"
    ):
        dependencies.require_cv2()
    with pytest.raises(ConfigError, match=r"dlib-bin.*pip install 'siamese\[faces\]'"):
        dependencies.require_dlib()
    dependencies.face_models_dir.cache_clear()
    monkeypatch.setattr(dependencies.importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(ConfigError, match=r"face_recognition_models.*siamese\[faces\]"):
            dependencies.face_models_dir()
    finally:
        dependencies.face_models_dir.cache_clear()


# ------------------------------------------------------------------------------------------
# The face step in data sources


def _people_folder(root: Path, blank: bool, photos: int = 3) -> Path:
    for person in ("ben_afflek", "madonna"):
        for index in range(photos):
            target = root / person / f"{index}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(_celebrity_photo("train", person, index), target)
    if blank:
        Image.new("RGB", (200, 200), (90, 90, 90)).save(root / "madonna" / "blank.png")
    return root


@needs_faces
@needs_data
def test_a_folder_with_a_face_step_reports_every_photo_without_a_face(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siamese.data.folders import face_crops
    from siamese.data.folders.loading import load_folder

    root = _people_folder(tmp_path / "people", blank=True)
    with pytest.raises(
        DataError, match=r"found no face in 1 of the 7 images.*\n  madonna/blank\.png"
    ):
        load_folder(root, face="hog")
    with pytest.warns(UserWarning, match=r"left out 1 .*madonna/blank\.png: no face found"):
        data = load_folder(root, face={"detector": "hog", "on_no_face": "skip"})
    assert data.x.shape == (6, 3, 150, 150) and data.x.dtype == torch.uint8
    assert [s.path for s in data.skipped] == ["madonna/blank.png"]
    gray = load_folder(
        root, face={"detector": "hog", "on_no_face": "skip"}, image_size=64, channels=1
    )
    assert gray.x.shape == (6, 1, 64, 64)
    # decoded once: a second load reads the cache
    monkeypatch.setattr(face_crops, "crop_face_files", lambda *a: pytest.fail("not cached"))
    with pytest.warns(UserWarning):
        again = load_folder(root, face={"detector": "hog", "on_no_face": "skip"})
    assert torch.equal(again.x, data.x)
    with pytest.raises(ConfigError, match=r"face\.faces must be 'largest' for a dataset"):
        load_folder(root, face={"faces": "all"})


@needs_faces
@needs_data
def test_a_named_dataset_takes_a_face_step() -> None:
    from siamese.data.sources import load_dataset

    with pytest.raises(DataError, match=r"orl: the hog detector found no face in 1 of 400 "):
        load_dataset("orl", "all", face="hog")
    data = load_dataset("orl", "all", face={"detector": "hog", "on_no_face": "skip"})
    assert data.x.shape == (399, 3, 150, 150) and len(data.skipped) == 1
    assert torch.equal(data.x[:, 0], data.x[:, 1])  # gray photos give gray chips
    assert data.paths is not None and data.paths[0] == "s1/1.pgm"


# ------------------------------------------------------------------------------------------
# The pretrained encoder as a run, a Recognizer and a gallery


@pytest.fixture(scope="module")
def face_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pretrained face ResNet saved as a run (train.steps 0) on a small people folder,
    with thresholds calibrated on ORL."""
    from siamese.config import load_config
    from siamese.training.training_run import train_run

    if not _EXTRA or data_dir() is None:
        pytest.skip("needs the faces extra and the shared datasets")
    root = _people_folder(tmp_path_factory.mktemp("people"), blank=False)
    config = load_config(
        None,
        [
            f"data.name=folder:{root}",
            "data.options={face: {detector: hog, on_no_face: skip}}",
            "data.validation=none",
            "model.encoder=dlib_face_resnet",
            "model.options={pretrained: true}",
            "model.embedding_dim=128",
            "model.projection=false",
            "model.normalize=false",
            "batches.p=2",
            "batches.k=3",
            "train.steps=0",
            "train.validate_every=0",
        ],
    )
    out = tmp_path_factory.mktemp("face_run") / "run"
    train_run(config, out, quiet=True)
    return out


@needs_faces
@needs_data
def test_a_pretrained_run_declares_its_face_step_and_recognizer_applies_it(
    face_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siamese.faces import face_resnet
    from siamese.faces.preprocessing import FaceStep, face_crops
    from siamese.recognition import Recognizer

    description = json.loads((face_model / "model.json").read_text())
    assert description["preprocessing"]["face"]["detector"] == "hog"
    assert description["architecture"]["projection"] is False
    assert description["steps"] == 0
    # loading a saved model never reads dlib's file again: its weights are the model's own
    monkeypatch.setattr(face_resnet, "dlib_weights", lambda *a, **k: pytest.fail("re-read"))
    recognizer = Recognizer.load(face_model)
    photo_path = _celebrity_photo("val", "madonna")
    chip = face_crops(np.asarray(Image.open(photo_path).convert("RGB")), FaceStep())[0].pixels
    expected = recognizer.model(torch.from_numpy(chip).permute(2, 0, 1)[None])
    torch.testing.assert_close(recognizer.embed(photo_path), expected.detach())
    blank = tmp_path / "wall.png"
    Image.new("RGB", (300, 300), (200, 200, 200)).save(blank)
    with pytest.raises(DataError, match=r"wall\.png: no face found by the hog detector"):
        recognizer.embed([photo_path, blank])


@pytest.mark.slow
@needs_faces
@needs_data
def test_the_gallery_enrols_and_identifies_face_photos_end_to_end(
    face_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    shutil.copytree(face_model, model)
    code, out = run_cli(["calibrate", str(model), "--data", "orl", "--split", "all"], capsys)
    assert code == 0, out
    assert "faces" not in out.lower() or "EER" in out
    db = tmp_path / "people.db"
    code, out = run_cli(["gallery", "create", str(db), "--model", str(model)], capsys)
    assert code == 0, out
    people = _people_folder(tmp_path / "known", blank=True, photos=12)
    code, out = run_cli(["gallery", "enroll", str(db), "--folder", str(people), "--quiet"], capsys)
    assert code == 0, out
    assert "ben_afflek: new, 12 image(s) enrolled" in out
    # one of her 12 photos shows no face the detector finds, and the blank none at all
    assert "madonna: new, 11 image(s) enrolled; no face found in 2, left out:" in out
    assert "madonna/blank.png" in out
    wall = tmp_path / "wall.png"
    Image.new("RGB", (300, 300), (200, 200, 200)).save(wall)
    probes = [_celebrity_photo("val", "madonna", 2), _celebrity_photo("val", "ben_afflek", 2)]
    probes.append(_celebrity_photo("val", "jerry_seinfeld", 0))
    code, out = run_cli(
        ["gallery", "identify", str(db), *map(str, probes), str(wall), "--json"], capsys
    )
    assert code == 0, out
    answers = json.loads(out.strip().splitlines()[-1])
    assert [a["decision"] for a in answers] == ["madonna", "ben_afflek", "unknown", "no face"]
    # created with no threshold option: FPIR 1 % for its size (2 people, 23 photos)
    assert all(a["rule"] == "fpir" and a["target"] == 0.01 for a in answers)
    assert answers[0]["estimated_fpir"] is not None and answers[0]["estimated_fpir"] <= 0.0101
    assert answers[3]["no_face"] is True and answers[3]["distance"] is None
    # a group photo: every face, each with its box, left to right as composed
    left, right = (Image.open(p).convert("RGB").resize((240, 300)) for p in probes[:2])
    group = Image.new("RGB", (480, 300))
    group.paste(left, (0, 0))
    group.paste(right, (240, 0))
    group.save(tmp_path / "group.png")
    code, out = run_cli(
        ["gallery", "identify", str(db), str(tmp_path / "group.png"), str(wall), "--every-face",
         "--json"],
        capsys,
    )  # fmt: skip
    assert code == 0, out
    faces = json.loads(out.strip().splitlines()[-1])
    assert len(faces) == 3 and faces[2]["no_face"] is True and faces[2]["box"] is None
    by_position = sorted(faces[:2], key=lambda a: a["box"][0])
    assert [a["decision"] for a in by_position] == ["madonna", "ben_afflek"]
    assert by_position[0]["box"][2] <= 250 and by_position[1]["box"][0] >= 230
    # verifying a photo without a face: one clear line naming it
    code, out = run_cli(["gallery", "verify", str(db), "madonna", str(wall)], capsys)
    assert code == 1 and "wall.png: no face found by the hog detector" in out, out
    assert "Traceback" not in out


def test_train_steps_zero_needs_a_pretrained_encoder() -> None:
    from siamese.config import load_config

    with pytest.raises(ConfigError, match=r"train\.steps = 0 saves the starting weights"):
        load_config(None, ["data.name=digits", "train.steps=0"])


def test_an_embedding_without_projection_is_the_encoders_output() -> None:
    from siamese.models import build_embedding_net

    spec = {
        "encoder": "mlp",
        "encoder_options": {"hidden": [16]},
        "embedding_dim": 16,
        "projection": False,
    }
    net = build_embedding_net(spec, (1, 8, 8))
    assert net.spec["projection"] is False and "projection.weight" not in net.state_dict()
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(net(x), torch.nn.functional.normalize(net.encoder(x), dim=1))
    with pytest.raises(ConfigError, match=r"set model\.embedding_dim to 16"):
        build_embedding_net({**spec, "embedding_dim": 8}, (1, 8, 8))


@pytest.mark.slow
@needs_faces
@needs_data
def test_evaluating_a_face_model_on_other_photos_finds_their_faces_first(
    face_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ORL's whole photos (92×112 gray) reach the model as aligned 150×150 face chips, as
    the model declares, never resized whole."""
    out = tmp_path / "evaluation"
    code, text = run_cli(
        ["evaluate", str(face_model), "--data", "orl", "--split", "all", "--protocol",
         "verification", "--out", str(out), "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0, text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metrics"]["verification"]["eer"] < 0.02  # dlib's network on faces: ~0.3 %


def test_boxes_found_at_several_scales_merge_into_one_per_face() -> None:
    from siamese.faces.detection import FaceBox, _merged

    big = FaceBox(70, 70, 160, 160, 1.5)
    big_again = FaceBox(67, 67, 157, 157, 1.2)  # the same face at another scale
    small = FaceBox(350, 40, 406, 94, 2.0)
    assert _merged([big, big_again, small]) == [big, small]
    assert _merged([]) == []
