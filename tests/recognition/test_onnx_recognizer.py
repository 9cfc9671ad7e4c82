"""`OnnxRecognizer`: an ONNX export of a real trained run, run by onnxruntime in a process where
torch cannot be imported, embeds and decides as the run's PyTorch `Recognizer` does; a gallery
enrolled with one opens with the other; damaged or wrong folders are refused clearly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from siamese.data.sources import load_dataset
from siamese.distances import paired_distances as torch_paired_distances
from siamese.errors import CheckpointError, ConfigError, DataError
from siamese.recognition import Gallery, OnnxRecognizer, Recognizer, load_recognizer
from siamese.recognition.onnx_recognizer import paired_distances
from tests.cli_runner import run_cli
from tests.conftest import data_dir

pytest.importorskip("onnxruntime", reason="the export extra is not installed")
pytest.importorskip("onnxscript", reason="the export extra is not installed")

TOLERANCE = 1e-4


def _export(run: Path, out: Path) -> Path:
    from siamese.export.model_export import export_model

    export_model(run, out, "onnx")
    return out


@pytest.fixture(scope="module")
def digits_export(digits_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(digits_model, tmp_path_factory.mktemp("digits_export") / "export")


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """24 of scikit-learn's real 8×8 digits written as PNG files, read back by the decoder."""
    folder = tmp_path_factory.mktemp("digit_files")
    data = load_dataset("digits")
    paths = []
    for k in range(24):
        path = folder / f"digit{k}_{int(data.y[k])}.png"
        Image.fromarray(data.x[k, 0].numpy(), "L").save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def orl_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ORL faces as files (orl_faces/s1 … s40, 10 .pgm each), from the shared archive."""
    root = data_dir()
    if root is None:
        pytest.skip("SIAMESE_DATA_DIR is not set")
    folder = tmp_path_factory.mktemp("orl")
    with tarfile.open(root / "orl_faces" / "orl_faces.tar.gz") as archive:
        archive.extractall(folder, filter="data")
    return folder / "orl_faces"


@pytest.fixture(scope="module")
def orl_run(orl_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seconds-long run of the ORL recipe (a small ConvNet, 30 steps) with thresholds
    calibrated on its 6 validation people."""
    from siamese.config import load_config
    from siamese.training.training_run import train_run

    config = load_config(
        Path(__file__).resolve().parents[2] / "configs" / "orl_verification.yaml",
        [
            "train.steps=30",
            "model.options.widths=[8, 16]",
            "model.embedding_dim=16",
            "batches.p=6",
            "batches.k=5",
        ],
    )
    out = tmp_path_factory.mktemp("orl_run") / "run"
    train_run(config, out, quiet=True)
    return out


