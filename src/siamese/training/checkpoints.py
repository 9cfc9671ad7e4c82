"""Training checkpoints: saving, loading and the checkpoint directory (the random generators'
state they hold comes from `siamese.training.rng_state`).

A checkpoint is one `torch.save` zip archive holding a dict of plain data (tensors, dicts,
lists, tuples, str, int, float, bool, None) plus the tag `"format": CHECKPOINT_FORMAT`.
Loading uses `torch.load(weights_only=True)`, so a checkpoint never runs code; the archive's
CRC-32 checksums are verified first, because `torch.load` itself does not notice flipped bytes
inside a tensor.

A run's `checkpoints/` directory holds::

    step-00001234.pt   one per saved step, zero-padded so names sort; the newest `keep` stay
    last.pt            a copy of the newest step checkpoint: what `--resume` tries first
    best.pt            the checkpoint with the best validation score (never resumed from)
    .NAME.XXXX.tmp     a temporary file left by an interrupted write; never read, and removed
                       by the next `save_step_checkpoint`

Every file is written atomically (temporary file, fsync, rename, directory fsync), so a crash
leaves the previous file or the new one. If a file is damaged all the same (a full disk
outside our control, a bad copy), `load_latest_good` falls back to the next-newest one.

One process writes a directory at a time (rank 0 under DDP).
"""

from __future__ import annotations

import collections
import io
import pickle
import re
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from siamese.atomic_files import write_bytes_atomic
from siamese.errors import CheckpointError, OutputError

CHECKPOINT_FORMAT = "siamese-checkpoint/1"
"""The value of a checkpoint's `format` key; a new layout of the state gets a new number."""

LAST_NAME = "last.pt"
BEST_NAME = "best.pt"
_STEP_NAME = re.compile(r"step-(\d+)\.pt")
_TEMPORARY_NAME = re.compile(r"\.(?:step-\d+\.pt|last\.pt|best\.pt)\..+\.tmp")
_FORMAT_KEY = "format"

# Exactly these types (not subclasses: an IntEnum, a namedtuple or a str subclass pickles by
# class name, which weights_only refuses). dtype, device and Size are allowed by weights_only
# and turn up in optimiser and model states.
_LEAF_TYPES: frozenset[type] = frozenset(
    {str, int, float, bool, complex, bytes, type(None), torch.dtype, torch.device}
)
_TENSOR_TYPES: frozenset[type] = frozenset({torch.Tensor, torch.nn.Parameter})
_MAPPING_TYPES: frozenset[type] = frozenset({dict, collections.OrderedDict})
_SEQUENCE_TYPES: frozenset[type] = frozenset({list, tuple, torch.Size})


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped or could not be tidied; the run goes on."""


class _Unreadable(Exception):
    """Internal: `problem` says why `path` cannot be used, as "PATH <problem>"."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.path, self.problem = path, problem


# ---------------------------------------------------------------------------------------------
# One checkpoint file


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically, tagged with `CHECKPOINT_FORMAT`.

    `state` may hold only what `torch.load(weights_only=True)` reads back: tensors and
    `nn.Parameter`s, dicts and OrderedDicts, lists, tuples, `torch.Size`, str, int, float,
    bool, complex, bytes, None, `torch.dtype` and `torch.device`. Model, optimiser and
    scheduler `state_dict()`s qualify (LambdaLR stores its lambdas as None, see the tests);
    numpy scalars and arrays, dataclasses, enums and namedtuples do not: convert them first.
    The parent directory is created if missing.

    Raises:
        TypeError: `state` holds another type (the message names its key path).
        ValueError: `state` has a `format` key, which is reserved for the tag.
        OutputError: the file cannot be written (disk full, no permission).
    """
    _write_checkpoint_bytes(path, _serialize(state))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; tensors are loaded onto the CPU.

    Returns the saved state, without the `format` tag.

    Raises:
        CheckpointError: the file is missing, unreadable, empty, truncated, damaged, not a
            siamese checkpoint, holds objects other than plain data, or has another format.
    """
    try:
        return _read_checkpoint(path)
    except _Unreadable as err:
        if not path.exists():
            advice = "Check the path, or start afresh without --resume."
        else:
            advice = (
                f"Resume from an earlier checkpoint in {path.parent}, "
                "or start afresh without --resume."
            )
        raise CheckpointError(f"checkpoint {err}. {advice}") from None


def _serialize(state: dict[str, Any]) -> bytes:
    """`state` plus the format tag, as the bytes of a `torch.save` zip with CRC-32s."""
    if type(state) not in _MAPPING_TYPES:
        raise TypeError(f"a checkpoint state must be a dict, got {type(state).__qualname__}")
    if _FORMAT_KEY in state:
        raise ValueError(f"the key {_FORMAT_KEY!r} is reserved for the checkpoint's format tag")
    _check_weights_only_safe(state, "")
    buffer = io.BytesIO()
    # The CRC-32s are what `_verify_archive` checks; torch writes them unless someone turned
    # them off process-wide, so turn them on for this save.
    crc_was_on = torch.serialization.get_crc32_options()
    torch.serialization.set_crc32_options(True)
    try:
        torch.save({**state, _FORMAT_KEY: CHECKPOINT_FORMAT}, buffer)
    finally:
        torch.serialization.set_crc32_options(crc_was_on)
    return buffer.getvalue()


