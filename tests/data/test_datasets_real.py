"""The named datasets load their real files with the published counts, shapes and pixels.

These read SIAMESE_DATA_DIR (CI sets it to the shared data directory) and skip without it.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

import siamese
from siamese.data.local_copies import EXPECTED_COUNTS, dataset_status
from tests.conftest import data_dir

DATA = data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="SIAMESE_DATA_DIR is not set to a directory")


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:16]


# (name, split) -> (x shape, sha256 prefix of the pixels, sha256 prefix of the labels)
KNOWN = {
    ("mnist", "train"): ((60000, 1, 28, 28), "741c988805d008ac", "e474323ac02fc156"),
    ("mnist", "test"): ((10000, 1, 28, 28), "6d87418db22cc802", "2fd8de6bdb8d1178"),
    ("fashion-mnist", "train"): ((60000, 1, 28, 28), "2e487a6c89124f78", "e3245b63f7c40d1c"),
    ("fashion-mnist", "test"): ((10000, 1, 28, 28), "c867c93ff9536059", "d51d859896c55775"),
    ("orl", "all"): ((400, 1, 112, 92), "2e4844a9f4fa4397", "193039d78919527e"),
    ("omniglot", "background"): ((19280, 1, 105, 105), "0cd55851480f8c5b", "770a15338d5e5169"),
    ("omniglot", "evaluation"): ((13180, 1, 105, 105), "2f8abf420f25346c", "a1f03e52d668cdb1"),
}


@needs_data
@pytest.mark.parametrize(("name", "split"), list(KNOWN))
def test_named_dataset_loads_its_known_pixels(name: str, split: str) -> None:
    data = siamese.load_dataset(name, split, data_dir=DATA)
    shape, pixels, labels = KNOWN[(name, split)]
    assert tuple(data.x.shape) == shape
    assert data.x.dtype == torch.uint8 and data.y.dtype == torch.int64
    examples, classes = EXPECTED_COUNTS[name][split]
    assert (len(data), int(data.class_ids.numel())) == (examples, classes)
    assert len(data.classes) == classes
    assert _sha(data.x) == pixels and _sha(data.y) == labels


@needs_data
def test_mnist_label_histograms_and_pixel_statistics_are_the_published_ones() -> None:
    train = siamese.load_dataset("mnist", "train", data_dir=DATA)
    test = siamese.load_dataset("mnist", "test", data_dir=DATA)
    assert train.class_counts().tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert test.class_counts().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    pixels = train.x.double() / 255
    assert pixels.mean().item() == pytest.approx(0.130660, abs=1e-6)
    assert pixels.std().item() == pytest.approx(0.308108, abs=1e-5)
    fashion = siamese.load_dataset("fashion-mnist", "train", data_dir=DATA)
    assert fashion.class_counts().tolist() == [6000] * 10
    assert fashion.classes[9] == "Ankle boot"
    assert (fashion.x.double() / 255).mean().item() == pytest.approx(0.286041, abs=1e-6)


@needs_data
def test_orl_keeps_identity_and_file_number() -> None:
    data = siamese.load_dataset("orl", data_dir=DATA)
    assert data.class_counts().tolist() == [10] * 40
    assert (
        data.classes[0] == "s1" and data.paths[0] == "s1/1.pgm" and data.paths[-1] == "s40/10.pgm"
    )
    assert data.meta["image"][:10].tolist() == list(range(1, 11))
    assert data.y[data.paths.index("s17/3.pgm")].item() == 16


@needs_data
def test_omniglot_keeps_alphabet_character_and_drawer() -> None:
    data = siamese.load_dataset("omniglot", "background", data_dir=DATA)
    assert len(data.meta_names["alphabet"]) == 30
    assert data.class_counts().tolist() == [20] * 964
    assert data.paths[0] == "images_background/Alphabet_of_the_Magi/character01/0709_01.png"
    assert data.classes[0] == "Alphabet_of_the_Magi/character01"
    assert data.meta["drawer"][:20].tolist() == list(range(1, 21))
    assert data.meta["char_id"].min().item() == 1 and data.meta["char_id"].max().item() == 964
    # ink is bright on a dark background, like MNIST: most pixels are background
    assert (data.x[:100] == 0).float().mean() > 0.8 and set(data.x[:500].unique().tolist()) == {
        0,
        255,
    }
    cyrillic = data.meta_names["alphabet"].index("Cyrillic")
    chars = data.meta["char_id"][data.meta["alphabet"] == cyrillic]
    assert (chars.min().item(), chars.max().item()) == (218, 250)  # the published id range
    evaluation = siamese.load_dataset("omniglot", "evaluation", data_dir=DATA)
    assert len(evaluation.meta_names["alphabet"]) == 20
    assert evaluation.meta["char_id"].min().item() == 965


@needs_data
def test_every_file_in_the_data_directory_matches_its_checksum() -> None:
    for name in ("mnist", "fashion-mnist", "orl", "omniglot", "5-celebrity-faces"):
        status = dataset_status(name, DATA)
        assert status.state == "ready", (name, status.files)
        assert any(f.state == "ok" for f in status.files), name


def test_digits_are_the_bundled_scikit_learn_set() -> None:
    data = siamese.load_dataset("digits")
    assert tuple(data.x.shape) == (1797, 1, 8, 8)
    assert data.class_counts().tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert data.x.max().item() == 255 and _sha(data.x) == "b41ca9fd335466ee"


def test_glyph_splits_hold_out_the_demo_characters() -> None:
    all_data = siamese.load_dataset("glyphs")
    test = siamese.load_dataset("glyphs", "test", held_out=40)
    train = siamese.load_dataset("glyphs", "train", held_out=40)
    assert test.class_ids.numel() == 40 and train.class_ids.numel() == len(all_data.classes) - 40
    assert not set(test.class_ids.tolist()) & set(train.class_ids.tolist())
    assert len(test) + len(train) == len(all_data)
    assert all_data.meta_names["writer"][0] == "DejaVuSans"


@needs_data
def test_celebrity_faces_from_the_archive() -> None:
    train = siamese.load_dataset("5-celebrity-faces", "train", data_dir=DATA)
    val = siamese.load_dataset("5-celebrity-faces", "val", data_dir=DATA)
    assert tuple(train.x.shape) == (93, 3, 160, 160) and train.x.dtype == torch.uint8
    assert train.classes == [
        "ben_afflek",
        "elton_john",
        "jerry_seinfeld",
        "madonna",
        "mindy_kaling",
    ]
    assert train.class_counts().tolist() == [14, 17, 21, 19, 22]
    assert val.class_counts().tolist() == [5] * 5 and val.classes == train.classes
    assert all(p.startswith("val/") for p in val.paths)
    small = siamese.load_dataset(
        "5-celebrity-faces", "all", data_dir=DATA, image_size=(64, 48), channels=1
    )
    assert tuple(small.x.shape) == (118, 1, 64, 48) and small.meta_names["split"] == [
        "train",
        "val",
    ]
