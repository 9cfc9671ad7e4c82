"""Checkpoints: round trips of real training state, damage detection, fallback, atomicity,
pruning, and RNG state."""

from __future__ import annotations

import io
import os
import random
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from siamese.atomic_files import write_bytes_atomic
from siamese.errors import CheckpointError, OutputError
from siamese.training.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointWarning,
    last_checkpoint_path,
    load_checkpoint,
    load_latest_good,
    resume_candidates,
    save_best,
    save_checkpoint,
    save_step_checkpoint,
    step_checkpoint_path,
)
from siamese.training.rng_state import capture_rng_state, restore_rng_state


class _Opaque:
    """An arbitrary Python object: torch.save pickles it by class name."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def _halve_lr(epoch: int) -> float:
    return 0.5**epoch


def _training_objects() -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.5**epoch)
    return model, optimizer, scheduler


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    batch = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 4, generator=batch)
    optimizer.zero_grad()
    model(x).pow(2).mean().backward()
    optimizer.step()


def _realistic_state() -> dict[str, Any]:
    model, optimizer, scheduler = _training_objects()
    _train_step(model, optimizer, seed=1)
    scheduler.step()
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sampler": {"seed": 7, "epoch": 2},
        "rng": capture_rng_state({"mining": torch.Generator().manual_seed(3)}),
        "epoch": 2,
        "step": 1234,
        "best_score": 0.875,
        "config": {
            "name": "glyphs-triplet",
            "train": {"lr": 1e-2, "margin": 0.2, "widths": [32, 64], "schedule": None},
            "flags": (True, False),
        },
    }


def _assert_same(a: Any, b: Any, where: str = "state") -> None:
    """Equal structure, types and values; tensors equal in dtype, shape and every element."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, where


def _truncate_to_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# --- one file -----------------------------------------------------------------------------


def test_realistic_state_round_trips(tmp_path: Path) -> None:
    state = _realistic_state()
    path = tmp_path / "checkpoints" / "c.pt"  # the parent is created
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    _assert_same(state, loaded)
    assert "format" not in loaded


def test_lambda_lr_state_holds_no_functions() -> None:
    """LambdaLR.state_dict() replaces plain functions by None (and callable objects by their
    __dict__), so it is weights_only-safe; the resumed scheduler keeps its own lambdas."""
    _, _, scheduler = _training_objects()
    assert scheduler.state_dict()["lr_lambdas"] == [None]


def test_resumed_optimizer_and_scheduler_take_the_same_next_step(tmp_path: Path) -> None:
    model, optimizer, scheduler = _training_objects()
    _train_step(model, optimizer, seed=1)
    scheduler.step()
    save_checkpoint(
        tmp_path / "c.pt",
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        },
    )
    _train_step(model, optimizer, seed=2)
    scheduler.step()

    state = load_checkpoint(tmp_path / "c.pt")
    resumed_model, resumed_optimizer, resumed_scheduler = _training_objects()
    resumed_model.load_state_dict(state["model"])
    resumed_optimizer.load_state_dict(state["optimizer"])
    resumed_scheduler.load_state_dict(state["scheduler"])
    _train_step(resumed_model, resumed_optimizer, seed=2)
    resumed_scheduler.step()

    for expected, got in zip(
        model.state_dict().values(), resumed_model.state_dict().values(), strict=True
    ):
        assert torch.equal(expected, got)
    assert resumed_scheduler.get_last_lr() == scheduler.get_last_lr()
    assert resumed_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_a_checkpoint_is_a_crc_protected_zip_even_when_crcs_are_off(tmp_path: Path) -> None:
    was_on = torch.serialization.get_crc32_options()
    torch.serialization.set_crc32_options(False)
    try:
        save_checkpoint(tmp_path / "c.pt", {"x": torch.arange(10.0)})
    finally:
        torch.serialization.set_crc32_options(was_on)
    assert torch.serialization.get_crc32_options() == was_on
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["x"], torch.arange(10.0))


