"""What an evaluation of a run measured and drew (`Evaluation`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from siamese.data.labeled import LabeledData


def statement_lines(statement: dict[str, Any]) -> list[str]:
    """The data statement in words: which classes were seen in training, how many examples
    were trained on, and any warning."""
    if not statement:
        return []
    seen, classes = statement["classes_seen"], statement["classes"]
    trained = statement["examples_trained_on"]
    lines = [
        f"Classes seen in training: {seen} of {classes} ({statement['setting']}).",
        f"Examples trained on: {trained:,} of {statement['examples']:,}.",
    ]
    return lines + [f"Warning: {w}" for w in statement.get("warnings", [])]


@dataclass
class Evaluation:
    """What an evaluation measured and drew.

    `metrics` maps a protocol to its numbers; `figures` maps a figure name to its PNG path;
    `headline` holds the few numbers the report's first table shows.
    """

    run_dir: Path
    data: str
    examples: int
    classes: int
    out_dir: Path
    """Where its figures are (`figures/`) and its reports go."""
    metrics: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    headline: dict[str, float] = field(default_factory=dict)
    labeled: LabeledData | None = None
    """The evaluation examples themselves (for callers that draw more figures)."""
    embeddings: torch.Tensor | None = None
    """(N, D) their embeddings by the run's model."""
    statement: dict[str, Any] = field(default_factory=dict)
    """What the data is with respect to training, for the report's first lines:
    `classes_seen` (of `classes`), `setting` ("open-set", "closed-set" or "partly seen
    classes"), `examples_trained_on`, and `warnings`."""
    pairs: tuple[torch.Tensor, ...] | None = None
    """The verification pairs (i, j, same, distance), each (P,): i and j index the evaluation
    examples, same is 1 = genuine, 0 = impostor; written to `pairs.csv`."""
