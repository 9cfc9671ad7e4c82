"""Model files: `model.safetensors` (the weights) + `model.json` (what rebuilds them), and a
pair classifier's head (`pair_head.safetensors`). Nothing is ever unpickled. A model trained
with your own encoder records its import path (`package.module:factory`) in `model.json`;
loading imports that path and nothing else, which runs that module's code (as a pickle would
run code): load only models you trust.

Files are written atomically (`siamese.atomic_files`), so an interrupted save never leaves a
half-written file that looks complete.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from siamese.atomic_files import write_bytes_atomic, write_json_atomic
from siamese.errors import CheckpointError, SiameseError
from siamese.models.builder import EncoderImportError
from siamese.models.embedding import EmbeddingNet, build_embedding_net
from siamese.models.siamese_net import SiameseNet

MODEL_FORMAT = "siamese-model/1"


def save_model(
    out: Path | str,
    model: EmbeddingNet,
    input_shape: tuple[int, ...],
    extra: dict[str, Any] | None = None,
) -> None:
    """Save `model.safetensors` (the weights) and `model.json` (what rebuilds it: the
    architecture spec, the input shape, a SHA-256 fingerprint of the weights file, and
    `extra` facts about the training) into the folder `out`, created if needed.

    Args:
        out: the folder (a run directory, or any other).
        model: an `EmbeddingNet` (e.g. what `fit` trained).
        input_shape: the shape of one input, e.g. (1, 28, 28).
        extra: facts written into model.json beside the description.

    Raises:
        ConfigError: the model's encoder is not one of `siamese.models`' (no spec).

    Example:
        >>> import os, tempfile
        >>> import torch
        >>> from siamese import EmbeddingNet, build_encoder, load_model, save_model
        >>> _ = torch.manual_seed(0)
        >>> net = EmbeddingNet(build_encoder("mlp", (1, 8, 8), hidden=[16]), embedding_dim=4).eval()
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save_model(folder, net, (1, 8, 8), extra={"note": "a demo"})
        ...     files = sorted(os.listdir(folder))
        ...     loaded = load_model(folder)
        >>> files
        ['model.json', 'model.safetensors']
        >>> x = torch.rand(2, 1, 8, 8)
        >>> torch.equal(loaded(x), net(x))
        True
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = model.spec
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    payload = safetensors.torch.save(state)
    write_bytes_atomic(out / "model.safetensors", payload)
    description = {
        "format": MODEL_FORMAT,
        "architecture": spec,
        "input_shape": list(input_shape),
        "input": (
            "uint8 images (N, C, H, W) scaled to [0, 1] inside the model, or float inputs "
            "already in that range; then standardised with the architecture's mean and std"
        ),
        "embedding_dim": spec["embedding_dim"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "sha256": hashlib.sha256(payload).hexdigest(),
        **(extra or {}),
    }
    write_json_atomic(out / "model.json", description)


def read_model_files(run_dir: Path | str) -> tuple[dict[str, Any], bytes]:
    """`model.json` as a dict and the bytes of `model.safetensors`, checked against each other
    (format and SHA-256 fingerprint) without building the model.

    Raises:
        CheckpointError: files missing, unreadable, altered, or from another format; the
            message gives the command that rebuilds them from the run's checkpoints.
    """
    run_dir = Path(run_dir)
    json_path, weights_path = run_dir / "model.json", run_dir / "model.safetensors"
    rebuild = (
        f"`siamese train --resume --out {run_dir}` rebuilds them from its last good checkpoint"
    )
    for path in (json_path, weights_path):
        if not path.is_file():
            raise CheckpointError(
                f"{path} not found: {run_dir} holds no finished model (a run writes it when "
                f"training ends). If it is a run directory, {rebuild}, or continues an "
                "interrupted run"
            )
    try:
        description = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"{json_path}: not readable JSON ({err}). If {run_dir} is a run directory, {rebuild}"
        ) from None
    if not isinstance(description, dict) or description.get("format") != MODEL_FORMAT:
        found = description.get("format") if isinstance(description, dict) else None
        raise CheckpointError(
            f"{json_path}: format {found!r}, expected {MODEL_FORMAT!r}: it was not written by "
            "this version of siamese"
        )
    payload = weights_path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != description.get("sha256"):
        raise CheckpointError(
            f"{weights_path} does not match the fingerprint in {json_path}: the file was "
            f"changed or damaged after training. {rebuild[0].upper()}{rebuild[1:]}."
        )
    return description, payload


