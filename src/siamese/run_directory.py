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
from siamese.errors import OutputError


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


def save_model(
    out: Path, model: torch.nn.Module, input_shape: tuple[int, ...], settings: dict[str, Any]
) -> None:
    """Save `model.safetensors` (the weights) and `model.json` (what rebuilds it: the
    architecture settings, the input shape and a SHA-256 fingerprint of the weights file)."""
    state = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    payload = safetensors.torch.save(state)
    write_bytes_atomic(out / "model.safetensors", payload)
    description = {
        "format": "siamese-model/1",
        "architecture": {
            "encoder": "convnet",
            "widths": list(settings["widths"]),
            "embedding_dim": settings["embedding_dim"],
            "normalize": True,
        },
        "input_shape": list(input_shape),
        "input": "uint8 images, white ink on black, scaled to [0, 1] inside the model",
        "parameters": sum(p.numel() for p in model.parameters()),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    write_json_atomic(out / "model.json", description)
