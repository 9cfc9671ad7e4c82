"""`folder:PATH` image folders: decoding real files of every format, the layout, bad files, the
cache and the worker pool. Every image is written with Pillow into a temporary folder."""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from siamese.cache import cache_dir
from siamese.data import image_files
from siamese.data.folders import decoded as folder_module
from siamese.data.folders.loading import load_folder
from siamese.data.image_files import BadImageError, decode_image
from siamese.errors import ConfigError, DataError


def _noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _save(path: Path, pixels: np.ndarray, mode: str | None = None, **params: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path, **params)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG whose header declares width × height 8-bit gray pixels, with a tiny payload."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    payload = zlib.compress(b"\0" * 1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", payload)
        + _png_chunk(b"IEND", b"")
    )
    return path


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _dataset(root: Path, n_classes: int = 3, per_class: int = 3, size: int = 8) -> Path:
    for c in range(n_classes):
        for i in range(per_class):
            _save(root / f"class{c}" / f"{i}.png", _noise(c * 100 + i, (size, size, 3)))
    return root


# --- decode_image: formats and pixel modes ------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "lossless"),
    [
        (".png", True),
        (".bmp", True),
        (".ppm", True),
        (".tif", True),
        (".webp", False),
        (".jpg", False),
    ],
)
def test_colour_formats_decode_to_rgb(tmp_path: Path, suffix: str, lossless: bool) -> None:
    pixels = np.zeros((12, 16, 3), dtype=np.uint8)
    pixels[:, :8] = (200, 30, 60)  # two flat halves survive lossy compression closely
    pixels[:, 8:] = (20, 220, 90)
    path = _save(tmp_path / f"image{suffix}", pixels)
    decoded = decode_image(str(path))
    assert decoded.dtype == np.uint8 and decoded.shape == (3, 12, 16)
    expected = pixels.transpose(2, 0, 1)
    if lossless:
        assert np.array_equal(decoded, expected)
    else:
        assert np.abs(decoded[:, 2:-2, 2:6].astype(int) - expected[:, 2:-2, 2:6]).max() <= 12


@pytest.mark.parametrize("suffix", [".png", ".pgm", ".bmp", ".tif", ".jpg", ".webp"])
def test_grayscale_formats_decode_to_one_channel(tmp_path: Path, suffix: str) -> None:
    pixels = np.full((10, 10), 77, dtype=np.uint8)
    path = _save(tmp_path / f"gray{suffix}", pixels, "L")
    decoded = decode_image(str(path))
    if suffix == ".webp":  # WebP stores colour only: a gray image comes back as RGB
        assert decoded.shape == (3, 10, 10)
    else:
        assert decoded.shape == (1, 10, 10)
    assert np.abs(decoded.astype(int) - 77).max() <= 2


def test_one_bit_pbm_becomes_0_or_255(tmp_path: Path) -> None:
    bits = np.zeros((6, 6), dtype=bool)
    bits[1:3, 1:3] = True
    path = tmp_path / "bits.pbm"
    Image.fromarray(bits).save(path)
    decoded = decode_image(str(path))
    assert decoded.shape == (1, 6, 6)
    assert set(np.unique(decoded).tolist()) == {0, 255}
    assert np.array_equal(decoded[0] == 255, bits)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path, suffix: str) -> None:
    values = np.array([[0, 65535, 32896], [257, 128, 65000]], dtype=np.uint16)
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    decoded = decode_image(str(path))
    assert decoded.shape == (1, 2, 3)
    assert decoded[0].tolist() == [[0, 255, 128], [1, 0, 253]]


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path)  # no cyan or black: red
    assert Image.open(path).mode == "CMYK"
    decoded = decode_image(str(path))
    assert decoded.shape == (3, 8, 8)
    assert np.abs(decoded[:, 4, 4].astype(int) - [255, 0, 0]).max() <= 8


def test_palette_with_transparency_is_composited_onto_white(tmp_path: Path) -> None:
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    path = tmp_path / "palette.png"
    image.save(path, transparency=1)
    decoded = decode_image(str(path))
    assert decoded.shape == (3, 2, 2)
    assert decoded[:, 0, 0].tolist() == [255, 0, 0]
    assert decoded[:, 0, 1].tolist() == [255, 255, 255]  # the transparent entry
    assert decoded[:, 1, 0].tolist() == [0, 0, 255]


