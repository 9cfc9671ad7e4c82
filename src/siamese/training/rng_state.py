"""The state of every random number generator a training run draws from, as plain data that
a checkpoint can hold (`torch.load(weights_only=True)` accepts it), and putting it back."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from siamese.errors import CheckpointError


def capture_rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The state of every random number generator a run draws from, as checkpoint-safe data.

    Holds torch's global CPU generator (`"torch"`), the CUDA generators when CUDA is in use
    (`"torch_cuda"`, one per device), numpy's global legacy generator (`"numpy"`, the 624
    MT19937 keys as an int64 tensor), Python's `random` (`"python"`) and each generator in
    `generators` under its name (`"generators"`). `restore_rng_state` puts it back.
    """
    # The legacy global generator is what third-party code (and np.random.* calls) draws from.
    algorithm, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)  # noqa: NPY002
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "algorithm": str(algorithm),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    # Only when CUDA has been used: asking otherwise would initialise it in CPU-only runs.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(
    state: dict[str, Any], generators: dict[str, torch.Generator] | None = None
) -> None:
    """Put back the generator states from `capture_rng_state`, so that the next numbers
    drawn are those drawn after the capture. Each generator in `generators` gets the state
    saved under its name; saved generators not named here are ignored. CUDA states are
    restored when CUDA is available (on as many devices as both sides have).

    Raises:
        CheckpointError: `state` lacks a part, or a generator named in `generators`, or a
            part is malformed (nothing is restored then).
    """
    advice = "resume from a checkpoint written with the same version and settings, or start afresh without --resume"
    named = generators or {}
    try:
        saved_generators = state["generators"]
        missing = sorted(set(named) - set(saved_generators))
        if missing:
            raise CheckpointError(
                f"the checkpoint's RNG state has no generator {', '.join(map(repr, missing))} "
                f"(it has {sorted(saved_generators) or 'none'}): {advice}"
            )
        torch_state = state["torch"]
        np_saved = state["numpy"]
        np_state = (
            np_saved["algorithm"],
            np_saved["keys"].numpy().astype(np.uint32),
            int(np_saved["pos"]),
            int(np_saved["has_gauss"]),
            float(np_saved["cached_gaussian"]),
        )
        py_saved = state["python"]
        py_state = (py_saved["version"], tuple(py_saved["internal"]), py_saved["gauss_next"])
        # Check everything that can fail before changing anything.
        probe = np.random.RandomState()
        probe.set_state(np_state)
        random.Random().setstate(py_state)
        torch.Generator().set_state(torch_state)
        for name, generator in named.items():
            torch.Generator(device=generator.device).set_state(saved_generators[name])
    except CheckpointError:
        raise
    except (LookupError, TypeError, ValueError, AttributeError, RuntimeError) as err:
        raise CheckpointError(
            f"the checkpoint's RNG state is malformed ({err!r}): {advice}"
        ) from None
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)  # noqa: NPY002
    random.setstate(py_state)
    for name, generator in named.items():
        generator.set_state(saved_generators[name])
    cuda_states = state.get("torch_cuda")
    if cuda_states and torch.cuda.is_available():
        for device, cuda_state in enumerate(cuda_states[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)
