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


def test_out_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for out in (blocker, blocker / "run"):
        result = run_cli("demo", "--out", str(out), "--quiet")
        assert result.returncode == 1
        assert str(blocker) in result.stderr and "--out" in result.stderr
        assert "Traceback" not in result.stderr
    assert blocker.read_text() == "not a directory"  # nothing was lost
