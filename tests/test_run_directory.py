import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from siamese.errors import OutputError
from siamese.models import ConvNet, EmbeddingNet
from siamese.run_directory import prepare_run_directory, save_model, write_json_atomic


def test_prepare_creates_and_rejects(tmp_path) -> None:
    out = prepare_run_directory(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        prepare_run_directory(tmp_path / "f")
    with pytest.raises(OutputError, match="cannot write"):
        prepare_run_directory(tmp_path / "f" / "sub")


def test_model_round_trip_without_pickle(tmp_path) -> None:
    model = EmbeddingNet(ConvNet(widths=(8, 16)), embedding_dim=4)
    save_model(tmp_path, model, (1, 28, 28), {"widths": (8, 16), "embedding_dim": 4})
    description = json.loads((tmp_path / "model.json").read_text())
    weights = (tmp_path / "model.safetensors").read_bytes()
    assert description["sha256"] == hashlib.sha256(weights).hexdigest()
    assert description["architecture"]["widths"] == [8, 16]
    clone = EmbeddingNet(ConvNet(widths=(8, 16)), embedding_dim=4)
    clone.load_state_dict(load_file(tmp_path / "model.safetensors"))
    x = torch.randint(0, 255, (3, 1, 28, 28), dtype=torch.uint8)
    model.eval()
    clone.eval()
    torch.testing.assert_close(model(x), clone(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_json_is_written_atomically(tmp_path) -> None:
    write_json_atomic(tmp_path / "m.json", {"b": 1.5, "a": [1, 2]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1, 2], "b": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