def _check_weights_only_safe(
    value: Any, key_path: str, _open: frozenset[int] = frozenset()
) -> None:
    """Raise TypeError naming the first object under `value` that weights_only would refuse."""
    kind = type(value)
    if kind in _LEAF_TYPES or kind in _TENSOR_TYPES:
        return
    if id(value) in _open:
        raise TypeError(f"checkpoint state at {key_path or '<root>'} contains itself (a cycle)")
    inner = _open | {id(value)}
    if kind in _MAPPING_TYPES:
        for key, item in value.items():
            if type(key) not in _LEAF_TYPES:
                raise TypeError(
                    f"checkpoint state at {key_path or '<root>'} has a key of type "
                    f"{_type_name(key)} ({key!r}); keys must be str, int or another plain value"
                )
            _check_weights_only_safe(item, _join_key(key_path, key), inner)
        return
    if kind in _SEQUENCE_TYPES:
        for index, item in enumerate(value):
            _check_weights_only_safe(item, f"{key_path}[{index}]", inner)
        return
    raise TypeError(
        f"checkpoint state at {key_path or '<root>'} holds a {_type_name(value)}, which "
        "torch.load(weights_only=True) refuses; convert it to a tensor, dict, list, tuple, "
        "str, int, float, bool or None before saving"
    )


def _join_key(key_path: str, key: Any) -> str:
    if isinstance(key, str) and key.isidentifier():
        return f"{key_path}.{key}" if key_path else key
    return f"{key_path}[{key!r}]"


def _type_name(value: Any) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _write_checkpoint_bytes(path: Path, payload: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, payload)
    except OSError as err:
        reason = err.strerror or str(err)
        raise OutputError(
            f"cannot write checkpoint {path}: {reason}. Free disk space, check permissions, "
            "or choose another output directory with --out."
        ) from err


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """The state in `path`, or `_Unreadable` saying what is wrong with it."""
    try:
        if path.is_dir():
            raise _Unreadable(path, "is a directory, not a checkpoint file")
        size = path.stat().st_size
    except FileNotFoundError:
        raise _Unreadable(path, "does not exist") from None
    except OSError as err:
        raise _Unreadable(path, f"cannot be read: {err.strerror or err}") from None
    if size == 0:
        raise _Unreadable(path, "is empty (0 bytes): its write was interrupted")
    _verify_archive(path)
    try:
        with warnings.catch_warnings():
            # A zip whose pickle uses protocol > 2 was not written by torch.save; the refusal
            # (or the format check below) reports it, the warning would only repeat it.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _Unreadable(path, _describe_refusal(str(err))) from None
    except Exception as err:  # torch reports damage as RuntimeError, EOFError, ValueError…
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise _Unreadable(path, f"is corrupt: torch.load failed ({first_line})") from None
    if not isinstance(loaded, dict):
        raise _Unreadable(
            path, f"is not a siamese checkpoint: it holds a {type(loaded).__name__}, not a dict"
        )
    if _FORMAT_KEY not in loaded:
        raise _Unreadable(path, f"is not a siamese checkpoint: it has no {_FORMAT_KEY!r} tag")
    if loaded[_FORMAT_KEY] != CHECKPOINT_FORMAT:
        raise _Unreadable(
            path,
            f"has format {loaded[_FORMAT_KEY]!r}, but this version of siamese reads "
            f"{CHECKPOINT_FORMAT!r} (resume with the version that wrote it)",
        )
    state = dict(loaded)
    del state[_FORMAT_KEY]
    return state


