"""Streamed image folders (`load_folder(stream=...)`, `StreamedImages`, `load_batches`) and the
cached folder index: pixel-identical to the eager load, lazy subsets, batches in order from
worker processes, the auto threshold, the index cache, and files that go bad after indexing.
Every image is written with Pillow into a temporary folder."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from siamese.data import image_files
from siamese.data.batches import load_batches, ranges
from siamese.data.derived.resized import fitted_to
from siamese.data.derived.rotated_classes import with_rotated_classes
from siamese.data.fingerprints import example_fingerprints
from siamese.data.folders.listing import folder_index
from siamese.data.folders.loading import load_folder
from siamese.data.folders.streamed import (
    STREAM_LIMIT_VARIABLE,
    StreamedImages,
    stream_limit_bytes,
)
from siamese.data.sources import load_dataset
from siamese.data.splits import split_data
from siamese.errors import ConfigError, DataError


def _noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _save(path: Path, pixels: np.ndarray, mode: str | None = None, **params: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path, **params)
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 files in 6 classes: RGB JPEGs, grey PNGs, RGBA PNGs and palette PNGs of several
    sizes (some camera photos turned by their EXIF orientation)."""
    root = tmp_path_factory.mktemp("mixed")
    for i in range(300):
        folder = root / f"class{i % 6}"
        height, width = 10 + i % 7, 12 + i % 5
        kind = i % 4
        if kind == 0:
            exif = Image.Exif()
            exif[0x0112] = 6 if i % 8 == 0 else 1
            _save(folder / f"{i:03d}.jpg", _noise(i, (height, width, 3)), exif=exif, quality=90)
        elif kind == 1:
            _save(folder / f"{i:03d}.png", _noise(i, (height, width)), "L")
        elif kind == 2:
            _save(folder / f"{i:03d}.png", _noise(i, (height, width, 4)), "RGBA")
        else:
            image = Image.fromarray(_noise(i, (height, width, 3))).convert("P")
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def uniform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 grey PNGs of 9×11 in train/ and val/ split folders."""
    root = tmp_path_factory.mktemp("uniform")
    for i in range(60):
        split = "train" if i < 40 else "val"
        _save(root / split / f"c{i % 4}" / f"{i:02d}.png", _noise(i, (9, 11)), "L")
    return root


def _copy_tree(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize(
    ("image_size", "channels", "resize"),
    [((20, 24), 3, "stretch"), ((16, 16), 1, "crop"), ((14, 18), None, "pad")],
)
def test_streamed_pixels_equal_the_eager_load(
    mixed: Path, image_size: tuple[int, int], channels: int | None, resize: str
) -> None:
    options = {"image_size": image_size, "channels": channels, "resize": resize}
    eager = load_folder(mixed, stream=False, use_cache=False, workers=1, **options)
    streamed = load_folder(mixed, stream=True, **options)
    assert isinstance(streamed.x, StreamedImages) and isinstance(eager.x, torch.Tensor)
    assert streamed.x.shape == eager.x.shape and streamed.x.dtype == torch.uint8
    assert torch.equal(streamed.x[:], eager.x)
    assert torch.equal(streamed.y, eager.y)
    assert streamed.paths == eager.paths and streamed.classes == eager.classes
    assert torch.equal(streamed.x[7], eager.x[7]) and torch.equal(streamed.x[-1], eager.x[-1])


def test_streamed_splits_without_resizing_equal_the_eager_load(uniform: Path) -> None:
    eager = load_folder(uniform, stream=False, use_cache=False)
    streamed = load_folder(uniform, stream=True)
    assert streamed.x.shape == (60, 1, 9, 11)
    assert torch.equal(streamed.x[:], eager.x)
    assert torch.equal(streamed.meta["split"], eager.meta["split"])
    assert streamed.meta_names == eager.meta_names == {"split": ["train", "val"]}
    val = load_folder(uniform, "val", stream=True)
    assert torch.equal(val.x[:], load_folder(uniform, "val", stream=False).x)


def test_subsets_and_splits_stay_on_disk(mixed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_folder(mixed, stream=True, image_size=8, channels=1)
    eager = load_folder(mixed, stream=False, image_size=8, channels=1)
    decoded: list[str] = []
    real = image_files.decode_image

    def counting(path: str, *args: object) -> np.ndarray:
        decoded.append(path)
        return real(path, *args)

    monkeypatch.setattr(image_files, "decode_image", counting)
    index = torch.arange(5, 300, 3)
    subset = data.subset(index)
    parts = split_data(subset, {"train": 0.5, "validation": 0.5}, by="class", seed=1)
    few = parts.parts["validation"].with_classes(torch.tensor([1, 3]))
    masked = data.x.take(data.y == 2)
    assert decoded == []
    assert isinstance(few.x, StreamedImages) and isinstance(masked, StreamedImages)
    assert subset.x.shape == (len(index), 1, 8, 8) and masked.shape[0] == 50
    chosen = parts.indices["validation"]
    assert torch.equal(parts.parts["validation"].x[:4], eager.x[index[chosen[:4]]])
    assert len(decoded) == 4
    assert torch.equal(masked[[0, -1]], eager.x[eager.y == 2][[0, -1]])


@pytest.mark.parametrize("workers", [0, 2])
def test_load_batches_gives_the_batches_in_order(mixed: Path, workers: int) -> None:
    data = load_folder(mixed, stream=True, image_size=12, channels=3)
    eager = load_folder(mixed, stream=False, image_size=12, channels=3)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randperm(300, generator=g)[:b] for b in (32, 7, 64, 1, 32, 50)]
    got = list(load_batches(data.x, batches, workers=workers, prefetch=1))
    assert len(got) == len(batches)
    for batch, x in zip(batches, got, strict=True):
        assert torch.equal(x, eager.x[batch])
    # the same call on a tensor indexes it in this process
    plain = list(load_batches(eager.x, batches, workers=workers))
    assert all(torch.equal(a, b) for a, b in zip(plain, got, strict=True))
    everything = torch.cat(list(load_batches(data.x, ranges(300, 128), workers=workers)))
    assert torch.equal(everything, eager.x)
    assert [len(r) for r in ranges(300, 128)] == [128, 128, 44]


def test_stopping_early_closes_the_workers(mixed: Path) -> None:
    data = load_folder(mixed, stream=True, image_size=12, channels=3)
    with load_batches(data.x, ranges(300, 10), workers=2) as batches:
        first = next(batches)
    assert first.shape == (10, 3, 12, 12)
    with pytest.raises(StopIteration):
        next(batches)


def test_auto_streams_above_the_limit(mixed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stream_limit_bytes() == 2 * 2**30
    small = load_folder(mixed, image_size=10, channels=1)
    assert isinstance(small.x, torch.Tensor)
    monkeypatch.setenv(STREAM_LIMIT_VARIABLE, str(300 * 1 * 10 * 10))  # exactly: not above
    assert isinstance(load_folder(mixed, image_size=10, channels=1).x, torch.Tensor)
    monkeypatch.setenv(STREAM_LIMIT_VARIABLE, str(300 * 1 * 10 * 10 - 1))
    streamed = load_folder(mixed, image_size=10, channels=1)
    assert isinstance(streamed.x, StreamedImages)
    assert torch.equal(streamed.x[:], small.x)
    # through the source and its options, as a config's data.options give them
    named = load_dataset(f"folder:{mixed}", image_size=[10, 10], channels=1, stream="auto")
    assert isinstance(named.x, StreamedImages)
    assert isinstance(
        load_dataset(f"folder:{mixed}", image_size=10, stream="false").x, torch.Tensor
    )
    monkeypatch.setenv(STREAM_LIMIT_VARIABLE, "lots")
    with pytest.raises(ConfigError, match=STREAM_LIMIT_VARIABLE):
        load_folder(mixed, image_size=10)
    with pytest.raises(ConfigError, match="stream must be"):
        load_folder(mixed, image_size=10, stream="sometimes")


def test_the_index_is_cached_and_rebuilt_for_changed_class_folders(
    mixed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIAMESE_CACHE_DIR", str(tmp_path / "cache"))
    root = _copy_tree(mixed, tmp_path / "copy")
    probed: list[int] = []
    real = image_files.probe_images

    def counting(paths: list[str]) -> list:
        probed.append(len(paths))
        return real(paths)

    monkeypatch.setattr(image_files, "probe_images", counting)
    first = folder_index(root, workers=1)
    assert first.relisted == 6 and sum(probed) == 300
    again = folder_index(root, workers=1)
    assert again.relisted == 0 and sum(probed) == 300
    assert [list(s.classes) for s in again.splits] == [list(s.classes) for s in first.splits]
    _save(root / "class2" / "new.png", _noise(1000, (10, 12, 3)))
    changed = folder_index(root, workers=1)
    assert changed.relisted == 1 and sum(probed) == 351
    data = load_folder(root, stream=True, image_size=8)
    assert "class2/new.png" in data.paths and len(data) == 301
    assert folder_index(root, workers=1).relisted == 0
    (root / "class5").rename(root / "class6")  # a class renamed: only that folder is new
    assert folder_index(root, workers=1).relisted == 1
    assert folder_index(root, workers=1, use_cache=False).relisted == 6


def test_a_file_corrupted_after_indexing_is_named(
    mixed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy_tree(mixed, tmp_path / "copy")
    data = load_folder(root, stream=True, image_size=8, channels=3)
    victim = data.paths.index("class1/001.png")
    (root / "class1" / "001.png").write_bytes(b"not an image any more")
    assert data.x[victim + 1].shape == (3, 8, 8)
    with pytest.raises(
        DataError, match=r"class1/001\.png: the file is not an image.*changed since"
    ):
        data.x[victim]
    batches = [torch.tensor([0, 1]), torch.tensor([2, victim])]
    for workers in (0, 2):
        stream = load_batches(data.x, batches, workers=workers)
        assert next(stream).shape == (2, 3, 8, 8)
        with pytest.raises(DataError, match=r"class1/001\.png"):
            next(stream)
    # pixel data corrupt behind a good header: the index cannot know, the decode says so
    other = root / "class3" / "003.png"
    payload = other.read_bytes()
    other.write_bytes(payload[: len(payload) // 2])
    data = load_folder(root, stream=True, image_size=8, channels=3, on_bad_file="skip")
    with pytest.raises(
        DataError, match=r"class3/003\.png: the image data is corrupt.*header check"
    ):
        data.x[data.paths.index("class3/003.png")]


def test_files_unreadable_at_indexing_are_errors_or_skipped(mixed: Path, tmp_path: Path) -> None:
    root = _copy_tree(mixed, tmp_path / "copy")
    (root / "class0" / "zz_broken.png").write_bytes(b"nope")
    (root / "class4" / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"(?s)2 of the 302 image files.*class0/zz_broken\.png"):
        load_folder(root, stream=True, image_size=8)
    with pytest.warns(UserWarning, match="left out 2"):
        data = load_folder(root, stream=True, image_size=8, on_bad_file="skip")
    assert len(data) == 300 and {s.path for s in data.skipped} == {
        "class0/zz_broken.png",
        "class4/empty.jpg",
    }
    with pytest.raises(DataError, match="more than max_pixels"):
        load_folder(root, stream=True, image_size=8, on_bad_file="skip", max_pixels=100)


def test_sizes_must_agree_without_image_size(mixed: Path) -> None:
    with pytest.raises(DataError, match=r"different sizes.*image_size"):
        load_folder(mixed, stream=True)


def test_streamed_images_pickle(mixed: Path) -> None:
    data = load_folder(mixed, stream=True, image_size=(6, 7), channels=3)
    part = data.x.take(torch.tensor([5, 0, 299]))
    copy = pickle.loads(pickle.dumps(part))
    assert copy.shape == (3, 3, 6, 7) and torch.equal(copy[:], part[:])
    assert copy.file_path(0) == str(mixed / data.paths[5])


def test_operations_that_need_every_pixel_say_so(mixed: Path) -> None:
    data = load_folder(mixed, stream=True, image_size=8, channels=1)
    with pytest.raises(AttributeError, match=r"streamed.*stream=False"):
        data.x.flatten(1)
    with pytest.raises(DataError, match="rotated_classes needs every image in memory"):
        with_rotated_classes(data)


def test_fitting_and_fingerprints_match_the_eager_tensor(mixed: Path) -> None:
    streamed = load_folder(mixed, stream=True, image_size=(12, 10), channels=3)
    eager = load_folder(mixed, stream=False, image_size=(12, 10), channels=3)
    fitted, note = fitted_to(streamed, (1, 7, 5), "test")
    reference, reference_note = fitted_to(eager, (1, 7, 5), "test")
    assert isinstance(fitted.x, StreamedImages) and note == reference_note
    assert fitted.x.shape == reference.x.shape == (300, 1, 7, 5)
    assert torch.equal(fitted.x[:], reference.x)
    assert torch.equal(example_fingerprints(streamed.x), example_fingerprints(eager.x))


def test_a_face_step_that_skips_cannot_stream(mixed: Path) -> None:
    with pytest.raises(ConfigError, match="on_no_face"):
        load_folder(mixed, stream=True, face={"detector": "haar", "on_no_face": "skip"})


def test_streamed_images_from_a_list_of_files(mixed: Path) -> None:
    files = [str(mixed / "class0" / "000.jpg"), str(mixed / "class1" / "001.png")]
    images = StreamedImages(files, (3, 9, 9), resize="crop")
    expected = np.stack([image_files.decode_image(f, 3, (9, 9), "crop") for f in files])
    assert torch.equal(images[:], torch.from_numpy(expected))
    assert repr(images) == "StreamedImages(2 images of 3×9×9 uint8 from files)"


def test_the_retrieval_figure_reads_only_the_gallery_images_it_shows(
    mixed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siamese.run_evaluation import protocols
    from siamese.run_evaluation.result import Evaluation

    train = load_folder(mixed, stream=True, image_size=8, channels=3)
    queries = load_folder(mixed, stream=False, image_size=8, channels=3).subset(
        torch.arange(0, 300, 10)
    )
    z_train = torch.nn.functional.normalize(torch.randn(300, 4, generator=torch.Generator()))
    decoded: list[str] = []
    real = image_files.decode_image
    monkeypatch.setattr(
        image_files, "decode_image", lambda path, *a: decoded.append(path) or real(path, *a)
    )
    result = Evaluation(tmp_path, "test", len(queries), 6, tmp_path)
    reference = (z_train, train.y)
    protocols.retrieval(
        result, queries, z_train[::10], "euclidean", tmp_path, 0, reference, train.x
    )
    assert result.figures["retrieval"].is_file()
    assert 0 < len(decoded) <= 6 * 5


def test_input_statistics_of_streamed_images_equal_the_tensor_ones(mixed: Path) -> None:
    from siamese.training.setup import input_statistics

    streamed = load_folder(mixed, stream=True, image_size=8, channels=3)
    eager = load_folder(mixed, stream=False, image_size=8, channels=3)
    assert input_statistics(streamed.x, seed=3, max_examples=100, chunk=32) == input_statistics(
        eager.x, seed=3, max_examples=100, chunk=32
    )


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits dataset (1,797 8×8 images, 10 classes) as a folder of PNG files."""
    from siamese.data.sources import load_dataset

    root = tmp_path_factory.mktemp("digit_folder")
    data = load_dataset("digits")
    for i, (image, label) in enumerate(zip(data.x, data.y.tolist(), strict=True)):
        folder = root / f"digit{label}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(image[0].numpy(), "L").save(folder / f"{i:04d}.png")
    return root