def _flip_a_byte_inside_the_tensor(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(torch.tensor([500.0]).numpy().tobytes())
    assert at > 0
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _save_with_torch(value: Any) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        buffer = io.BytesIO()
        torch.save(value, buffer)
        path.write_bytes(buffer.getvalue())

    return write


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_truncate_to_half, "not a complete zip"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(bytes(p.stat().st_size)), "not a complete zip"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "corrupt"),
        (_flip_a_byte_inside_the_tensor, "CRC-32"),
        (_save_with_torch({"x": _Opaque()}), "_Opaque"),
        (_save_with_torch({"x": torch.ones(2)}), "no 'format' tag"),
        (_save_with_torch([torch.ones(2)]), "not a dict"),
        (_save_with_torch({"format": "siamese-checkpoint/99"}), "siamese-checkpoint/99"),
        (lambda p: p.unlink(), "does not exist"),
    ],
    ids=[
        "truncated",
        "empty",
        "zeros",
        "random-bytes",
        "bit-flip",
        "arbitrary-object",
        "no-format-tag",
        "not-a-dict",
        "other-format",
        "missing",
    ],
)
def test_a_damaged_checkpoint_raises_checkpoint_error_naming_the_file(
    tmp_path: Path, damage: Callable[[Path], None], says: str
) -> None:
    path = tmp_path / "step-00000010.pt"
    save_checkpoint(path, {"x": torch.arange(1000.0), "step": 10})
    damage(path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message
    assert says in message
    assert "without --resume" in message


def test_a_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_unsupported_object_raises_type_error_with_its_key_path(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"config\.train\.lr holds a numpy\.float64"):
        save_checkpoint(tmp_path / "c.pt", {"config": {"train": {"lr": np.float64(0.1)}}})
    with pytest.raises(TypeError, match=r"history\[1\]\.extra holds a .*_Opaque"):
        save_checkpoint(tmp_path / "c.pt", {"history": [1, {"extra": _Opaque()}]})
    with pytest.raises(TypeError, match=r"optimizer\.state\[0\] holds a numpy\.ndarray"):
        save_checkpoint(tmp_path / "c.pt", {"optimizer": {"state": {0: np.zeros(2)}}})
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(TypeError, match="cycle"):
        save_checkpoint(tmp_path / "c.pt", {"a": cyclic})
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "c.pt", {"format": "mine"})
    assert not any(tmp_path.iterdir())


def test_directory_is_fsynced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced_directories = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced_directories.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_bytes_atomic(tmp_path / "f.bin", b"abc")
    assert len(synced_directories) == 1
    assert (tmp_path / "f.bin").read_bytes() == b"abc"


# --- the checkpoint directory -------------------------------------------------------------


def test_step_paths_are_zero_padded_so_names_sort(tmp_path: Path) -> None:
    assert step_checkpoint_path(tmp_path, 1234).name == "step-00001234.pt"
    names = [step_checkpoint_path(tmp_path, s).name for s in (9, 10, 100, 99)]
    assert sorted(names) == [step_checkpoint_path(tmp_path, s).name for s in (9, 10, 99, 100)]
    with pytest.raises(ValueError):
        step_checkpoint_path(tmp_path, -1)


def test_last_is_a_copy_of_the_newest_step(tmp_path: Path) -> None:
    save_step_checkpoint(tmp_path, 10, {"step": 10}, keep=5)
    written = save_step_checkpoint(tmp_path, 20, {"step": 20}, keep=5)
    assert written == tmp_path / "step-00000020.pt"
    assert load_checkpoint(last_checkpoint_path(tmp_path)) == {"step": 20}
    assert not last_checkpoint_path(tmp_path).samefile(written)  # an independent copy
    assert resume_candidates(tmp_path) == [
        tmp_path / "last.pt",
        tmp_path / "step-00000020.pt",
        tmp_path / "step-00000010.pt",
    ]


def test_best_is_saved_but_never_resumed_from(tmp_path: Path) -> None:
    path = save_best(tmp_path, {"step": 5, "score": 0.9})
    assert path == tmp_path / "best.pt"
    assert load_checkpoint(path) == {"step": 5, "score": 0.9}
    assert resume_candidates(tmp_path) == []
    assert load_latest_good(tmp_path) is None


def test_resume_falls_back_past_damaged_checkpoints_with_a_warning_each(tmp_path: Path) -> None:
    save_step_checkpoint(tmp_path, 10, {"step": 10}, keep=5)
    save_step_checkpoint(tmp_path, 20, {"step": 20}, keep=5)
    _truncate_to_half(tmp_path / "last.pt")
    (tmp_path / "step-00000020.pt").write_bytes(b"")

    with pytest.warns(CheckpointWarning) as record:
        found = load_latest_good(tmp_path)

    assert found == (tmp_path / "step-00000010.pt", {"step": 10})
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert str(tmp_path / "last.pt") in messages[0] and "step-00000020.pt" in messages[0]
    assert str(tmp_path / "step-00000020.pt") in messages[1] and "empty" in messages[1]


def test_every_checkpoint_damaged_raises_listing_each(tmp_path: Path) -> None:
    save_step_checkpoint(tmp_path, 10, {"step": 10}, keep=5)
    save_step_checkpoint(tmp_path, 20, {"step": 20}, keep=5)
    for path in resume_candidates(tmp_path):
        _truncate_to_half(path)
    with pytest.warns(CheckpointWarning), pytest.raises(CheckpointError) as caught:
        load_latest_good(tmp_path)
    message = str(caught.value)
    for name in ("last.pt", "step-00000020.pt", "step-00000010.pt"):
        assert str(tmp_path / name) in message
    assert "without --resume" in message