def load_model(run_dir: Path | str) -> EmbeddingNet:
    """The trained model of a run directory (or of a folder holding `model.json` and
    `model.safetensors`), in evaluation mode: it maps inputs to (N, D) embeddings.

    Nothing is unpickled: the architecture comes from JSON and the weights from safetensors,
    checked against the fingerprint in `model.json`. A model trained with your own encoder
    (`package.module:factory`) imports that one path again, which runs that module's code as
    any import does: load only models you trust.

    Raises:
        CheckpointError: files missing, unreadable, altered, or from another format; or the
            model's own encoder cannot be imported any more.

    Example:
        >>> import tempfile
        >>> import torch
        >>> from siamese import EmbeddingNet, build_encoder, load_model, save_model
        >>> _ = torch.manual_seed(0)
        >>> net = EmbeddingNet(build_encoder("convnet", (1, 28, 28), widths=[8]), embedding_dim=4)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save_model(folder, net, (1, 28, 28))
        ...     model = load_model(folder)
        >>> type(model).__name__, model.training, model.spec == net.spec
        ('EmbeddingNet', False, True)
        >>> tuple(model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape)
        (2, 4)
    """
    run_dir = Path(run_dir)
    description, payload = read_model_files(run_dir)
    try:
        model = build_embedding_net(
            description["architecture"], description["input_shape"], load_weights=False
        )
        state = safetensors.torch.load(payload)
        model.load_state_dict(state, strict=True)
    except EncoderImportError as err:
        raise CheckpointError(
            f"the model at {run_dir} was trained with encoder {err.path!r}, and importing it "
            f"failed ({err.reason}): install the package that defines it, or put its folder "
            "on PYTHONPATH, then load the model again"
        ) from None
    except (KeyError, TypeError, RuntimeError, SiameseError) as err:
        raise CheckpointError(f"{run_dir}: the saved model cannot be rebuilt: {err}") from None
    model.eval()
    return model


PAIR_HEAD_FILE = "pair_head.safetensors"


def save_pair_head(out: Path, head: torch.nn.Module) -> None:
    """Save a trained pair classifier's logistic unit beside the model (`pair_head.safetensors`)."""
    state = {name: t.detach().cpu().contiguous() for name, t in head.state_dict().items()}
    write_bytes_atomic(out / PAIR_HEAD_FILE, safetensors.torch.save(state))


def load_model_and_head(
    run_dir: Path | str,
) -> tuple[EmbeddingNet, torch.nn.Module | None]:
    """The run's embedding model, and the pair classifier's head of a run that trained one
    (`load_siamese_net`), else None; the model files are read once either way."""
    if not (Path(run_dir) / PAIR_HEAD_FILE).is_file():
        return load_model(run_dir), None
    net = load_siamese_net(run_dir)
    return net.embedding_net, net.head


def load_siamese_net(run_dir: Path | str) -> SiameseNet:
    """The trained model of a run that trained `loss.name: pair_classifier`, with its pair
    head: `net(x1, x2)` gives logits of "same class" (1 = genuine), `net.embed(x)` embeddings.

    Raises:
        CheckpointError: the run has no model, or trained without a pair head.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import torch
        >>> from siamese import EmbeddingNet, SiameseNet, build_encoder
        >>> from siamese import load_siamese_net, save_model
        >>> from siamese.models.files import save_pair_head
        >>> _ = torch.manual_seed(0)
        >>> net = SiameseNet(EmbeddingNet(build_encoder("mlp", (1, 8, 8)), embedding_dim=4)).eval()
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save_model(folder, net.embedding_net, (1, 8, 8))
        ...     save_pair_head(Path(folder), net.head)  # what a pair_classifier run saves
        ...     loaded = load_siamese_net(folder)
        >>> a, b = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
        >>> torch.equal(loaded(a, b), net(a, b))
        True
    """
    run_dir = Path(run_dir)
    embedding_net = load_model(run_dir)
    path = run_dir / PAIR_HEAD_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{path} not found: this run did not train a pair classifier (loss.name "
            "pair_classifier). Use load_model for its embeddings and compare distances."
        )
    net = SiameseNet(embedding_net)
    try:
        net.head.load_state_dict(safetensors.torch.load(path.read_bytes()), strict=True)
    except (RuntimeError, SiameseError) as err:
        raise CheckpointError(f"{path}: the pair head cannot be loaded: {err}") from None
    net.eval()
    return net