def test_gray_palette_keeps_one_channel(tmp_path: Path) -> None:
    image = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), "P")
    image.putpalette([10, 10, 10, 200, 200, 200])
    path = tmp_path / "gray_palette.png"
    image.save(path)
    decoded = decode_image(str(path))
    assert decoded.shape == (1, 1, 2) and decoded[0, 0].tolist() == [10, 200]


def test_alpha_is_composited_onto_white(tmp_path: Path) -> None:
    rgba = np.zeros((1, 3, 4), dtype=np.uint8)  # black, alpha 0, 128 and 255
    rgba[0, :, 3] = [0, 128, 255]
    decoded = decode_image(str(_save(tmp_path / "rgba.png", rgba, "RGBA")))
    assert decoded.shape == (3, 1, 3)
    assert decoded[:, 0, 0].tolist() == [255, 255, 255]
    assert decoded[:, 0, 1].tolist() == [127, 127, 127]
    assert decoded[:, 0, 2].tolist() == [0, 0, 0]
    gray_alpha = np.stack([np.zeros((1, 2), np.uint8), np.array([[0, 255]], np.uint8)], -1)
    decoded = decode_image(str(_save(tmp_path / "la.png", gray_alpha, "LA")))
    assert decoded.shape == (1, 1, 2) and decoded[0, 0].tolist() == [255, 0]


def test_channels_force_gray_or_rgb(tmp_path: Path) -> None:
    colour = np.zeros((4, 4, 3), dtype=np.uint8)
    colour[..., 1] = 255
    rgb_path = str(_save(tmp_path / "green.png", colour))
    gray = decode_image(rgb_path, channels=1)
    assert gray.shape == (1, 4, 4) and abs(int(gray[0, 0, 0]) - 150) <= 1  # luma of green
    gray_path = str(_save(tmp_path / "gray.png", np.full((4, 4), 9, np.uint8), "L"))
    rgb = decode_image(gray_path, channels=3)
    assert rgb.shape == (3, 4, 4) and (rgb == 9).all()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated by 90°
    path = tmp_path / "camera.jpg"
    Image.new("RGB", (40, 20), (90, 90, 90)).save(path, exif=exif)
    assert decode_image(str(path)).shape == (3, 40, 20)


# --- decode_image: resizing ---------------------------------------------------------------


def test_resize_modes(tmp_path: Path) -> None:
    wide = np.full((20, 40), 200, dtype=np.uint8)
    wide[:, :5] = 0  # dark side bands that a centre crop removes
    wide[:, -5:] = 0
    path = str(_save(tmp_path / "wide.png", wide, "L"))

    stretched = decode_image(path, size=(10, 10), resize="stretch")
    assert stretched.shape == (1, 10, 10)
    assert stretched[0, :, 0].max() < 100  # the bands are squeezed in, not cut

    cropped = decode_image(path, size=(10, 10), resize="crop")
    assert cropped.shape == (1, 10, 10)
    assert cropped.min() > 150  # the centre 20×20 has no band

    padded = decode_image(path, size=(20, 20), resize="pad")
    assert padded.shape == (1, 20, 20)
    assert (padded[0, :5] == 0).all() and (padded[0, -5:] == 0).all()  # black borders
    assert padded[0, 10, 10] > 150