def test_no_checkpoint_means_none(tmp_path: Path) -> None:
    assert load_latest_good(tmp_path) is None
    assert load_latest_good(tmp_path / "missing") is None
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        load_latest_good(tmp_path / "file")


def test_pruning_keeps_the_newest(tmp_path: Path) -> None:
    for step in range(1, 6):
        save_step_checkpoint(tmp_path, step, {"step": step}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last.pt",
        "step-00000004.pt",
        "step-00000005.pt",
    ]
    save_step_checkpoint(tmp_path, 6, {"step": 6}, keep=0)  # the one just written stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step-00000006.pt"]


def test_step_files_beyond_a_resumed_step_are_removed(tmp_path: Path) -> None:
    """A run that resumed from step 10 must not later resume from the abandoned step 20."""
    save_step_checkpoint(tmp_path, 10, {"step": 10}, keep=5)
    save_step_checkpoint(tmp_path, 20, {"step": 20}, keep=5)
    save_step_checkpoint(tmp_path, 15, {"step": 15}, keep=5)
    assert [p.name for p in resume_candidates(tmp_path)] == [
        "last.pt",
        "step-00000015.pt",
        "step-00000010.pt",
    ]


def test_leftover_temporary_file_is_ignored_then_removed(tmp_path: Path) -> None:
    save_step_checkpoint(tmp_path, 20, {"step": 20}, keep=5)
    leftover = tmp_path / ".step-00000030.pt.k3j_x9.tmp"
    leftover.write_bytes(b"half a checkpoint")
    unrelated = tmp_path / ".notes.tmp"
    unrelated.write_bytes(b"not ours")
    an_hour_ago = leftover.stat().st_mtime - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))

    assert leftover not in resume_candidates(tmp_path)
    assert load_latest_good(tmp_path) == (tmp_path / "last.pt", {"step": 20})

    save_step_checkpoint(tmp_path, 40, {"step": 40}, keep=5)
    assert not leftover.exists()
    assert unrelated.exists()


def test_failed_rename_keeps_the_previous_checkpoint_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_step_checkpoint(tmp_path, 10, {"step": 10, "w": torch.ones(3)}, keep=5)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def crash(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OutputError, match=r"last\.pt.*No space left"):
        save_step_checkpoint(tmp_path, 20, {"step": 20, "w": torch.zeros(3)}, keep=5)
    monkeypatch.undo()

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    found = load_latest_good(tmp_path)
    assert found is not None and found[1]["step"] == 10


# --- RNG state ----------------------------------------------------------------------------


def _draw(generators: dict[str, torch.Generator]) -> list[Any]:
    return [
        torch.rand(5),
        np.random.rand(5),  # noqa: NPY002  (the legacy global state is under test)
        np.random.standard_normal(3),  # noqa: NPY002
        random.random(),
        random.gauss(0.0, 1.0),
        {name: torch.rand(5, generator=g) for name, g in generators.items()},
    ]


def _assert_draws_equal(a: list[Any], b: list[Any]) -> None:
    assert torch.equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert a[3:5] == b[3:5]
    assert a[5].keys() == b[5].keys()
    for name in a[5]:
        assert torch.equal(a[5][name], b[5][name])


def test_rng_state_restores_every_generator(tmp_path: Path) -> None:
    generators = {"mining": torch.Generator().manual_seed(1), "pairs": torch.Generator()}
    np.random.seed(5)  # noqa: NPY002
    random.seed(5)
    # Leave a cached Gaussian in numpy and in Python's random, which the state must carry.
    np.random.standard_normal(1)  # noqa: NPY002
    random.gauss(0.0, 1.0)
    state = capture_rng_state(generators)
    expected = _draw(generators)

    save_checkpoint(tmp_path / "c.pt", {"rng": state})  # the state survives weights_only
    loaded = load_checkpoint(tmp_path / "c.pt")["rng"]
    _draw(generators)  # move every generator on
    restore_rng_state(loaded, generators)
    _assert_draws_equal(_draw(generators), expected)


def test_rng_state_missing_a_generator_raises(tmp_path: Path) -> None:
    state = capture_rng_state({"mining": torch.Generator()})
    with pytest.raises(CheckpointError, match="'pairs'"):
        restore_rng_state(state, {"pairs": torch.Generator()})
    before = torch.get_rng_state()
    broken = {**state, "numpy": {**state["numpy"], "keys": torch.zeros(3, dtype=torch.int64)}}
    with pytest.raises(CheckpointError, match="malformed"):
        restore_rng_state(broken)
    assert torch.equal(torch.get_rng_state(), before)  # nothing restored


def test_checkpoint_format_tag() -> None:
    assert CHECKPOINT_FORMAT == "siamese-checkpoint/1"
