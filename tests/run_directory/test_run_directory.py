"""Claiming a run directory: never beside a user's files, never two runs mixed."""

import pytest

from siamese.errors import OutputError
from siamese.run_directory.layout import claim_run_directory, prepare_run_directory


def test_prepare_creates_and_rejects(tmp_path) -> None:
    out = prepare_run_directory(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        prepare_run_directory(tmp_path / "f")
    with pytest.raises(OutputError, match="cannot write"):
        prepare_run_directory(tmp_path / "f" / "sub")


def test_claim_accepts_empty_or_missing_folders(tmp_path) -> None:
    claim_run_directory(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    claim_run_directory(tmp_path / "empty")
    (tmp_path / "dot").mkdir()
    (tmp_path / "dot" / ".DS_Store").write_text("")
    claim_run_directory(tmp_path / "dot")


def test_claim_refuses_a_folder_of_other_files_even_with_force(tmp_path) -> None:
    (tmp_path / "photo.jpg").write_text("mine")
    (tmp_path / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(
            OutputError, match=r"files that are not a siamese run \(notes.txt, photo.jpg\)"
        ):
            claim_run_directory(tmp_path, force=force)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "photo.jpg"]


def test_claim_describes_another_tools_config(tmp_path) -> None:
    (tmp_path / "config.yaml").write_text("learning_rate: 0.1\nlayers: 3\n")
    with pytest.raises(
        OutputError, match=r"a config\.yaml that is not a siamese run config"
    ) as err:
        claim_run_directory(tmp_path, force=True)
    assert "learning_rate" in str(err.value)
    assert (tmp_path / "config.yaml").read_text().startswith("learning_rate")


def test_claim_refuses_a_run_unless_forced_and_force_replaces_it_whole(tmp_path) -> None:
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"x")
    (tmp_path / "model.json").write_text("{}")
    (tmp_path / "figures").mkdir()
    with pytest.raises(OutputError, match="already holds a siamese run: pass --resume"):
        claim_run_directory(tmp_path)
    claim_run_directory(tmp_path, resume=True)  # resuming is the caller's business
    assert (tmp_path / "model.json").exists()
    claim_run_directory(tmp_path, force=True)
    assert list(tmp_path.iterdir()) == []
