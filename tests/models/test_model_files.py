"""Model files: safetensors + JSON, fingerprinted, never unpickled."""

import hashlib
import json

import pytest
import torch

from siamese.errors import CheckpointError
from siamese.models import build_embedding_net
from siamese.models.files import load_model, save_model


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


def test_load_model_refuses_altered_missing_and_foreign_files(tmp_path) -> None:
    spec = {"encoder": "mlp", "encoder_options": {"hidden": [8]}, "embedding_dim": 4}
    save_model(tmp_path, build_embedding_net(spec, (6,)), (6,))
    assert load_model(tmp_path)(torch.zeros(2, 6)).shape == (2, 4)
    weights = tmp_path / "model.safetensors"
    payload = bytearray(weights.read_bytes())
    payload[-1] ^= 1
    weights.write_bytes(bytes(payload))
    with pytest.raises(
        CheckpointError, match=r"does not match the fingerprint.*siamese train --resume --out"
    ):
        load_model(tmp_path)
    description = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**description, "format": "other/9"}))
    with pytest.raises(CheckpointError, match="format 'other/9'"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="holds no finished model"):
        load_model(tmp_path / "nothing")


def test_save_model_is_public_and_saves_what_fit_returns(tmp_path) -> None:
    import siamese

    model = siamese.EmbeddingNet(siamese.ConvNet(widths=(8, 8)), embedding_dim=4)
    siamese.save_model(tmp_path, model, (1, 28, 28))
    x = torch.randint(0, 255, (2, 1, 28, 28), dtype=torch.uint8)
    model.eval()
    torch.testing.assert_close(siamese.load_model(tmp_path)(x), model(x))
