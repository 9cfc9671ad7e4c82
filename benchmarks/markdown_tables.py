"""Keeping generated tables in BENCHMARKS.md up to date."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, name: str, content: str) -> None:
    """Replace the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` in `path`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise SystemExit(f"{path} has no {start} ... {end} section to fill")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{content}\n{end}{tail}", encoding="utf-8")
