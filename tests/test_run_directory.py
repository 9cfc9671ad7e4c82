import hashlib
import json

import pytest
import torch

from siamese.errors import OutputError
from siamese.models import build_embedding_net
from siamese.run_directory import load_model, prepare_run_directory, save_model, write_json_atomic


def test_prepare_creates_and_rejects(tmp_path) -> None:
    out = prepare_run_directory(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        prepare_run_directory(tmp_path / "f")
    with pytest.raises(OutputError, match="cannot write"):
        prepare_run_directory(tmp_path / "f" / "sub")


def test_model_round_trip_without_pickle(tmp_path) -> None:
    spec = {"encoder": "convnet", "encoder_options": {"widths": [8, 16]}, "embedding_dim": 4}
    model = build_embedding_net(spec, (1, 28, 28))
    save_model(tmp_path, model, (1, 28, 28), {"steps": 3})
    description = json.loads((tmp_path / "model.json").read_text())
    weights = (tmp_path / "model.safetensors").read_bytes()
    assert description["sha256"] == hashlib.sha256(weights).hexdigest()
    assert description["architecture"]["encoder_options"]["widths"] == [8, 16]
    assert description["steps"] == 3
    clone = load_model(tmp_path)
    x = torch.randint(0, 255, (3, 1, 28, 28), dtype=torch.uint8)
    model.eval()
    clone.eval()
    torch.testing.assert_close(model(x), clone(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_json_is_written_atomically(tmp_path) -> None:
    write_json_atomic(tmp_path / "m.json", {"b": 1.5, "a": [1, 2]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1, 2], "b": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_load_model_refuses_altered_missing_and_foreign_files(tmp_path) -> None:
    from siamese.errors import CheckpointError

    spec = {"encoder": "mlp", "encoder_options": {"hidden": [8]}, "embedding_dim": 4}
    save_model(tmp_path, build_embedding_net(spec, (6,)), (6,))
    assert load_model(tmp_path)(torch.zeros(2, 6)).shape == (2, 4)
    weights = tmp_path / "model.safetensors"
    payload = bytearray(weights.read_bytes())
    payload[-1] ^= 1
    weights.write_bytes(bytes(payload))
    with pytest.raises(CheckpointError, match="does not match the fingerprint"):
        load_model(tmp_path)
    description = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**description, "format": "other/9"}))
    with pytest.raises(CheckpointError, match="format 'other/9'"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="holds no finished model"):
        load_model(tmp_path / "nothing")


def test_atomic_files_get_the_usual_permissions(tmp_path) -> None:
    import os
    import stat

    write_json_atomic(tmp_path / "m.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o666 & ~mask
