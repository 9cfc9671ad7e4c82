"""`siamese datasets list | check | download` against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

import siamese
from siamese.data.datasets import catalog
from siamese.data.datasets.catalog import RemoteFile
from tests.cli_runner import run_cli as run
from tests.data.datasets.test_idx_and_archives import write_idx
from tests.loopback_http import Server


def _mnist_files(tmp_path: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    made = {}
    for prefix, n in (("train", 30), ("t10k", 10)):
        images = write_idx(tmp_path / f"{prefix}-i.gz", rng.integers(0, 256, (n, 28, 28)))
        labels = write_idx(tmp_path / f"{prefix}-l.gz", np.arange(n) % 10)
        made[f"{prefix}-images-idx3-ubyte.gz"] = images.read_bytes()
        made[f"{prefix}-labels-idx1-ubyte.gz"] = labels.read_bytes()
    return made


@pytest.fixture
def local_mnist(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, bytes]:
    """The mnist catalog entry pointed at the loopback server: a 404 mirror, then the files."""
    files = _mnist_files(tmp_path)
    server.files.update(files)
    remote = tuple(
        RemoteFile(
            name,
            (server.url("missing", name), server.url("files", name)),
            "sha256:" + hashlib.sha256(payload).hexdigest(),
        )
        for name, payload in files.items()
    )
    entry = dataclasses.replace(catalog.DATASETS["mnist"], files=remote)
    monkeypatch.setitem(catalog.DATASETS, "mnist", entry)
    return files


def test_download_then_check_then_load(
    local_mnist: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    code, out = run(["datasets", "download", "mnist", "--data-dir", str(data_dir)], capsys)
    assert code == 0, out
    assert sorted(p.name for p in (data_dir / "mnist").iterdir()) == sorted(local_mnist)
    code, out = run(["datasets", "check", "mnist", "--data-dir", str(data_dir)], capsys)
    assert code == 0 and out.count("sha256 verified") == 4
    assert len(siamese.load_dataset("mnist", "test", data_dir=data_dir)) == 10
    code, out = run(["datasets", "list", "--data-dir", str(data_dir)], capsys)
    assert code == 0 and "mnist" in out and "ready" in out


def test_corrupt_mirror_leaves_nothing_and_says_what_to_do(
    server: Server,
    local_mnist: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    entry = catalog.DATASETS["mnist"]
    corrupt = tuple(
        dataclasses.replace(f, urls=(server.url("corrupt", f.name), server.url("cut", f.name)))
        for f in entry.files
    )
    monkeypatch.setitem(catalog.DATASETS, "mnist", dataclasses.replace(entry, files=corrupt))
    data_dir = tmp_path / "data"
    code, out = run(["datasets", "download", "mnist", "--data-dir", str(data_dir)], capsys)
    assert code == 1
    assert "checksum mismatch" in out and "cut off" in out and "by hand" in out
    assert not (data_dir / "mnist").exists()  # no partial file under any name, no empty folder


def test_check_reports_a_damaged_file(
    local_mnist: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    assert run(["datasets", "download", "mnist", "--data-dir", str(data_dir)], capsys)[0] == 0
    damaged = data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:-3])
    code, out = run(["datasets", "check", "mnist", "--data-dir", str(data_dir)], capsys)
    assert code == 1 and "corrupt" in out and "t10k-labels-idx1-ubyte.gz" in out
    code, out = run(["datasets", "check", "fashion-mnist", "--data-dir", str(data_dir)], capsys)
    assert code == 1 and "missing" in out
    # The command to run names the same data directory the check looked at.
    assert f"siamese datasets download fashion-mnist --data-dir {data_dir}" in out


def test_download_of_several_goes_on_past_a_failure(
    server: Server,
    local_mnist: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    entry = catalog.DATASETS["fashion-mnist"]
    gone = tuple(dataclasses.replace(f, urls=(server.url("missing", f.name),)) for f in entry.files)
    monkeypatch.setitem(catalog.DATASETS, "fashion-mnist", dataclasses.replace(entry, files=gone))
    data_dir = tmp_path / "data"
    argv = ["datasets", "download", "fashion-mnist", "mnist", "--data-dir", str(data_dir)]
    code, out = run(argv, capsys)
    assert code == 1 and "fashion-mnist failed" in out and "not downloaded: fashion-mnist" in out
    assert sorted(p.name for p in (data_dir / "mnist").iterdir()) == sorted(local_mnist)
    assert not (data_dir / "fashion-mnist").exists()


def test_download_without_published_checksum_checks_the_layout(
    server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:  # a tar with one face: not ORL
        info = tarfile.TarInfo("s1/1.pgm")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"P5\n1"))
    server.files["orl_faces.tar.gz"] = buffer.getvalue()
    entry = dataclasses.replace(
        catalog.DATASETS["orl"],
        files=(RemoteFile("orl_faces.tar.gz", (server.url("files", "orl_faces.tar.gz"),), None),),
    )
    monkeypatch.setitem(catalog.DATASETS, "orl", entry)
    data_dir = tmp_path / "data"
    code, out = run(["datasets", "download", "orl", "--data-dir", str(data_dir)], capsys)
    assert code == 1 and "not a usable copy of orl and was removed" in out
    assert not (data_dir / "orl_faces").exists()


def test_datasets_only_available_by_hand_say_how(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        ["datasets", "download", "5-celebrity-faces", "--data-dir", str(tmp_path)], capsys
    )
    assert code == 1 and "kaggle" in out.lower()
    code, out = run(["datasets", "download", "digits", "--data-dir", str(tmp_path)], capsys)
    assert code == 1 and "needs no download" in out
    code, out = run(["datasets", "download", "mnits", "--data-dir", str(tmp_path)], capsys)
    assert code == 1 and "did you mean 'mnist'" in out


def test_gzip_helper_makes_valid_files(tmp_path: Path) -> None:
    files = _mnist_files(tmp_path)
    assert gzip.decompress(files["t10k-labels-idx1-ubyte.gz"])[:4] == b"\0\0\x08\x01"


def test_a_bad_download_is_judged_alone_not_rescued_by_a_good_copy_beside_it(
    server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.data.test_sources import _orl_members

    data_dir = tmp_path / "data"
    for name, payload in _orl_members().items():  # a good extracted copy already there
        path = data_dir / "orl_faces" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    server.files["orl_faces.tar.gz"] = b"<html>moved</html>"  # what a dead link serves
    entry = dataclasses.replace(
        catalog.DATASETS["orl"],
        files=(RemoteFile("orl_faces.tar.gz", (server.url("files", "orl_faces.tar.gz"),), None),),
    )
    monkeypatch.setitem(catalog.DATASETS, "orl", entry)
    code, out = run(["datasets", "download", "orl", "--data-dir", str(data_dir)], capsys)
    assert code == 1 and "not a usable copy of orl and was removed" in out
    assert not (data_dir / "orl_faces" / "orl_faces.tar.gz").exists()
    assert [p.name for p in (data_dir / "orl_faces").iterdir()] == ["orl_faces"]  # no scratch
    assert len(siamese.load_dataset("orl", data_dir=data_dir)) == 400  # the good copy stays


def test_check_of_everything_fails_when_datasets_are_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(["datasets", "check", "--data-dir", str(tmp_path)], capsys)
    assert code == 1 and "mnist missing" in out and "siamese datasets download mnist" in out
    code, out = run(["datasets", "check", "glyphs", "--data-dir", str(tmp_path)], capsys)
    assert code == 0 and "glyphs bundled" in out


def test_digits_says_it_needs_scikit_learn_when_it_is_not_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a)
    )
    code, out = run(["datasets", "check", "digits", "--data-dir", str(tmp_path)], capsys)
    assert code == 1 and "needs scikit-learn" in out and "pip install scikit-learn" in out
    monkeypatch.setenv("COLUMNS", "200")  # the table's row on one line
    code, out = run(["datasets", "list", "--data-dir", str(tmp_path)], capsys)
    assert code == 0 and "needs scikit-learn" in out
