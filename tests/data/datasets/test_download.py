"""Downloads against a real HTTP server on 127.0.0.1 whose misbehaviour is chosen by path."""

from __future__ import annotations

import hashlib
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from siamese import __version__
from siamese.data.datasets.download import download_file, file_digest, verify_checksum
from siamese.errors import ConfigError, DataError
from tests.loopback_http import Server

PAYLOAD = bytes(range(256)) * 800  # 200 KiB: several read chunks
SMALL = b"hello, glyphs\n" * 100


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


@pytest.fixture(autouse=True)
def _served_files(server: Server) -> None:
    server.files.update({"payload.bin": PAYLOAD, "small.txt": SMALL})


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_downloads_into_new_directories_with_user_agent(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "payload.bin"
    got = download_file([server.url("files", "payload.bin")], dest, sha256(PAYLOAD))
    assert got == dest and dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == ["payload.bin"]
    assert server.user_agents == [f"siamese/{__version__}"]


def test_corrupt_file_is_rejected_and_removed(server: Server, tmp_path: Path) -> None:
    url = server.url("corrupt", "payload.bin")
    with pytest.raises(DataError, match="checksum mismatch") as info:
        download_file([url], tmp_path / "payload.bin", sha256(PAYLOAD))
    message = str(info.value)
    assert url in message and hashlib.sha256(PAYLOAD).hexdigest() in message
    assert leftovers(tmp_path) == []


def test_cut_off_transfer_is_an_error_not_a_short_file(server: Server, tmp_path: Path) -> None:
    url = server.url("cut", "payload.bin")
    # No checksum: only the announced length can tell that the file is incomplete.
    with pytest.raises(DataError, match="cut off") as info:
        download_file([url], tmp_path / "payload.bin", None)
    assert url in str(info.value) and str(len(PAYLOAD)) in str(info.value)
    assert leftovers(tmp_path) == []


def test_failed_mirror_moves_on_to_the_next(server: Server, tmp_path: Path) -> None:
    urls = [
        server.url("missing", "small.txt"),
        server.url("corrupt", "small.txt"),
        server.url("files", "small.txt"),
    ]
    dest = download_file(urls, tmp_path / "small.txt", sha256(SMALL))
    assert dest.read_bytes() == SMALL
    assert server.requests == Counter(
        {"/missing/small.txt": 1, "/corrupt/small.txt": 1, "/files/small.txt": 1}
    )
    assert leftovers(tmp_path) == ["small.txt"]


def test_server_that_does_not_answer_times_out(server: Server, tmp_path: Path) -> None:
    url = server.url("slow", "small.txt")
    start = time.monotonic()
    with pytest.raises(DataError, match=r"timed out.*0\.5 s timeout") as info:
        download_file([url], tmp_path / "small.txt", sha256(SMALL), timeout=0.5)
    assert time.monotonic() - start < 3
    assert url in str(info.value)
    assert leftovers(tmp_path) == []


def test_transfer_that_stalls_midway_times_out(server: Server, tmp_path: Path) -> None:
    url = server.url("stall", "payload.bin")
    with pytest.raises(DataError, match=r"timed out: no data for 0\.5 s") as info:
        download_file([url], tmp_path / "payload.bin", None, timeout=0.5)
    assert url in str(info.value)
    assert leftovers(tmp_path) == []


def test_md5_checksum(server: Server, tmp_path: Path) -> None:
    dest = download_file([server.url("files", "small.txt")], tmp_path / "s.txt", md5(SMALL))
    assert dest.read_bytes() == SMALL
    with pytest.raises(DataError, match="md5"):
        download_file([server.url("corrupt", "small.txt")], tmp_path / "t.txt", md5(SMALL))
    assert leftovers(tmp_path) == ["s.txt"]


def test_present_valid_file_is_not_downloaded_again(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "small.txt"
    dest.write_bytes(SMALL)
    url = server.url("files", "small.txt")
    assert download_file([url], dest, sha256(SMALL)) == dest
    assert download_file([url], dest, md5(SMALL)) == dest
    # Without a checksum an existing file is trusted: downloads are never left partial.
    assert download_file([url], dest, None) == dest
    assert server.requests.total() == 0


def test_present_corrupt_file_is_replaced(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "small.txt"
    dest.write_bytes(SMALL[:-1])
    download_file([server.url("files", "small.txt")], dest, sha256(SMALL))
    assert dest.read_bytes() == SMALL and server.requests.total() == 1


@pytest.mark.parametrize("kind", ["missing", "corrupt", "cut", "reset"])
def test_failed_download_leaves_previous_file_untouched(
    server: Server, tmp_path: Path, kind: str
) -> None:
    dest = tmp_path / "payload.bin"
    dest.write_bytes(SMALL)  # a good file of an older version
    with pytest.raises(DataError, match="left as it was"):
        download_file([server.url(kind, "payload.bin")], dest, sha256(PAYLOAD))
    assert dest.read_bytes() == SMALL
    assert leftovers(tmp_path) == ["payload.bin"]


def test_progress_reports_increasing_counts_and_total(server: Server, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    during: list[list[str]] = []

    def progress(done: int, total: int | None) -> None:
        calls.append((done, total))
        during.append(leftovers(tmp_path))

    download_file(
        [server.url("files", "payload.bin")], tmp_path / "p.bin", sha256(PAYLOAD), progress=progress
    )
    # While the bytes arrive they live only in a hidden .part file next to the destination.
    assert all(
        len(names) == 1 and names[0].startswith(".p.bin.") and names[0].endswith(".part")
        for names in during
    )
    assert leftovers(tmp_path) == ["p.bin"]
    counts = [done for done, _ in calls]
    assert len(calls) > 1 and counts == sorted(set(counts))
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert {total for _, total in calls} == {len(PAYLOAD)}


def test_missing_content_length_gives_unknown_total(server: Server, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    dest = download_file(
        [server.url("nolength", "payload.bin")],
        tmp_path / "p.bin",
        sha256(PAYLOAD),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert dest.read_bytes() == PAYLOAD
    assert calls[-1] == (len(PAYLOAD), None)


def test_interrupt_removes_partial_file(server: Server, tmp_path: Path) -> None:
    def interrupt(done: int, total: int | None) -> None:
        raise KeyboardInterrupt

    url = server.url("files", "payload.bin")
    with pytest.raises(KeyboardInterrupt):
        download_file([url], tmp_path / "new.bin", None, progress=interrupt)
    assert leftovers(tmp_path) == []
    dest = tmp_path / "payload.bin"
    dest.write_bytes(SMALL)
    with pytest.raises(KeyboardInterrupt):
        download_file([url], dest, sha256(PAYLOAD), progress=interrupt)
    assert dest.read_bytes() == SMALL
    assert leftovers(tmp_path) == ["payload.bin"]
    assert server.requests.total() == 2


def test_progress_errors_pass_through(server: Server, tmp_path: Path) -> None:
    def broken(done: int, total: int | None) -> None:
        raise ValueError("bug in the progress bar")

    # A bug in the caller's callback is not a mirror failure: no next mirror, no DataError.
    urls = [server.url("files", "small.txt"), server.url("files", "payload.bin")]
    with pytest.raises(ValueError, match="progress bar"):
        download_file(urls, tmp_path / "s.txt", None, progress=broken)
    assert server.requests.total() == 1 and leftovers(tmp_path) == []


def test_every_mirror_failing_lists_reasons_and_manual_step(server: Server, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # nothing listens here once the socket closes
    urls = [
        server.url("missing", "small.txt"),
        server.url("reset", "small.txt"),
        f"http://127.0.0.1:{closed_port}/small.txt",
        "not a url",
    ]
    dest = tmp_path / "data" / "small.txt"
    with pytest.raises(DataError) as info:
        download_file(urls, dest, sha256(SMALL), timeout=2)
    message = str(info.value)
    for url, reason in zip(
        urls, ["HTTP error 404", "connection failed", "cannot connect", "not a URL"], strict=True
    ):
        assert f"{url}: {reason}" in message
    assert f"save it as {dest.resolve()}" in message
    assert hashlib.sha256(SMALL).hexdigest() in message
    assert leftovers(dest.parent) == []


def test_single_url_string_and_bad_arguments(server: Server, tmp_path: Path) -> None:
    dest = download_file(server.url("files", "small.txt"), tmp_path / "s.txt", None)
    assert dest.read_bytes() == SMALL
    with pytest.raises(ConfigError, match="no URL"):
        download_file([], tmp_path / "x", None)
    with pytest.raises(ConfigError, match="sha256:<64 hex digits>"):
        download_file([server.url("files", "small.txt")], tmp_path / "x", "sha1:abc")
    with pytest.raises(DataError, match="not a file"):
        download_file([server.url("files", "small.txt")], tmp_path, None)
    assert server.requests.total() == 1


def test_verify_checksum_accepts_matching_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(PAYLOAD)
    verify_checksum(path, sha256(PAYLOAD))
    verify_checksum(path, md5(PAYLOAD).upper().replace("MD5", "md5"))
    assert file_digest(path, "sha256") == hashlib.sha256(PAYLOAD).hexdigest()


def test_verify_checksum_mismatch_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(PAYLOAD[:-1])
    expected = hashlib.md5(PAYLOAD).hexdigest()
    with pytest.raises(DataError) as info:
        verify_checksum(path, f"md5:{expected}")
    message = str(info.value)
    assert str(path) in message and expected in message
    assert hashlib.md5(PAYLOAD[:-1]).hexdigest() in message
    assert "Delete it and download it again" in message and "official source" in message


def test_verify_checksum_missing_file_and_bad_spec(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        verify_checksum(tmp_path / "nope", sha256(b""))
    for bad in ["abc", "sha256:xyz", "sha256:" + "0" * 63, "crc32:00000000"]:
        with pytest.raises(ConfigError, match="not 'sha256"):
            verify_checksum(tmp_path / "nope", bad)
