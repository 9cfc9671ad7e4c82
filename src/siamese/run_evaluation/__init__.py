"""Evaluating a trained run: what `siamese evaluate RUN` does. `data` chooses the evaluation
examples (data the run never trained on by default), `protocols` measures each protocol with
the metric functions of `siamese.evaluation` and draws its figures, `evaluator` chains them
(`evaluate_run`), `reports` writes `metrics.json`, `report.md`, `report.html` and
`pairs.csv`; `evaluate_into` does both into one folder (RUN/evaluation by default) that is
replaced as a whole, never left half-written.

The metric functions themselves live in `siamese.evaluation` and know nothing of runs or
files. May import `config`, `data`, `evaluation`, `models`, `plots` and `run_directory` (the
run's data and its metrics.csv); only `cli` and `experiments` import it.
"""

from __future__ import annotations

from siamese.run_evaluation.evaluator import PROTOCOLS, Evaluation, evaluate_run
from siamese.run_evaluation.reports import evaluate_into, write_reports

__all__ = ["PROTOCOLS", "Evaluation", "evaluate_into", "evaluate_run", "write_reports"]
