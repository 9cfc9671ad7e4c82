"""IDX files and tar/zip archives: good ones read back, bad ones give errors naming the file."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from siamese.data.datasets.archives import extract_archive, list_members, read_members
from siamese.data.datasets.idx import read_idx
from siamese.errors import DataError


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """An IDX file of a uint8 array, as MNIST's are written."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def test_idx_round_trip_gz_and_raw(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    for compress in (True, False):
        path = write_idx(
            tmp_path / f"x{int(compress)}.gz"[: None if compress else -3], images, compress
        )
        back = read_idx(path, expected_ndim=3)
        assert back.dtype == np.uint8 and np.array_equal(back, images)
        assert back.flags.writeable


def test_idx_big_endian_types_come_back_native(tmp_path: Path) -> None:
    values = np.array([1.5, -2.25, 3e9], dtype=">f4")
    raw = bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 3) + values.tobytes()
    (tmp_path / "f.idx").write_bytes(raw)
    assert np.array_equal(read_idx(tmp_path / "f.idx"), values.astype(np.float32))


def test_wrong_magic_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x12\x34\x08\x03" + b"\0" * 12))
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte\.gz: not an IDX file \(magic number 12340803"
    ):
        read_idx(path)


def test_truncated_idx_says_so(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x.gz", np.zeros((10, 4, 4), np.uint8))
    payload = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(payload[:-5]))
    with pytest.raises(
        DataError, match=r"x\.gz: the header declares shape \(10, 4, 4\).*truncated"
    ):
        read_idx(path)


def test_cut_off_gzip_says_download_again(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x.gz", np.zeros((100, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r"x\.gz: not a complete gzip file.*download it again"):
        read_idx(path)


def test_images_and_labels_swapped_is_spotted(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels.gz", np.zeros((5,), np.uint8))
    with pytest.raises(DataError, match="declares 1 dimensions, but an images file has 3"):
        read_idx(path, expected_ndim=3)


def test_zero_byte_idx(tmp_path: Path) -> None:
    (tmp_path / "x.idx").write_bytes(b"")
    with pytest.raises(DataError, match=r"x\.idx: not an IDX file \(magic number missing"):
        read_idx(tmp_path / "x.idx")


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return path


def test_tar_and_zip_members_read_back(tmp_path: Path) -> None:
    members = {"root/a/1.txt": b"one", "root/b/2.txt": b"two"}
    tar = _tar(tmp_path / "d.tar.gz", members)
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    for archive in (tar, tmp_path / "d.zip"):
        assert {m.name: p for m, p in read_members(archive)} == members
        assert [m.size for m in list_members(archive)] == [3, 3]


@pytest.mark.parametrize("bad_name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_members_escaping_the_target_are_refused_before_anything_is_written(
    tmp_path: Path, bad_name: str
) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", {"good/1.txt": b"x", bad_name: b"evil"})
    target = tmp_path / "out" / "extracted"
    with pytest.raises(DataError, match=r"bad\.tar\.gz: the member .* outside the target"):
        extract_archive(archive, target)
    assert not target.exists() and not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out").exists()  # refused before even the parent was made


def test_zip_slip_is_refused(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("ok.txt", b"x")
        zf.writestr("../../escape.txt", b"evil")
    with pytest.raises(DataError, match=r"bad\.zip: the member '\.\./\.\./escape\.txt'"):
        extract_archive(tmp_path / "bad.zip", tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("data/passwd")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataError, match=r"link\.tar: the member 'data/passwd' is a link"):
        list_members(archive)


def test_truncated_tar_gz_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    payload = np.random.default_rng(0).bytes(200_000)
    archive = _tar(tmp_path / "t.tar.gz", {"d/a.bin": payload, "d/b.bin": payload})
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match=r"t\.tar\.gz: .*(truncated|damaged)"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["t.tar.gz"]


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"this is text")
    with pytest.raises(DataError, match=r"x\.zip: cannot read the archive"):
        list_members(tmp_path / "x.zip")


def test_extraction_into_place(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "d.tar.gz", {"top/c1/1.txt": b"a", "top/c2/2.txt": b"b"})
    target = extract_archive(archive, tmp_path / "x")
    assert (target / "top" / "c1" / "1.txt").read_bytes() == b"a"
    with pytest.raises(DataError, match="already exists"):
        extract_archive(archive, target)
