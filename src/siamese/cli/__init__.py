"""The `siamese` command: the typer app and its entry point (`app`), one module per command
group (`train`, `evaluate`, `plot`, `sweep`, `datasets`, `demo`, `recognize`: embed, compare
and calibrate, `gallery`). Each command parses its
options, calls one library function and prints the result; user errors (`SiameseError`) become
one message without a traceback. Commands import the library lazily, so `siamese --help` does
not pay for torch. Nothing imports `cli`.
"""

from __future__ import annotations

from siamese.cli.app import app, main

__all__ = ["app", "main"]
