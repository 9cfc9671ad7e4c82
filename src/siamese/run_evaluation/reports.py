"""The three files `siamese evaluate` writes in a run directory: `metrics.json` (every number),
`report.md` (the headline table, the metrics and links to `figures/`) and a self-contained
`report.html` (the same, figures embedded, so it can be mailed or attached as one file)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siamese.atomic_files import atomic_directory, write_bytes_atomic
from siamese.errors import OutputError
from siamese.run_evaluation.result import Evaluation, statement_lines

_FIGURE_TITLES = {
    "embedding": "Embedding",
    "training": "Training curves",
    "roc": "Verification ROC",
    "distances": "Genuine and impostor distances",
    "retrieval": "Retrieval",
    "oneshot": "One-shot episodes",
}


@dataclass
class Preamble:
    """What a report built on top of the evaluation (the demo's) says before the generic part:
    a title, paragraphs (Markdown inline marks are kept as they are in HTML), a table whose
    first row is the header, notes as a bulleted list, and a flat `summary` of numbers added
    to metrics.json."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)


def evaluate_into(
    run_dir: Path,
    out: Path | None = None,
    preamble: Callable[[Evaluation], Preamble] | None = None,
    **options: Any,
) -> tuple[Evaluation, dict[str, Path]]:
    """`evaluate_run` and `write_reports` into the folder `out` (default RUN/evaluation) as a
    whole: everything is written into a temporary sibling first, which replaces `out` only
    when complete, so a failed or interrupted evaluation leaves an earlier one intact.

    Args:
        run_dir: a finished run.
        out: the evaluation's folder.
        preamble: builds a report opening from the finished evaluation (the demo's).
        options: `evaluate_run`'s (protocols, data_name, split, ood, seed, episodes, ...).
    Returns:
        The evaluation (its figure paths inside `out`) and the report paths by name.
    Raises:
        OutputError: `out` cannot be written. As `evaluate_run` otherwise.
    """
    from siamese.run_evaluation.evaluator import evaluate_run

    final = run_dir / "evaluation" if out is None else out
    try:
        with atomic_directory(final) as tmp:
            evaluation = evaluate_run(run_dir, out=tmp, **options)
            paths = write_reports(evaluation, preamble(evaluation) if preamble else None)
    except OSError as err:
        raise OutputError(
            f"cannot write the evaluation into {final}: {err.strerror or err}. Choose a "
            "writable folder with --out."
        ) from None
    evaluation.out_dir = final
    evaluation.figures = {k: final / p.relative_to(tmp) for k, p in evaluation.figures.items()}
    return evaluation, {k: final / p.relative_to(tmp) for k, p in paths.items()}


def write_reports(evaluation: Evaluation, preamble: Preamble | None = None) -> dict[str, Path]:
    """Write metrics.json, report.md, report.html (and pairs.csv) into the evaluation's
    folder; return their paths by name. A `preamble` opens both reports, and its summary
    goes into metrics.json."""
    run = evaluation.out_dir
    document = {
        **({"summary": preamble.summary} if preamble is not None else {}),
        "data": evaluation.data,
        "statement": evaluation.statement,
        "examples": evaluation.examples,
        "classes": evaluation.classes,
        "headline": evaluation.headline,
        "metrics": evaluation.metrics,
        "figures": {name: str(path.relative_to(run)) for name, path in evaluation.figures.items()},
    }
    paths = {
        "metrics": run / "metrics.json",
        "markdown": run / "report.md",
        "html": run / "report.html",
    }
    write_bytes_atomic(paths["metrics"], (json.dumps(document, indent=2) + "\n").encode())
    if evaluation.pairs is not None:
        paths["pairs"] = run / "pairs.csv"
        write_bytes_atomic(paths["pairs"], pairs_csv(evaluation).encode())
    write_bytes_atomic(paths["markdown"], markdown_report(evaluation, preamble).encode())
    write_bytes_atomic(paths["html"], html_report(evaluation, preamble).encode())
    return paths


def pairs_csv(evaluation: Evaluation) -> str:
    """The verification pairs as CSV: `i,j,same,distance` (i, j: indices of the evaluation
    examples; same: 1 = genuine, 0 = impostor), then `path_i,path_j` when the examples come
    from files; enough to re-derive every verification number."""
    assert evaluation.pairs is not None
    i, j, same, d = (t.tolist() for t in evaluation.pairs)
    paths = evaluation.labeled.paths if evaluation.labeled is not None else None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["i", "j", "same", "distance", *(["path_i", "path_j"] if paths else [])])
    for a, b, s, dist in zip(i, j, same, d, strict=True):
        row = [a, b, s, repr(float(dist))]
        writer.writerow(row + ([paths[a], paths[b]] if paths else []))
    return out.getvalue()


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _rows(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += _rows(value, f"{prefix}{key} ")
        else:
            rows.append((f"{prefix}{key}", _format(value)))
    return rows


def markdown_report(evaluation: Evaluation, preamble: Preamble | None = None) -> str:
    """The report as Markdown, figures linked from `figures/`."""
    lines = [
        f"# {preamble.title}" if preamble else f"# Evaluation of {evaluation.run_dir.name}",
        "",
        f"Data: {evaluation.data}, {evaluation.examples:,} examples of {evaluation.classes} classes.  ",
        *(f"{line}  " for line in statement_lines(evaluation.statement)),
        "",
    ]
    if preamble is not None:
        for paragraph in preamble.paragraphs:
            lines += [paragraph, ""]
        if preamble.table:
            header, *body = preamble.table
            lines += [
                "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header),
                *("| " + " | ".join(row) + " |" for row in body),
                "",
            ]
        lines += [f"- {note}" for note in preamble.notes]
        lines += ["", "## Every measure", ""] if preamble.notes else ["## Every measure", ""]
    lines += [
        "| measure | value |",
        "|---|---|",
        *(f"| {name} | {_format(value)} |" for name, value in evaluation.headline.items()),
    ]
    for protocol, values in evaluation.metrics.items():
        lines += ["", f"## {protocol.capitalize()}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in _rows(values)]
    if evaluation.figures:
        lines += ["", "## Figures"]
        for name, path in evaluation.figures.items():
            title = _FIGURE_TITLES.get(name, name)
            lines += ["", f"![{title}]({path.relative_to(evaluation.out_dir).as_posix()})"]
    return "\n".join(lines) + "\n"


def html_report(evaluation: Evaluation, preamble: Preamble | None = None) -> str:
    """The report as one HTML file with every figure embedded as a PNG data URI."""
    e = html.escape
    title = preamble.title if preamble else f"Evaluation of {evaluation.run_dir.name}"
    opening: list[str] = []
    if preamble is not None:
        opening += [f"<p>{e(p)}</p>" for p in preamble.paragraphs]
        if preamble.table:
            header, *body = preamble.table
            cells = "".join(f"<th>{e(h)}</th>" for h in header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in body
            )
            opening.append(f"<table><tr>{cells}</tr>{rows}</table>")
        if preamble.notes:
            opening.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in preamble.notes) + "</ul>")
        opening.append("<h2>Every measure</h2>")

    def table(rows: list[tuple[str, str]]) -> str:
        body = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in rows)
        return f"<table><tr><th>measure</th><th>value</th></tr>{body}</table>"

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;"
        "color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:4px 10px;text-align:left}th{background:#f3f3f3}img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>Data: {e(evaluation.data)}, {evaluation.examples:,} examples of "
        f"{evaluation.classes} classes.</p>",
        *(f"<p>{e(line)}</p>" for line in statement_lines(evaluation.statement)),
        *opening,
        table([(k, _format(v)) for k, v in evaluation.headline.items()]),
    ]
    for protocol, values in evaluation.metrics.items():
        parts += [f"<h2>{e(protocol.capitalize())}</h2>", table(_rows(values))]
    for name, path in evaluation.figures.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        title = e(_FIGURE_TITLES.get(name, name))
        parts += [f"<h2>{title}</h2>", f"<img alt='{title}' src='data:image/png;base64,{data}'>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
