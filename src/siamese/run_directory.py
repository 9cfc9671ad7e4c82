"""The run directory: one folder holding everything about one run.

Files are written with `write_bytes_atomic`, so an interrupted run never leaves a half-written
file that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from siamese.atomic_write import write_bytes_atomic
from siamese.errors import CheckpointError, OutputError, SiameseError
from siamese.models.embedding import EmbeddingNet, build_embedding_net
from siamese.models.siamese_net import SiameseNet


def prepare_run_directory(out: Path) -> Path:
    """Create `out` (and parents) and check it can be written, before any long work.

    Raises:
        OutputError: `out` is a file, or cannot be created or written.
    """
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a directory: choose a directory path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or str(err)
        raise OutputError(
            f"cannot write the run directory {out}: {reason}. Choose a writable path with --out."
        ) from None
    return out


def write_json_atomic(path: Path, value: Any) -> None:
    """Write `value` as indented JSON, atomically."""
    write_bytes_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


MODEL_FORMAT = "siamese-model/1"


def save_model(
    out: Path,
    model: EmbeddingNet,
    input_shape: tuple[int, ...],
    extra: dict[str, Any] | None = None,
) -> None:
    """Save `model.safetensors` (the weights) and `model.json` (what rebuilds it: the
    architecture spec, the input shape, a SHA-256 fingerprint of the weights file, and
    `extra` facts about the training).

    Raises:
        ConfigError: the model's encoder is not one of `siamese.models`' (no spec).
    """
    spec = model.spec
    state = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
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


def load_model(run_dir: Path | str) -> EmbeddingNet:
    """The trained model of a run directory (or of a folder holding `model.json` and
    `model.safetensors`), in evaluation mode: it maps inputs to (N, D) embeddings.

    Nothing is unpickled: the architecture comes from JSON and the weights from safetensors,
    checked against the fingerprint in `model.json`.

    Raises:
        CheckpointError: files missing, unreadable, altered, or from another format.
    """
    run_dir = Path(run_dir)
    json_path, weights_path = run_dir / "model.json", run_dir / "model.safetensors"
    for path in (json_path, weights_path):
        if not path.is_file():
            raise CheckpointError(
                f"{path} not found: {run_dir} holds no finished model (a run writes it when "
                "training ends; resume an interrupted run with `siamese train --resume --out "
                f"{run_dir}`)"
            )
    try:
        description = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{json_path}: not readable JSON ({err})") from None
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
            "changed or damaged after training. Restore it from the run's checkpoints."
        )
    try:
        model = build_embedding_net(description["architecture"], description["input_shape"])
        state = safetensors.torch.load(payload)
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, RuntimeError, SiameseError) as err:
        raise CheckpointError(f"{run_dir}: the saved model cannot be rebuilt: {err}") from None
    model.eval()
    return model


PAIR_HEAD_FILE = "pair_head.safetensors"


def save_pair_head(out: Path, head: torch.nn.Module) -> None:
    """Save a trained pair classifier's logistic unit beside the model (`pair_head.safetensors`)."""
    state = {name: t.detach().contiguous() for name, t in head.state_dict().items()}
    write_bytes_atomic(out / PAIR_HEAD_FILE, safetensors.torch.save(state))


def load_siamese_net(run_dir: Path | str) -> SiameseNet:
    """The trained model of a run that trained `loss.name: pair_classifier`, with its pair
    head: `net(x1, x2)` gives logits of "same class" (1 = genuine), `net.embed(x)` embeddings.

    Raises:
        CheckpointError: the run has no model, or trained without a pair head.
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
