"""Keeping generated tables in BENCHMARKS.md and the results files up to date."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def replace_section(path: Path, name: str, content: str) -> None:
    """Replace the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` in `path`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise SystemExit(
            f"{path} has no {start} ... {end} section to fill: add the two markers where the "
            f"section belongs (the results are saved: publish again from results/{name}.json)"
        )
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{content}\n{end}{tail}", encoding="utf-8")


def publish_results(name: str, document: dict[str, Any], section: str) -> Path:
    """Write `document` to `results/NAME.json` and `section` into BENCHMARKS.md's NAME
    section; returns the JSON's path."""
    here = Path(__file__).resolve().parent
    path = here / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    replace_section(here / "BENCHMARKS.md", name, section)
    return path