@pytest.fixture(scope="module")
def orl_export(orl_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(orl_run, tmp_path_factory.mktemp("orl_export") / "export")


def _person(orl_faces: Path, person: int) -> list[Path]:
    return sorted((orl_faces / f"s{person}").glob("*.pgm"), key=lambda p: int(p.stem))


# ------------------------------------------------------------------------------------------
# Without torch


NO_TORCH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np

    sys.modules["torch"] = None  # `import torch` anywhere now raises ImportError
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the import hook did not stop torch")

    from siamese.recognition import OnnxRecognizer

    export, files, pairs, out = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
    recognizer = OnnxRecognizer.load(export, threads=1)
    z = recognizer.embed(files, batch_size=5)
    verdicts = [recognizer.compare(files[i], files[j]).as_dict() for i, j in pairs]
    loaded = sorted({m.split(".")[0] for m in sys.modules if sys.modules[m] is not None})
    np.save(out + ".npy", z)
    with open(out + ".json", "w") as f:
        json.dump({"verdicts": verdicts, "fingerprint": recognizer.fingerprint, "modules": loaded}, f)
    """
)


def _embed_without_torch(
    export: Path, files: list[Path], pairs: list[tuple[int, int]], out: Path
) -> tuple[np.ndarray, dict]:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_TORCH_SCRIPT,
            str(export),
            json.dumps([str(f) for f in files]),
            json.dumps(pairs),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return np.load(f"{out}.npy"), json.loads(Path(f"{out}.json").read_text())


@pytest.mark.parametrize("which", ["digits", "orl"])
def test_without_torch_an_export_embeds_and_decides_as_the_run_does(
    which: str, request: pytest.FixtureRequest, digit_files: list[Path], tmp_path: Path
) -> None:
    if which == "digits":
        run, export = (
            request.getfixturevalue("digits_model"),
            request.getfixturevalue("digits_export"),
        )
        files = digit_files
    else:
        run, export = request.getfixturevalue("orl_run"), request.getfixturevalue("orl_export")
        faces = request.getfixturevalue("orl_faces")
        files = [p for person in (1, 2, 3, 38, 39, 40) for p in _person(faces, person)[:4]]
    pairs = [(0, k) for k in range(1, len(files))] + [(4, 5), (8, 9), (6, 20)]
    z, record = _embed_without_torch(export, files, pairs, tmp_path / "out")
    assert "torch" not in record["modules"] and "sqlalchemy" not in record["modules"]
    assert "onnxruntime" in record["modules"]

    recognizer = Recognizer.load(run, device="cpu")
    expected = recognizer.embed(files).numpy()
    assert z.shape == expected.shape == (len(files), recognizer.embedding_dim)
    assert z.dtype == np.float32
    assert np.abs(z - expected).max() <= TOLERANCE
    assert record["fingerprint"] == recognizer.fingerprint
    for (i, j), verdict in zip(pairs, record["verdicts"], strict=True):
        reference = recognizer.compare(files[i], files[j])
        assert verdict["distance"] == pytest.approx(reference.distance, abs=TOLERANCE)
        assert verdict["same"] == reference.same
        assert (verdict["threshold"], verdict["far"]) == (reference.threshold, reference.far)
        assert verdict["metric"] == reference.metric
        assert verdict["calibrated_on"] == reference.calibrated_on


@pytest.mark.slow
def test_without_torch_a_face_models_export_finds_and_embeds_faces_as_the_run_does(
    tmp_path: Path,
) -> None:
    """dlib's pretrained face ResNet behind the HOG face step, saved as a run (train.steps 0,
    thresholds on 20 ORL people), exported; celebrity photos, one without a face."""
    import importlib.util

    from siamese.config import load_config
    from siamese.training.training_run import train_run
    from tests.conftest import celebrity_photos

    if data_dir() is None:
        pytest.skip("SIAMESE_DATA_DIR is not set")
    if not all(importlib.util.find_spec(m) for m in ("cv2", "dlib", "face_recognition_models")):
        pytest.skip("the faces extra is not installed")
    config = load_config(
        None,
        [
            "data.name=orl",
            "data.split=all",
            "data.options={face: {detector: hog, on_no_face: skip}}",
            "data.validation=classes",
            "data.validation_fraction=0.5",
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
    run = tmp_path / "run"
    train_run(config, run, quiet=True)
    export = _export(run, tmp_path / "export")
    wall = tmp_path / "wall.png"
    Image.new("RGB", (300, 300), (200, 200, 200)).save(wall)
    photos = [*celebrity_photos("val", "madonna", 2), *celebrity_photos("val", "ben_afflek", 2)]
    script = textwrap.dedent(
        """
        import sys
        import numpy as np

        sys.modules["torch"] = None
        from siamese.recognition import OnnxRecognizer

        recognizer = OnnxRecognizer.load(sys.argv[1])
        prepared = recognizer.read(sys.argv[3:])
        faces = recognizer.read(sys.argv[3:], every_face=True)
        np.savez(
            sys.argv[2], z=prepared.z, kept=prepared.prepared.image,
            faces=faces.z, boxes=np.asarray(faces.prepared.boxes),
            torch=np.asarray([m.split(".")[0] == "torch" for m in sys.modules if sys.modules[m]]),
        )
        """
    )
    out = tmp_path / "out.npz"
    files = [str(p) for p in (*photos, wall)]
    result = subprocess.run(
        [sys.executable, "-c", script, str(export), str(out), *files],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    got = np.load(out)
    assert not got["torch"].any()
    recognizer = Recognizer.load(run, device="cpu")
    read = recognizer.read(files)
    assert got["kept"].tolist() == read.prepared.image == [0, 1, 2, 3]  # the wall: no face
    assert read.prepared.no_face == [4]
    assert np.abs(got["z"] - read.z).max() <= TOLERANCE
    faces = recognizer.read(files, every_face=True)
    np.testing.assert_allclose(got["boxes"], np.asarray(faces.prepared.boxes))
    assert np.abs(got["faces"] - faces.z).max() <= TOLERANCE


# ------------------------------------------------------------------------------------------
# The API


def test_inputs_of_every_kind_and_batch_size_give_the_runs_embeddings(
    digits_model: Path, digits_export: Path, digit_files: list[Path]
) -> None:
    recognizer = OnnxRecognizer.load(digits_export)
    reference = Recognizer.load(digits_model, device="cpu").embed(digit_files).numpy()
    data = load_dataset("digits")
    from_files = recognizer.embed(digit_files)
    assert np.abs(from_files - reference).max() <= TOLERANCE
    pil = [Image.open(p) for p in digit_files]
    hwc = [data.x[k, 0].numpy()[:, :, None] for k in range(24)]
    floats = [data.x[k, 0].numpy().astype(np.float32) / 255 for k in range(24)]
    as_bytes = [p.read_bytes() for p in digit_files]
    for inputs in (
        pil,
        hwc,
        floats,
        as_bytes,
        data.x[:24],
        data.x[:24].numpy().transpose(0, 2, 3, 1),
    ):
        np.testing.assert_allclose(recognizer.embed(inputs), from_files, atol=1e-6)
    for batch_size in (1, 7):
        np.testing.assert_allclose(
            recognizer.embed(digit_files, batch_size=batch_size), from_files, atol=1e-6
        )
    x = recognizer.prepare(digit_files)
    assert isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.shape == (24, 1, 8, 8)
    np.testing.assert_allclose(recognizer.embed_prepared(torch.from_numpy(x)), from_files)
    assert recognizer.embed_prepared(x[:0]).shape == (0, 16)
    prepared = recognizer.prepare_images(digit_files[:3])  # no face step: every image kept
    assert prepared.image == [0, 1, 2] and prepared.no_face == []
    assert prepared.sources == [str(p) for p in digit_files[:3]]
    with pytest.raises(DataError, match=r"takes uint8 pixels"):
        recognizer.embed_prepared(x.astype(np.float32))
    with pytest.raises(DataError, match=r"shape \(24, 8, 8\).*\(N, 1, 8, 8\)"):
        recognizer.embed_prepared(x[:, 0])
    with pytest.raises(DataError, match=r"nothing\.png: no such file"):
        recognizer.embed([digit_files[0], digit_files[0].parent / "nothing.png"])
    with pytest.raises(ConfigError, match="no face step"):
        recognizer.prepare_images(digit_files[:1], every_face=True)


def test_the_export_has_the_runs_fingerprint_thresholds_and_description(
    digits_model: Path, digits_export: Path, digit_files: list[Path]
) -> None:
    onnx = OnnxRecognizer.load(digits_export / "export.json")  # the file itself works too
    torch_recognizer = Recognizer.load(digits_model, device="cpu")
    assert onnx.fingerprint == torch_recognizer.fingerprint
    assert (
        onnx.fingerprint != json.loads((digits_export / "export.json").read_text())["model_sha256"]
    )  # the run's weights, not the ONNX file: what a gallery is bound to
    assert onnx.thresholds == torch_recognizer.thresholds
    assert onnx.threshold(1e-2) == torch_recognizer.threshold(1e-2)
    assert (onnx.metric, onnx.scale, onnx.embedding_dim) == ("euclidean", "euclidean", 16)
    assert onnx.head is None and onnx.input_shape == (1, 8, 8)
    assert onnx.providers == ["CPUExecutionProvider"]
    for key in ("input_shape", "embedding_dim", "metric", "preprocessing", "thresholds"):
        assert onnx.description[key] == torch_recognizer.description[key]
    given = onnx.compare(digit_files[0], digit_files[1], threshold=0.5)
    assert given.threshold == 0.5 and given.far is None
    assert given.calibrated_on == "given by the caller"
    assert given.distance == pytest.approx(
        torch_recognizer.compare(digit_files[0], digit_files[1]).distance, abs=TOLERANCE
    )
    with pytest.raises(ConfigError, match="not both"):
        onnx.compare(digit_files[0], digit_files[1], far=1e-2, threshold=0.5)
    with pytest.raises(ConfigError, match="not a calibrated rate"):
        onnx.compare(digit_files[0], digit_files[1], far=0.3)
    with pytest.raises(ConfigError, match="one image on each side"):
        onnx.compare(digit_files[0], load_dataset("digits").x[:2])  # a batch


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_distances_agree_with_the_torch_reference(metric: str, digits_export: Path) -> None:
    z = OnnxRecognizer.load(digits_export).embed(load_dataset("digits").x[:200])
    a, b = z[:100], z[100:]
    got = paired_distances(a, b, metric)
    assert got.dtype == np.float64 and got.shape == (100,) and (got >= 0).all()
    expected = torch_paired_distances(torch.from_numpy(a), torch.from_numpy(b), metric)
    np.testing.assert_allclose(got, expected.double().numpy(), atol=1e-5, rtol=1e-5)
    assert paired_distances(a[:3], a[:3], metric) == pytest.approx([0, 0, 0], abs=1e-12)
    with pytest.raises(ConfigError, match="metric must be one of"):
        paired_distances(a, b, "manhattan")


# ------------------------------------------------------------------------------------------
# Refusals


def test_damaged_incomplete_or_wrong_folders_are_refused_clearly(
    digits_model: Path, digits_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CheckpointError, match=r"no such export folder.*siamese export"):
        OnnxRecognizer.load(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match=r"not an export folder.*Recognizer.*siamese export"):
        OnnxRecognizer.load(digits_model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"not an export folder \(no export.json\)"):
        OnnxRecognizer.load(tmp_path / "empty")

    altered = tmp_path / "altered"
    shutil.copytree(digits_export, altered)
    payload = bytearray((altered / "model.onnx").read_bytes())
    payload[-1] ^= 0xFF
    (altered / "model.onnx").write_bytes(bytes(payload))
    with pytest.raises(CheckpointError, match=r"model.onnx was altered since it was exported"):
        OnnxRecognizer.load(altered)
    (altered / "model.onnx").unlink()
    with pytest.raises(CheckpointError, match=r"model.onnx not found.*incomplete"):
        OnnxRecognizer.load(altered)

    def rewritten(name: str, change: dict) -> Path:
        folder = tmp_path / name
        shutil.copytree(digits_export, folder)
        record = json.loads((folder / "export.json").read_text())
        record.update(change)
        (folder / "export.json").write_text(json.dumps(record))
        return folder

    with pytest.raises(CheckpointError, match=r"torchscript export; OnnxRecognizer runs ONNX"):
        OnnxRecognizer.load(rewritten("ts", {"model_format": "torchscript"}))
    thresholds = json.loads((digits_export / "export.json").read_text())["thresholds"]
    # what `siamese export` writes for a run with loss.name pair_classifier
    pair = rewritten("pair", {"thresholds": {**thresholds, "metric": "pair_head"}})
    with pytest.raises(CheckpointError, match=r"pair classifier.*does not hold"):
        OnnxRecognizer.load(pair)
    # ... and for one without thresholds, the flag `siamese export` sets from the run's head
    assert json.loads((digits_export / "export.json").read_text())["pair_head"] is False
    flagged = rewritten("flagged", {"thresholds": None, "pair_head": True})
    with pytest.raises(CheckpointError, match=r"pair classifier.*does not hold"):
        OnnxRecognizer.load(flagged)
    with pytest.raises(CheckpointError, match=r"not an export description"):
        OnnxRecognizer.load(rewritten("other", {"format": "something-else/1"}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "export.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"export.json cannot be read"):
        OnnxRecognizer.load(tmp_path / "broken")
    no_thresholds = rewritten("bare", {"thresholds": None})
    with pytest.raises(ConfigError, match=r"no calibrated thresholds.*siamese calibrate"):
        OnnxRecognizer.load(no_thresholds).threshold()

    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ConfigError, match=r"no CUDAExecutionProvider.*onnxruntime-gpu"):
            OnnxRecognizer.load(digits_export, providers=["CUDAExecutionProvider"])
    with pytest.raises(ConfigError, match="threads must be >= 1"):
        OnnxRecognizer.load(digits_export, threads=0)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"needs onnxruntime.*pip install 'siamese\[export\]'"):
        OnnxRecognizer.load(digits_export)


# ------------------------------------------------------------------------------------------
# Galleries


def test_a_gallery_enrolled_with_the_run_identifies_alike_with_its_export(
    orl_run: Path, orl_export: Path, orl_faces: Path, digits_export: Path, tmp_path: Path
) -> None:
    path = tmp_path / "people.sqlite"
    torch_recognizer = Recognizer.load(orl_run, device="cpu")
    with Gallery.create(path, torch_recognizer, far=1e-1) as gallery:
        for person in (1, 2, 3, 4, 5):
            gallery.enroll(f"s{person}", _person(orl_faces, person)[:3])
        # their other photos, and strangers
        probes = [p for person in (1, 2, 3, 4, 5, 36, 37) for p in _person(orl_faces, person)[6:8]]
        expected = gallery.identify(probes, k=3)
        expected_verify = gallery.verify("s2", probes[2])
    assert any(a.identity for a in expected) and any(a.identity is None for a in expected)

    with Gallery.open_with_its_model(path, orl_export) as gallery:
        assert isinstance(gallery.recognizer, OnnxRecognizer)
        got = gallery.identify(probes, k=3)
        for answer, reference in zip(got, expected, strict=True):
            assert answer.label == reference.label and answer.source == reference.source
            assert answer.distance == pytest.approx(reference.distance, abs=TOLERANCE)
            assert [c.identity for c in answer.candidates] == [
                c.identity for c in reference.candidates
            ]
            assert (answer.threshold, answer.far) == (reference.threshold, reference.far)
        verification = gallery.verify("s2", probes[2])
        assert verification.same == expected_verify.same
        assert verification.distance == pytest.approx(expected_verify.distance, abs=TOLERANCE)
        # enrolling with the export: the same image is recognised as already enrolled (the
        # same digest), and a new person is stored with the export's embeddings
        again = gallery.enroll("s1", _person(orl_faces, 1)[:1])
        assert again.added == [] and again.already_enrolled == [str(_person(orl_faces, 1)[0])]
        gallery.enroll("s6", _person(orl_faces, 6)[:3])
        newcomer = gallery.identify(_person(orl_faces, 6)[8])[0]
    with Gallery.open(path, torch_recognizer) as gallery:  # and back to the run
        reference = gallery.identify(_person(orl_faces, 6)[8])[0]
    assert reference.label == newcomer.label
    assert reference.distance == pytest.approx(newcomer.distance, abs=TOLERANCE)

    # an export of another run is refused, saying why
    with pytest.raises(ConfigError, match=r"holds embeddings of model.*not of.*reembed"):
        Gallery.open(path, OnnxRecognizer.load(digits_export))


def test_the_gallery_commands_take_an_export_as_model(
    orl_run: Path, orl_export: Path, orl_faces: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "people.sqlite"
    code, out = run_cli(
        ["gallery", "create", str(db), "--model", str(orl_export), "--far", "0.1"], capsys
    )
    assert code == 0, out
    assert isinstance(load_recognizer(orl_export), OnnxRecognizer)
    assert isinstance(load_recognizer(orl_run), Recognizer)
    for person in (7, 8):
        code, out = run_cli(
            ["gallery", "enroll", str(db), f"p{person}", *map(str, _person(orl_faces, person)[:3])],
            capsys,
        )
        assert code == 0, out
    probes = [str(_person(orl_faces, 7)[9]), str(_person(orl_faces, 8)[9])]
    answers = {}
    for model in (orl_export, orl_run):  # the gallery's own model is the export; then the run
        code, out = run_cli(
            ["gallery", "identify", str(db), *probes, "--json", "--model", str(model)], capsys
        )
        assert code == 0, out
        answers[model] = json.loads(out.strip().splitlines()[-1])
    onnx_answers, torch_answers = answers[orl_export], answers[orl_run]
    assert [a["decision"] for a in onnx_answers] == [a["decision"] for a in torch_answers]
    for a, b in zip(onnx_answers, torch_answers, strict=True):
        assert a["distance"] == pytest.approx(b["distance"], abs=TOLERANCE)
    code, out = run_cli(["gallery", "stats", str(db), "--json"], capsys)
    assert code == 0 and str(orl_export) in out


def test_the_service_runs_an_export_as_its_model(
    digits_model: Path, digits_export: Path, digit_files: list[Path], tmp_path: Path
) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from siamese.service.app import ServiceSettings, create_app

    path = tmp_path / "people.sqlite"
    torch_recognizer = Recognizer.load(digits_model, device="cpu")
    with Gallery.create(path, torch_recognizer, far=1e-2) as gallery:
        gallery.enroll("first", digit_files[:2])
    settings = ServiceSettings(gallery=str(path), model=str(digits_export), require_keys=False)
    probe = digit_files[5].read_bytes()
    with TestClient(create_app(settings)) as client:
        assert isinstance(client.app.state.service.gallery(None).recognizer, OnnxRecognizer)
        files = [("images", (p.name, p.read_bytes(), "image/png")) for p in digit_files[2:4]]
        response = client.post("/v1/identities", data={"name": "second"}, files=files)
        assert response.status_code == 201, response.text
        response = client.post("/v1/identify", files={"image": ("p.png", probe, "image/png")})
        assert response.status_code == 200, response.text
        [answer] = response.json()["results"]
        pair = {"image": ("a.png", probe, "image/png"), "image2": ("b.png", probe, "image/png")}
        response = client.post("/v1/verify", files=pair)
        assert response.status_code == 200 and response.json()["same"] is True
        response = client.post("/v1/embed", files={"image": ("p.png", probe, "image/png")})
        embedding = np.asarray(response.json()["embedding"])
        model = client.get("/v1/model").json()
    assert model["fingerprint"] == torch_recognizer.fingerprint
    assert model["input_shape"] == [1, 8, 8] and model["embedding_dim"] == 16
    assert np.abs(embedding - torch_recognizer.embed(probe)[0].numpy()).max() <= TOLERANCE
    with Gallery.open(path, torch_recognizer) as gallery:
        [expected] = gallery.identify(probe)
    assert answer["decision"] == expected.label
    assert answer["distance"] == pytest.approx(expected.distance, abs=TOLERANCE)


def test_device_names_map_to_onnxruntime_providers() -> None:
    import onnxruntime

    from siamese.recognition.onnx_recognizer import device_providers

    assert device_providers("cpu") == ["CPUExecutionProvider"]
    assert device_providers("cuda:1") == [
        ("CUDAExecutionProvider", {"device_id": 1}),
        "CPUExecutionProvider",
    ]
    has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    expected = [("CUDAExecutionProvider", {"device_id": 0})] if has_cuda else []
    assert device_providers(None) == [*expected, "CPUExecutionProvider"]
    with pytest.raises(ConfigError, match=r"runs on auto, cpu, cuda or cuda:N"):
        device_providers("mps")
