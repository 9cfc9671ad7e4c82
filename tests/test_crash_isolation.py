"""The suite's own pytest settings isolate native crashes: a test that kills its process (a
segmentation fault, an abort) fails by name, the tests after it still run, and the summary line
is printed, so CI always says what failed (issue 23)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent

CRASHING_TESTS = """
import ctypes
import os


def test_before():
    assert True


def test_segfaults():
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def test_aborts():
    os.abort()  # SIGABRT, as "double free or corruption" ends


def test_after():
    assert True
"""


@pytest.mark.slow
def test_a_native_crash_fails_its_test_and_the_run_goes_on(tmp_path: Path) -> None:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    options = settings["ini_options"]
    assert "-n" in options["addopts"].split(), "the suite no longer runs in a worker process"
    # the project's own options, on a file of its own
    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\naddopts = {options['addopts']}\n"
        f"faulthandler_timeout = {options['faulthandler_timeout']}\n"
    )
    (tmp_path / "test_crashes.py").write_text(CRASHING_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_crashes.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "crashed while running 'test_crashes.py::test_segfaults'" in output, output[-3000:]
    assert "crashed while running 'test_crashes.py::test_aborts'" in output, output[-3000:]
    assert "Fatal Python error" in output  # faulthandler's stack of the crashing thread
    assert "2 failed, 2 passed" in result.stdout.splitlines()[-1], output[-3000:]
