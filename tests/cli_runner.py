"""Running the `siamese` command in-process, as a user would from a shell."""

from __future__ import annotations

import pytest

from siamese.cli import main


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`siamese ARGV...`: its exit code and everything it printed (stdout then stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err
