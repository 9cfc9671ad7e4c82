"""Evaluating a trained run: what `siamese evaluate RUN` does. `data` chooses the evaluation
examples (data the run never trained on by default), `protocols` measures each protocol with
the metric functions of `siamese.evaluation` and draws its figures, `evaluator` chains them
(`evaluate_run`), `reports` writes `metrics.json`, `report.md`, `report.html` and
`pairs.csv`; `evaluate_into` does both into one folder (RUN/evaluation by default) that is
replaced as a whole, never left half-written.

The metric functions themselves live one level up and know nothing of runs or files. May
import `config`, `data`, `models`, `plots`, `training.setup` (the run's own data) and
`training.telemetry` (its metrics.csv); only `cli` and `pipelines` import it.
"""

from __future__ import annotations

from siamese.evaluation.run.evaluator import PROTOCOLS, Evaluation, evaluate_run
from siamese.evaluation.run.reports import evaluate_into, write_reports

__all__ = ["PROTOCOLS", "Evaluation", "evaluate_into", "evaluate_run", "write_reports"]
