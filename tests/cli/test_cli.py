"""The command line as a user meets it: usage errors and unwritable output, no tracebacks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "siamese", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def test_help_lists_the_demo() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout


def test_version_and_short_help() -> None:
    import siamese

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"siamese {siamese.__version__}"
    for args in (["-h"], ["train", "-h"], ["datasets", "check", "-h"]):
        result = run_cli(*args)
        assert result.returncode == 0 and "Usage: siamese" in result.stdout, args


def test_the_progress_bar_fits_an_80_column_terminal() -> None:
    import io

    from rich.console import Console

    from siamese.training.loop import progress_bar, progress_status

    console = Console(file=io.StringIO(), width=80, force_terminal=False, color_system=None)
    record = {"loss": 0.123456, "active_fraction": 0.42, "images_per_s": 123456.0}
    with progress_bar(True, console) as progress:
        task = progress.add_task("training", total=12345, completed=0, status="")
        progress.update(task, completed=1234, status=progress_status(10, 10, record))
    line = console.file.getvalue().strip().splitlines()[-1]
    assert len(line) <= 80 and "…" not in line, line
    assert "1234/12345" in line and "123,456 img/s" in line
    assert line.count(":") >= 4, line  # both clocks whole (h:mm:ss, or -:--:-- when unknown)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["demo", "--epochs", "0"], "--epochs"),
        (["demo", "--epochs", "three"], "--epochs"),
        (["demo", "--frobnicate"], "--frobnicate"),
        (["demo", "--seed", "-1"], "--seed"),
        (["no-such-command"], "no-such-command"),
    ],
)
def test_bad_options_give_usage_and_nonzero_exit(args: list[str], expected: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.slow
def test_out_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for out in (blocker, blocker / "run"):
        result = run_cli("demo", "--out", str(out), "--quiet")
        assert result.returncode == 1
        assert str(blocker) in result.stderr and "--out" in result.stderr
        assert "Traceback" not in result.stderr
    assert blocker.read_text() == "not a directory"  # nothing was lost