def _verify_archive(path: Path) -> None:
    """Check that `path` is a complete zip whose members match their CRC-32s."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged_member = archive.testzip()
    except zipfile.BadZipFile:
        raise _Unreadable(
            path, "is corrupt: not a complete zip archive (truncated, or not a checkpoint)"
        ) from None
    except Exception as err:  # zipfile raises several kinds on damaged headers
        raise _Unreadable(path, f"is corrupt: its zip structure is damaged ({err})") from None
    if damaged_member is not None:
        raise _Unreadable(
            path, f"is corrupt: {damaged_member} fails its CRC-32 check (bytes changed on disk)"
        )


def _describe_refusal(message: str) -> str:
    """Say in one line why weights_only refused a pickle (torch's message is a page long)."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    what = f"the Python object {found.group(1)}" if found else "Python objects"
    return (
        f"holds {what}, which siamese does not unpickle (loading is weights_only: tensors "
        "and plain data); it was not written by siamese"
    )


# ---------------------------------------------------------------------------------------------
# The checkpoint directory


def step_checkpoint_path(directory: Path, step: int) -> Path:
    """`directory/step-00001234.pt`: the checkpoint of optimiser step `step` (>= 0)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return directory / f"step-{step:08d}.pt"


def last_checkpoint_path(directory: Path) -> Path:
    """`directory/last.pt`: a copy of the newest step checkpoint."""
    return directory / LAST_NAME


def best_checkpoint_path(directory: Path) -> Path:
    """`directory/best.pt`: the checkpoint with the best validation score."""
    return directory / BEST_NAME


def save_step_checkpoint(directory: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Save `state` as the checkpoint of `step` and as `last.pt`, then prune old step files.

    `last.pt` is written before the step file: a crash between the two leaves `last.pt` the
    newest checkpoint, which is what `resume_candidates` assumes. Both are independent full
    copies (not hard links), so damage to one leaves the other. Pruning keeps the newest
    `keep` step files numbered up to `step` (at least the one just written, even when
    `keep` is 0) and deletes every step file numbered above `step`: those belong to a run
    that went back to an earlier checkpoint, and would otherwise be resumed from. It also
    deletes temporary files left by interrupted writes.

    Returns:
        The path of the step file written.

    Raises:
        TypeError, ValueError: as `save_checkpoint`; `keep` is negative.
        OutputError: a file cannot be written.
    """
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    path = step_checkpoint_path(directory, step)
    started = time.time()
    payload = _serialize(state)
    _write_checkpoint_bytes(last_checkpoint_path(directory), payload)
    _write_checkpoint_bytes(path, payload)
    _prune_step_checkpoints(directory, step, keep)
    _remove_leftover_temporaries(directory, older_than=started)
    return path


def save_best(directory: Path, state: dict[str, Any]) -> Path:
    """Save `state` as `directory/best.pt` (atomically) and return that path.

    Raises:
        TypeError, ValueError, OutputError: as `save_checkpoint`.
    """
    path = best_checkpoint_path(directory)
    save_checkpoint(path, state)
    return path


def resume_candidates(directory: Path) -> list[Path]:
    """The checkpoints to resume from, newest first: `last.pt`, then step files by step,
    descending. `best.pt` and temporary files are not candidates. A missing directory has
    none."""
    if not directory.is_dir():
        return []
    last = last_checkpoint_path(directory)
    candidates = [last] if last.is_file() else []
    steps = sorted(_step_files(directory), reverse=True)
    return candidates + [path for _, path in steps]


def load_latest_good(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """Load the newest usable checkpoint in `directory`, skipping damaged ones.

    Each skipped file is reported with a `CheckpointWarning` that names it and says why.

    Returns:
        `(path, state)` of the checkpoint loaded, or None when `directory` holds no
        checkpoint (or does not exist).

    Raises:
        CheckpointError: `directory` is a file, or every checkpoint in it is unusable (the
            message lists each file tried and why).
    """
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(
            f"the checkpoint directory {directory} is a file: point --resume at a run "
            "directory, or start afresh without --resume"
        )
    candidates = resume_candidates(directory)
    if not candidates:
        return None
    problems: list[str] = []
    for index, path in enumerate(candidates):
        try:
            return path, _read_checkpoint(path)
        except _Unreadable as err:
            problems.append(str(err))
            later = (
                f"trying {candidates[index + 1].name}"
                if index + 1 < len(candidates)
                else "no older checkpoint left"
            )
            warnings.warn(f"skipping checkpoint {err}; {later}", CheckpointWarning, stacklevel=2)
    listing = "\n".join(f"  - {problem}" for problem in problems)
    raise CheckpointError(
        f"no usable checkpoint in {directory}; every one tried is unusable:\n{listing}\n"
        f"Start afresh without --resume (move {directory} aside first to keep these files)."
    )


def _step_files(directory: Path) -> list[tuple[int, Path]]:
    """`(step, path)` of every step checkpoint file in `directory`, in no order."""
    found = []
    for path in directory.iterdir():
        match = _STEP_NAME.fullmatch(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return found


def _prune_step_checkpoints(directory: Path, step: int, keep: int) -> None:
    older = sorted(((s, p) for s, p in _step_files(directory) if s < step), reverse=True)
    abandoned = [p for s, p in _step_files(directory) if s > step]
    surplus = [p for _, p in older[max(keep - 1, 0) :]]
    for path in abandoned + surplus:
        _remove_quietly(path)


def _remove_leftover_temporaries(directory: Path, older_than: float) -> None:
    """Delete `.NAME.XXXX.tmp` files of checkpoints made before `older_than` (a time.time()).
    With one writer per directory, those are leftovers of writes that died mid-way."""
    for path in directory.iterdir():
        if not _TEMPORARY_NAME.fullmatch(path.name):
            continue
        try:
            stale = path.stat().st_mtime < older_than
        except OSError:
            continue
        if stale:
            _remove_quietly(path)


def _remove_quietly(path: Path) -> None:
    """Delete `path`; a failure is worth a warning, not the end of a training run."""
    try:
        path.unlink(missing_ok=True)
    except OSError as err:
        warnings.warn(
            f"could not delete old checkpoint file {path}: {err.strerror or err}; "
            "delete it by hand to free the space",
            CheckpointWarning,
            stacklevel=3,
        )