@pytest.mark.slow
def test_a_streamed_run_trains_and_evaluates_as_the_in_memory_run(
    digit_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same folder, decoded up front or streamed by two DataLoader workers: the same
    batches, the same pixels, so the same losses, validations, weights and evaluation."""
    from siamese.config import load_config
    from siamese.run_directory.metrics import read_metrics
    from siamese.run_evaluation.evaluator import evaluate_run
    from siamese.training.training_run import train_run

    monkeypatch.setenv("SIAMESE_CACHE_DIR", str(tmp_path / "cache"))
    results = {}
    for stream in (False, True):
        config = load_config(
            None,
            [
                f"data.name=folder:{digit_folder}",
                f"data.options={{channels: 1, stream: {str(stream).lower()}, workers: 2}}",
                "model.options={widths: [8, 16]}",
                "model.embedding_dim=16",
                "batches.p=8",
                "batches.k=4",
                "train.epochs=null",
                "train.steps=12",
                "train.log_every=4",
                "train.validate_every=1",
                "train.checkpoint_every=6",
            ],
        )
        run = tmp_path / f"stream-{stream}"
        train_run(config, run, quiet=True)
        rows = [
            {k: v for k, v in row.items() if k != "images_per_s"}
            for row in read_metrics(run / "metrics.csv")
        ]
        weights = (run / "model.safetensors").read_bytes()
        evaluation = evaluate_run(run, protocols=("verification", "retrieval"), episodes=20)
        results[stream] = (rows, weights, evaluation.headline)
    assert results[True][0] == results[False][0]
    assert results[True][1] == results[False][1]
    assert results[True][2] == results[False][2]
