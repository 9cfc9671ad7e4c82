"""The run directory: one folder holding everything about one run, and the rules for claiming
one (never write a run beside a user's files, never mix two runs in one folder).

A run directory holds only the files in `RUN_FILES`. `claim_run_directory` accepts an empty or
missing folder; a folder with a run in it only to resume it, or with `force` (which removes the
old run's files as a whole first); a folder with anything else is refused, naming what it holds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from siamese.errors import ConfigError, OutputError

RUN_FILES: frozenset[str] = frozenset(
    {
        "config.yaml",
        "split.json",
        "metrics.csv",
        "train.log",
        "checkpoints",
        "tensorboard",
        "model.safetensors",
        "model.json",
        "pair_head.safetensors",
        "evaluation",
        "metrics.json",
        "report.md",
        "report.html",
        "figures",
        "demo.json",
    }
)
"""Everything a run writes at a run directory's top: training's files, `evaluation/` (and, from
earlier versions, the evaluation files that were written at the top), `figures/` (`siamese
plot`) and the demo's marker."""


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


def holds_run(out: Path) -> bool:
    """Whether `out` holds (part of) a siamese run: its config or any checkpoint."""
    return (out / "config.yaml").is_file() or any((out / "checkpoints").glob("*.pt"))


def describe_contents(out: Path) -> str:
    """What `out` holds, in words, for refusals: a siamese run, another tool's config, or
    other files (the first few named)."""
    if not out.is_dir():
        return "nothing"
    foreign = sorted(
        p.name for p in out.iterdir() if p.name not in RUN_FILES and not p.name.startswith(".")
    )
    config = out / "config.yaml"
    if config.is_file():
        from siamese.config import load_config

        try:
            load_config(config)
        except ConfigError as err:
            first = str(err).splitlines()[0]
            return f"a config.yaml that is not a siamese run config ({first})"
    if holds_run(out):
        kind = "a siamese run"
        if foreign:
            kind += f" and other files ({_listed(foreign)})"
        return kind
    if foreign:
        return f"files that are not a siamese run ({_listed(foreign)})"
    return "the files of an incomplete siamese run"


def claim_run_directory(out: Path, resume: bool = False, force: bool = False) -> None:
    """Check that a run may be written into `out`, creating it; with `force`, remove the run
    files of an earlier run there first (never any other file).

    Args:
        out: the run directory.
        resume: the caller continues the run in `out` (it must hold one).
        force: replace the earlier run in `out` as a whole.
    Raises:
        OutputError: `out` holds something else than a run, holds a run and neither `resume`
            nor `force` was given, or cannot be written. Nothing is changed then.
    """
    prepare_run_directory(out)
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    if not entries or resume:
        return
    contents = describe_contents(out)
    foreign = [p.name for p in entries if p.name not in RUN_FILES]
    if foreign or not contents.startswith(("a siamese run", "the files of an incomplete")):
        raise OutputError(
            f"{out} holds {contents}: a run is written only into an empty folder or over an "
            "earlier run, so choose another --out (nothing was changed)"
        )
    if not force:
        raise OutputError(
            f"{out} already holds {contents}: pass --resume to continue it, --force to replace "
            "it as a whole, or choose another --out (nothing was changed)"
        )
    remove_run_files(out)


def remove_run_files(out: Path) -> None:
    """Delete the run files (`RUN_FILES`) in `out`, leaving anything else."""
    for name in RUN_FILES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _listed(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