def test_downscaling_a_large_jpeg_uses_a_smooth_filter(tmp_path: Path) -> None:
    stripes = np.zeros((400, 400), dtype=np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes average to mid-gray, not to aliasing
    path = str(_save(tmp_path / "stripes.png", stripes, "L"))
    small = decode_image(path, size=(20, 20))
    assert np.abs(small.astype(int) - 128).max() <= 3


# --- decode_image: bad files --------------------------------------------------------------


def _reason(path: Path, **kwargs: object) -> str:
    with pytest.raises(BadImageError) as caught:
        decode_image(str(path), **kwargs)
    assert caught.value.path == str(path)
    assert path.name in str(caught.value)
    return caught.value.reason


def test_bad_files_raise_with_a_reason(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert "empty (0 bytes)" in _reason(empty)

    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(np.random.default_rng(0).bytes(500))
    assert "not an image" in _reason(garbage)

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    for suffix in (".png", ".jpg"):
        cut = _truncate(_save(tmp_path / f"cut{suffix}", _noise(1, (64, 64, 3))))
        assert "truncated" in _reason(cut)

    float_tiff = tmp_path / "float.tif"
    Image.fromarray(np.ones((4, 4), np.float32)).save(float_tiff)
    assert "'F' is not supported" in _reason(float_tiff)

    assert "cannot be read" in _reason(tmp_path / "missing.png")


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused with an error, not one of Pillow's warnings
        huge = _bomb_png(tmp_path / "huge.png", 100_000, 100_000)  # 10 GB if decoded
        assert "decompression bomb" in _reason(huge)
        # Past Pillow's warning limit, below its error limit: this module's check refuses it.
        big = _bomb_png(tmp_path / "big.png", 10_000, 10_000)
        reason = _reason(big)
        assert "10000×10000 = 100,000,000 pixels" in reason and "max_pixels" in reason
    small = _save(tmp_path / "small.png", _noise(0, (20, 20)), "L")
    assert "400 pixels" in _reason(small, max_pixels=100)
    assert decode_image(str(small), max_pixels=400).shape == (1, 20, 20)


def test_bad_image_error_pickles() -> None:
    error = pickle.loads(pickle.dumps(BadImageError("a/b.png", "the file is empty")))
    assert (error.path, error.reason) == ("a/b.png", "the file is empty")
    assert str(error) == "a/b.png: the file is empty"


# --- load_folder: layout ------------------------------------------------------------------


def test_plain_folder(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "data", n_classes=3, per_class=2)
    (root / "README.txt").write_text("not an image")
    (root / "class0" / "notes.txt").write_text("ignored")
    (root / "class0" / ".DS_Store").write_bytes(b"\0\0")
    (root / "class1" / "Thumbs.db").write_bytes(b"\0\0")
    _save(root / "class1" / ".hidden.png", _noise(9, (8, 8, 3)))
    _save(root / ".hidden_class" / "0.png", _noise(9, (8, 8, 3)))
    _save(root / "class2" / "UPPER.PNG", _noise(7, (8, 8, 3)))

    before = sorted(root.rglob("*"))
    data = load_folder(root, workers=1)
    assert sorted(root.rglob("*")) == before  # nothing is written beside the images
    assert data.classes == ["class0", "class1", "class2"]
    assert data.x.dtype == torch.uint8 and data.x.shape == (7, 3, 8, 8)
    assert data.y.tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert data.paths == [
        "class0/0.png",
        "class0/1.png",
        "class1/0.png",
        "class1/1.png",
        "class2/0.png",
        "class2/1.png",
        "class2/UPPER.PNG",
    ]
    assert np.array_equal(data.x[2].numpy(), _noise(100, (8, 8, 3)).transpose(2, 0, 1))
    assert data.meta == {} and data.skipped == []


def test_train_val_layout_shares_class_ids(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for name, index in [("cat", 0), ("dog", 1)]:
        for i in range(2):
            _save(root / "train" / name / f"{i}.png", _noise(index * 10 + i, (8, 8)), "L")
    for name, index in [("dog", 3), ("eel", 4)]:  # val has a class train lacks, and not cat
        for i in range(2):
            _save(root / "val" / name / f"{i}.png", _noise(index * 10 + i, (8, 8)), "L")

    everything = load_folder(root, workers=1)
    assert everything.classes == ["cat", "dog", "eel"]
    assert everything.meta_names["split"] == ["train", "val"]
    assert everything.meta["split"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert everything.paths is not None and everything.paths[4] == "val/dog/0.png"
    assert everything.x.shape == (8, 1, 8, 8)

    train = load_folder(root, "train", workers=1)
    val = load_folder(root, "val", workers=1)
    assert train.classes == val.classes == everything.classes
    assert train.y.tolist() == [0, 0, 1, 1]
    assert val.y.tolist() == [1, 1, 2, 2]
    assert torch.equal(load_folder(root, "all", workers=1).x, everything.x)

    with pytest.raises(ConfigError, match="train, val, all"):
        load_folder(root, "test")
    with pytest.raises(ConfigError, match="None or 'all'"):
        load_folder(_dataset(tmp_path / "plain"), "train")


def test_layout_errors_say_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist.*PATH/<class>/<image>"):
        load_folder(tmp_path / "nowhere")
    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_folder(a_file)
    flat = tmp_path / "flat"
    _save(flat / "a.png", _noise(0, (4, 4)), "L")
    with pytest.raises(
        DataError, match=r"1 image file\(s\) directly inside but no class subfolders"
    ):
        load_folder(flat)
    no_images = tmp_path / "no_images"
    (no_images / "cat").mkdir(parents=True)
    (no_images / "cat" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no image files in .*no_images.*PATH/<class>/<image>"):
        load_folder(no_images)
    mixed = tmp_path / "mixed"
    _dataset(mixed / "train")
    _dataset(mixed / "extra")
    with pytest.raises(DataError, match=r"other folders beside them \(extra\)"):
        load_folder(mixed)


def test_invalid_options(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "data")
    with pytest.raises(ConfigError, match="on_bad_file"):
        load_folder(root, on_bad_file="ignore")
    with pytest.raises(ConfigError, match="resize"):
        load_folder(root, image_size=(4, 4), resize="squash")
    with pytest.raises(ConfigError, match="image_size"):
        load_folder(root, image_size=(4, 0))
    with pytest.raises(ConfigError, match="channels"):
        load_folder(root, channels=2)
    with pytest.raises(ConfigError, match="workers"):
        load_folder(root, workers=0)


def test_empty_class_folder(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "data", n_classes=2)
    (root / "empty_class").mkdir()
    with pytest.raises(DataError, match=r"empty_class.*on_bad_file='skip'"):
        load_folder(root)
    with pytest.warns(UserWarning, match="left out 1"):
        data = load_folder(root, on_bad_file="skip", workers=1)
    assert data.classes == ["class0", "class1"]
    assert [s.path for s in data.skipped] == ["empty_class/"]


def test_single_image_class_warns(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "data", n_classes=2)
    _save(root / "lonely" / "0.png", _noise(5, (8, 8, 3)))
    with pytest.warns(UserWarning, match=r"can't form positive pairs: lonely"):
        data = load_folder(root, workers=1)
    assert data.class_counts().tolist() == [3, 3, 1]


def test_gray_and_colour_mix_becomes_rgb(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i in range(2):
        _save(root / "gray" / f"{i}.png", np.full((6, 6), 40 + i, np.uint8), "L")
        _save(root / "colour" / f"{i}.png", _noise(i, (6, 6, 3)))
    data = load_folder(root, workers=1)
    assert data.x.shape == (4, 3, 6, 6)
    assert (data.x[2] == 40).all() and (data.x[3] == 41).all()  # replicated into R, G and B
    assert load_folder(root, workers=1, channels=1).x.shape == (4, 1, 6, 6)


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "data", n_classes=2, per_class=2, size=8)
    _save(root / "class1" / "wide.png", np.full((8, 16, 3), 255, np.uint8))
    with pytest.raises(DataError) as caught:
        load_folder(root, workers=1)
    message = str(caught.value)
    assert "class0/0.png is 8×8" in message and "class1/wide.png is 8×16" in message
    assert "image_size=(H, W)" in message and "--image-size" in message

    for mode in ("stretch", "crop", "pad"):
        data = load_folder(root, image_size=(12, 12), resize=mode, workers=1)
        assert data.x.shape == (5, 3, 12, 12)
    padded = load_folder(root, image_size=(12, 12), resize="pad", workers=1).x[4]
    assert (padded[:, :3] == 0).all() and (padded[:, -3:] == 0).all()
    assert (padded[:, 3:9] == 255).all()
    assert load_folder(root, image_size=6, workers=1).x.shape == (5, 3, 6, 6)


# --- load_folder: bad files ---------------------------------------------------------------


def _dataset_with_bad_files(root: Path) -> dict[str, str]:
    """The good dataset plus one bad file of each kind; returns path -> expected reason."""
    _dataset(root, n_classes=2, per_class=3)
    (root / "class0" / "empty.png").write_bytes(b"")
    (root / "class0" / "random.png").write_bytes(np.random.default_rng(1).bytes(300))
    _truncate(_save(root / "class1" / "cut.jpg", _noise(3, (64, 64, 3))))
    _bomb_png(root / "class1" / "bomb.png", 100_000, 100_000)
    return {
        "class0/empty.png": "empty (0 bytes)",
        "class0/random.png": "not an image",
        "class1/bomb.png": "decompression bomb",
        "class1/cut.jpg": "truncated",
    }


def test_bad_files_are_errors_naming_every_file(tmp_path: Path) -> None:
    expected = _dataset_with_bad_files(tmp_path / "data")
    with pytest.raises(DataError) as caught:
        load_folder(tmp_path / "data", workers=1)
    message = str(caught.value)
    assert "4 of the 10 image files" in message and "on_bad_file='skip'" in message
    for path, reason in expected.items():
        assert f"{path}: the" in message and reason in message


def test_skip_leaves_bad_files_out_and_lists_them(tmp_path: Path) -> None:
    expected = _dataset_with_bad_files(tmp_path / "data")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_folder(tmp_path / "data", on_bad_file="skip", workers=1)
    assert [str(w.message) for w in caught if "left out" in str(w.message)] == [
        str(caught[0].message)
    ]
    assert "left out 4" in str(caught[0].message)
    assert data.x.shape == (6, 3, 8, 8)
    assert {s.path: s.reason for s in data.skipped}.keys() == expected.keys()
    for skipped in data.skipped:
        assert expected[skipped.path] in skipped.reason


# --- load_folder: cache -------------------------------------------------------------------


@pytest.fixture
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files `decode_image` is asked to decode (in this process: workers=1)."""
    calls: list[str] = []
    real = image_files.decode_image

    def counting(path: str, *args: object, **kwargs: object) -> np.ndarray:
        calls.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(image_files, "decode_image", counting)
    return calls


def test_cache_decodes_only_new_or_changed_files(tmp_path: Path, decode_calls: list[str]) -> None:
    root = _dataset(tmp_path / "data", n_classes=2, per_class=3)
    first = load_folder(root, workers=1)
    assert len(decode_calls) == 6
    assert list((cache_dir() / "folders").glob("data-*.npz"))
    assert not list((cache_dir() / "folders").glob("*.tmp"))

    decode_calls.clear()
    again = load_folder(root, workers=1)
    assert decode_calls == []
    assert torch.equal(again.x, first.x) and again.paths == first.paths

    changed = root / "class1" / "2.png"
    before = changed.stat().st_mtime_ns
    _save(changed, np.zeros((8, 8, 3), np.uint8))
    os.utime(changed, ns=(before + 10**9, before + 10**9))
    decode_calls.clear()
    after_change = load_folder(root, workers=1)
    assert decode_calls == ["2.png"]
    assert (after_change.x[5] == 0).all() and torch.equal(after_change.x[:5], first.x[:5])

    (root / "class0" / "1.png").unlink()
    _save(root / "class0" / "9.png", _noise(99, (8, 8, 3)))
    decode_calls.clear()
    after_edit = load_folder(root, workers=1)
    assert decode_calls == ["9.png"]
    assert after_edit.paths == [
        "class0/0.png",
        "class0/2.png",
        "class0/9.png",
        "class1/0.png",
        "class1/1.png",
        "class1/2.png",
    ]

    decode_calls.clear()
    load_folder(root, workers=1, image_size=(4, 4))  # other options: a cache of their own
    assert len(decode_calls) == 6
    decode_calls.clear()
    load_folder(root, workers=1, use_cache=False)
    assert len(decode_calls) == 6


def test_cache_remembers_bad_files_and_a_moved_folder_is_decoded_again(
    tmp_path: Path, decode_calls: list[str]
) -> None:
    root = _dataset(tmp_path / "data", n_classes=2, per_class=2)
    (root / "class0" / "empty.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="left out 1"):
        load_folder(root, workers=1, on_bad_file="skip")
    decode_calls.clear()
    with pytest.raises(DataError, match=r"class0/empty\.png"):
        load_folder(root, workers=1)  # same verdict, from the cache
    assert decode_calls == []
    shutil.move(root, tmp_path / "moved")
    with pytest.warns(UserWarning, match="left out 1"):
        load_folder(tmp_path / "moved", workers=1, on_bad_file="skip")
    assert len(decode_calls) == 5


# --- load_folder: worker processes --------------------------------------------------------


def test_worker_pool_gives_the_same_arrays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    for i in range(70):
        _save(root / f"class{i % 5}" / f"{i:03d}.png", _noise(i, (6, 6, 3)))
    (root / "class0" / "broken.png").write_bytes(b"not a png")
    monkeypatch.setattr(folder_module, "_MIN_PARALLEL_FILES", 2)  # few, tiny files
    used_pool: list[int] = []
    real_pool = folder_module._decode_in_pool

    def spying(decode: Any, paths: list[str], arguments: tuple, workers: int) -> list:
        used_pool.append(workers)
        return real_pool(decode, paths, arguments, workers)

    monkeypatch.setattr(folder_module, "_decode_in_pool", spying)

    with pytest.warns(UserWarning, match="left out 1"):
        serial = load_folder(root, workers=1, on_bad_file="skip", use_cache=False)
    assert used_pool == []
    with pytest.warns(UserWarning, match="left out 1"):
        parallel = load_folder(root, workers=2, on_bad_file="skip", use_cache=False)
    assert used_pool == [2]
    assert torch.equal(parallel.x, serial.x) and torch.equal(parallel.y, serial.y)
    assert parallel.paths == serial.paths and parallel.skipped == serial.skipped
    assert parallel.skipped[0].path == "class0/broken.png"
    with pytest.raises(DataError, match=r"class0/broken\.png: the file is not an image"):
        load_folder(root, workers=2, use_cache=False)


def test_a_script_without_a_main_guard_can_use_the_pool(tmp_path: Path) -> None:
    """Workers must not run the user's script again (spawn and forkserver would)."""
    root = tmp_path / "data"
    for i in range(8):
        _save(root / f"class{i % 2}" / f"{i}.png", _noise(i, (6, 6, 3)))
    script = tmp_path / "train.py"
    script.write_text(
        "import siamese.data.folders.decoded as folder\n"
        "from siamese.data.folders.loading import load_folder\n"
        "folder._MIN_PARALLEL_FILES = 2\n"
        "calls = []\n"
        "real = folder._decode_in_pool\n"
        "folder._decode_in_pool = lambda *a: calls.append(1) or real(*a)\n"
        f"data = load_folder({str(root)!r}, workers=2, use_cache=False)\n"
        "assert calls and len(data) == 8\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_decoder_module_does_not_import_torch() -> None:
    """Worker processes import it: numpy and Pillow only, so that it is cheap to import."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('decoder', {image_files.__file__!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_file_replaced_with_its_old_date_is_decoded_again(
    tmp_path: Path, decode_calls: list[str]
) -> None:
    """cp -p / rsync -t keep the modification time: the change time and inode still differ."""
    root = _dataset(tmp_path / "data", n_classes=2, per_class=2)
    first = load_folder(root, workers=1)
    target = root / "class0" / "1.png"
    old = target.stat()
    replacement = _save(tmp_path / "new.png", np.zeros((8, 8, 3), np.uint8))
    os.replace(replacement, target)
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert target.stat().st_mtime_ns == old.st_mtime_ns
    decode_calls.clear()
    again = load_folder(root, workers=1)
    assert decode_calls == ["1.png"]
    assert (again.x[1] == 0).all() and not torch.equal(again.x[1], first.x[1])


def test_a_failure_to_read_is_not_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that could not be opened (permission, vanished) is tried again next time; a
    file whose content is bad is remembered."""
    root = _dataset(tmp_path / "data", n_classes=2, per_class=3)
    real = image_files.decode_images
    blocked = str(root / "class1" / "0.png")

    def first_time_denied(paths: list[str], *args: object) -> list:
        out = real(paths, *args)
        return [
            BadImageError(p, "cannot be read (permission denied)", lasting=False)
            if p == blocked
            else o
            for p, o in zip(paths, out, strict=True)
        ]

    monkeypatch.setattr(image_files, "decode_images", first_time_denied)
    with pytest.warns(UserWarning, match="left out 1"):
        load_folder(root, workers=1, on_bad_file="skip")
    monkeypatch.setattr(image_files, "decode_images", real)
    assert len(load_folder(root, workers=1)) == 6  # read again, now that it can be


def test_access_errors_are_marked_as_passing() -> None:
    with pytest.raises(BadImageError) as err:
        decode_image("/nonexistent/picture.png")
    assert err.value.lasting is False
