"""load_dataset on synthetic copies of each layout: right data back, clear errors for bad input."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import siamese
from siamese.data.local_copies import dataset_status
from siamese.errors import ConfigError, DataError
from tests.data.datasets.test_idx_and_archives import write_idx


def _mnist_dir(root: Path, n_train: int = 12, n_labels: int | None = None) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(n_labels or n_train) % 10)
    return root


def test_mnist_layout_reads_images_and_labels(tmp_path: Path) -> None:
    data = siamese.load_dataset("mnist", data_dir=_mnist_dir(tmp_path))
    assert tuple(data.x.shape) == (12, 1, 28, 28) and data.y.tolist() == [*range(10), 0, 1]


def test_named_datasets_resize_to_image_size(tmp_path: Path) -> None:
    root = _mnist_dir(tmp_path)
    full = siamese.load_dataset("mnist", data_dir=root)
    small = siamese.load_dataset("mnist", data_dir=root, image_size=[14, 7])
    assert small.x.dtype == torch.uint8 and tuple(small.x.shape) == (12, 1, 14, 7)
    assert torch.equal(small.y, full.y)
    square = siamese.load_dataset("mnist", data_dir=root, image_size=14)
    assert tuple(square.x.shape[-2:]) == (14, 14)
    turned = siamese.load_dataset("mnist", data_dir=root, image_size=14, rotated_classes=True)
    assert tuple(turned.x.shape) == (48, 1, 14, 14) and len(turned.classes) == 40
    assert torch.equal(turned.x[:12], square.x) and turned.y[12:24].tolist() == [
        y + 10 for y in full.y.tolist()
    ]
    with pytest.raises(ConfigError, match="rotated_classes must be true or false"):
        siamese.load_dataset("mnist", data_dir=root, rotated_classes="yes")
    for bad in ((0, 5), "28", (28,), True, (2.5, 3)):
        with pytest.raises(ConfigError, match="mnist: image_size must be"):
            siamese.load_dataset("mnist", data_dir=root, image_size=bad)


def test_labels_count_differs_from_images(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"train-images-idx3-ubyte\.gz holds 12 images but .*train-labels-idx1-ubyte\.gz holds 9 labels",
    ):
        siamese.load_dataset("mnist", data_dir=_mnist_dir(tmp_path, n_labels=9))


def test_missing_files_name_every_expected_path_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        siamese.load_dataset("fashion-mnist", "test", data_dir=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "fashion-mnist" / "t10k-images-idx3-ubyte.gz") in message
    assert "siamese datasets download fashion-mnist" in message


def test_the_environment_variable_is_the_default_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIAMESE_DATA_DIR", str(_mnist_dir(tmp_path)))
    assert len(siamese.load_dataset("mnist")) == 12


def test_unknown_names_splits_and_options() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown dataset 'omniglott' \(did you mean 'omniglot'\?\)"
    ):
        siamese.load_dataset("omniglott")
    with pytest.raises(
        ConfigError, match="omniglot has the splits 'background', 'evaluation', not 'train'"
    ):
        siamese.load_dataset("omniglot", "train")
    with pytest.raises(
        ConfigError, match=r"mnist: unknown option\(s\) \['size'\]; valid options: face, image_size"
    ):
        siamese.load_dataset("mnist", size=(28, 28))
    with pytest.raises(ConfigError, match="give a path after 'folder:'"):
        siamese.load_dataset("folder:")


def _pgm(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PPM")  # P5 for mode L
    return buffer.getvalue()


def _orl_members(skip: str | None = None) -> dict[str, bytes]:
    members = {}
    for s in range(1, 41):
        for i in range(1, 11):
            name = f"orl_faces/s{s}/{i}.pgm"
            if name != skip:
                members[name] = _pgm(np.full((112, 92), s * 6 + i, dtype=np.uint8))
    members["orl_faces/README"] = b"readme"
    return members


def _write_tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))


def test_orl_from_tar_zip_and_extracted_folder_agree(tmp_path: Path) -> None:
    members = _orl_members()
    _write_tar(tmp_path / "a" / "orl_faces" / "orl_faces.tar.gz", members)
    (tmp_path / "b" / "orl_faces").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "b" / "orl_faces" / "att_faces.zip", "w") as zf:
        for name, payload in members.items():
            zf.writestr(name.removeprefix("orl_faces/"), payload)
    for name, payload in members.items():
        path = tmp_path / "c" / "orl_faces" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    loaded = [siamese.load_dataset("orl", data_dir=tmp_path / d) for d in "abc"]
    for data in loaded:
        assert tuple(data.x.shape) == (400, 1, 112, 92)
        assert torch.equal(data.x, loaded[0].x) and torch.equal(data.y, loaded[0].y)
    assert loaded[0].x[loaded[0].paths.index("s3/7.pgm"), 0, 0, 0].item() == 3 * 6 + 7


def test_orl_with_a_missing_image_names_it(tmp_path: Path) -> None:
    _write_tar(
        tmp_path / "orl_faces" / "orl_faces.tar.gz", _orl_members(skip="orl_faces/s12/4.pgm")
    )
    with pytest.raises(
        DataError, match=r"orl_faces\.tar\.gz: unexpected layout .*1 images missing \(s12/4\.pgm"
    ):
        siamese.load_dataset("orl", data_dir=tmp_path)


def test_orl_with_a_corrupt_image_names_the_member(tmp_path: Path) -> None:
    members = _orl_members()
    members["orl_faces/s2/5.pgm"] = b"P5\n92 112\n255\n" + b"\0" * 100  # cut short
    _write_tar(tmp_path / "orl_faces" / "orl_faces.tar.gz", members)
    with pytest.raises(
        DataError,
        match=r"orl_faces\.tar\.gz:orl_faces/s2/5\.pgm: not a readable image .*the ORL copy is damaged",
    ):
        siamese.load_dataset("orl", data_dir=tmp_path)


def test_orl_tar_with_an_escaping_member_is_refused(tmp_path: Path) -> None:
    members = _orl_members()
    members["../../outside.pgm"] = members["orl_faces/s1/1.pgm"]
    _write_tar(tmp_path / "orl_faces" / "orl_faces.tar.gz", members)
    with pytest.raises(DataError, match="outside the target directory"):
        siamese.load_dataset("orl", data_dir=tmp_path)


def _omniglot_png(ink: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(ink == 0).convert("1").save(buffer, format="PNG")  # white background
    return buffer.getvalue()


def test_omniglot_zip_and_folder_layouts_match_the_npz_pack(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    alphabets = ["Beta_script", "Alpha_script"]
    rows = []  # (alphabet, character, char_id, drawer, ink image)
    char_id = 0
    for alphabet in alphabets:
        for character in (1, 2):
            char_id += 1
            for drawer in (1, 2, 3):
                ink = (rng.random((105, 105)) < 0.1).astype(np.uint8) * 255
                rows.append((alphabet, character, char_id, drawer, ink))
    members = {
        f"images_background/{a}/character{c:02d}/{i:04d}_{d:02d}.png": _omniglot_png(ink)
        for a, c, i, d, ink in rows
    }
    zip_root = tmp_path / "zip" / "omniglot"
    zip_root.mkdir(parents=True)
    with zipfile.ZipFile(zip_root / "images_background.zip", "w") as zf:
        for name, payload in reversed(members.items()):  # archive order must not matter
            zf.writestr(name, payload)
    for name, payload in members.items():
        path = tmp_path / "folder" / "omniglot" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    order = sorted(range(len(rows)), key=lambda r: (rows[r][0], rows[r][1], rows[r][3]))
    names = sorted(alphabets)
    pack_root = tmp_path / "pack" / "omniglot"
    pack_root.mkdir(parents=True)
    np.savez(
        pack_root / "omniglot_background.npz",
        images=np.stack([(rows[r][4] == 0).astype(np.uint8) for r in order]),
        alphabet=np.array([names.index(rows[r][0]) for r in order], dtype=np.int16),
        alphabet_names=np.array(names),
        character=np.array([rows[r][1] for r in order], dtype=np.int16),
        char_id=np.array([rows[r][2] for r in order], dtype=np.int16),
        drawer=np.array([rows[r][3] for r in order], dtype=np.int8),
        label=np.repeat(np.arange(4), 3).astype(np.int16),
        path=np.array(
            [
                f"images_background/{rows[r][0]}/character{rows[r][1]:02d}/{rows[r][2]:04d}_{rows[r][3]:02d}.png"
                for r in order
            ]
        ),
    )
    loaded = [
        siamese.load_dataset("omniglot", data_dir=tmp_path / layout)
        for layout in ("pack", "zip", "folder")
    ]
    for data in loaded:
        assert torch.equal(data.x, loaded[0].x) and torch.equal(data.y, loaded[0].y)
        assert data.classes == [
            "Alpha_script/character01",
            "Alpha_script/character02",
            "Beta_script/character01",
            "Beta_script/character02",
        ]
        assert data.paths == loaded[0].paths
        for key in ("alphabet", "character", "drawer", "char_id"):
            assert torch.equal(data.meta[key], loaded[0].meta[key]), key
    assert loaded[0].x.max().item() == 255
    # the zip was decoded once and cached: a second load gives the same arrays
    again = siamese.load_dataset("omniglot", data_dir=tmp_path / "zip")
    assert torch.equal(again.x, loaded[1].x)


def test_omniglot_pack_without_its_arrays_is_named(tmp_path: Path) -> None:
    (tmp_path / "omniglot").mkdir()
    np.savez(tmp_path / "omniglot" / "omniglot_evaluation.npz", images=np.zeros((2, 105, 105)))
    with pytest.raises(DataError, match=r"omniglot_evaluation\.npz: the pack lacks the arrays"):
        siamese.load_dataset("omniglot", "evaluation", data_dir=tmp_path)


def test_glyphs_unknown_option() -> None:
    with pytest.raises(ConfigError, match=r"glyphs: unknown option\(s\) \['font'\]"):
        siamese.load_dataset("glyphs", font="x")


def test_decompressed_idx_files_are_read_too(tmp_path: Path) -> None:
    folder = _mnist_dir(tmp_path) / "mnist"
    for gz in folder.glob("*.gz"):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert len(siamese.load_dataset("mnist", data_dir=tmp_path)) == 12


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(
        buffer, format="JPEG"
    )
    return buffer.getvalue()


def test_celebrity_faces_from_extracted_train_and_val_folders(tmp_path: Path) -> None:
    folder = tmp_path / "5-celebrity-faces"
    for split, n in (("train", 3), ("val", 2)):
        for person in ("ann", "bob"):
            for i in range(n):
                path = folder / split / person / f"{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(_jpeg(i))
    data = siamese.load_dataset("5-celebrity-faces", "val", data_dir=tmp_path)
    assert tuple(data.x.shape) == (4, 3, 160, 160) and data.classes == ["ann", "bob"]
    assert dataset_status("5-celebrity-faces", tmp_path).state == "ready"


def test_check_and_load_accept_the_same_orl_layouts(tmp_path: Path) -> None:
    for name, payload in _orl_members().items():
        path = tmp_path / "orl_faces" / "att_faces" / name.removeprefix("orl_faces/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    assert dataset_status("orl", tmp_path).state == "ready"
    assert len(siamese.load_dataset("orl", data_dir=tmp_path)) == 400


def _tar_of(path: Path, members: dict[str, bytes]) -> Path:
    _write_tar(path, members)
    return path


def test_folder_archive_errors_name_the_archive_member_and_mac_metadata_is_ignored(
    tmp_path: Path,
) -> None:
    members = {f"set/{c}/{i}.jpg": _jpeg(i) for c in ("a", "b") for i in range(2)}
    members["__MACOSX/set/a/._0.jpg"] = b"resource fork"
    archive = _tar_of(tmp_path / "set.tar.gz", {**members, "set/b/bad.jpg": b"not a jpeg"})
    with pytest.raises(DataError) as err:
        siamese.load_dataset(f"folder:{archive}")
    message = str(err.value)
    # The resource fork under __MACOSX/ is not counted; the bad member is named.
    assert f"1 of the 5 image files in {archive}" in message and "\n  b/bad.jpg:" in message
    assert "extracted" not in message
    good = _tar_of(tmp_path / "good.tar.gz", members)
    assert siamese.load_dataset(f"folder:{good}").classes == ["a", "b"]


def test_a_replaced_archive_is_extracted_again_in_place(tmp_path: Path) -> None:
    from siamese.cache import cache_dir

    archive = tmp_path / "set.tar.gz"
    _write_tar(archive, {f"set/{c}/{i}.jpg": _jpeg(i) for c in ("a", "b") for i in range(2)})
    first = siamese.load_dataset(f"folder:{archive}")
    _write_tar(archive, {f"set/{c}/{i}.jpg": _jpeg(i) for c in ("a", "b", "c") for i in range(2)})
    second = siamese.load_dataset(f"folder:{archive}")
    assert first.classes == ["a", "b"] and second.classes == ["a", "b", "c"]
    extracted = [p for p in (cache_dir() / "extracted").iterdir() if not p.name.startswith(".")]
    identity = {p.name for p in extracted}
    assert len([n for n in identity if n]) >= 1
    again = siamese.load_dataset(f"folder:{archive}")
    assert again.classes == ["a", "b", "c"]
    assert {
        p.name for p in (cache_dir() / "extracted").iterdir() if not p.name.startswith(".")
    } == identity


def test_cache_and_data_directories_do_not_overlap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from siamese.cache import cache_dir
    from siamese.data.datasets.catalog import resolve_data_dir

    monkeypatch.delenv("SIAMESE_CACHE_DIR")
    monkeypatch.delenv("SIAMESE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resolve_data_dir() == tmp_path / "siamese"
    assert cache_dir() == tmp_path / "siamese" / "cache"
