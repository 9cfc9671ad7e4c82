"""Open-set identification (`siamese evaluate RUN --protocol identification`) of the recipes
where it applies: the demo's glyphs, ORL faces over its identity folds (beside the ORL
tutorial's network on the same folds) and Omniglot's evaluation alphabets.

Each recipe's run is `bench_recipes.py`'s (runs/bench/NAME), trained here first when it is
not there (the demo's recipe into runs/bench/glyphs_triplet). Every figure is on identities
the run never trained on; thresholds (DIR and FPIR at a FAR) are the model's own, calibrated
by `siamese train` on its validation classes, never on the people measured.

Writes `benchmarks/results/identification.json`, its BENCHMARKS.md section and README's
identification table.

    python benchmarks/bench_identification.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results, replace_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "bench"

# (name, config, runs under RUNS, what)
RECIPES = (
    ("glyphs_triplet", "configs/glyphs_triplet.yaml", ["glyphs_triplet"], "40 held-out glyphs"),
    (
        "orl_verification",
        "configs/orl_verification.yaml",
        [f"orl_verification/data.test_fold={k}" for k in range(4)],
        "10 unseen people per fold, 4 folds",
    ),
    (
        "orl_verification: the ORL tutorial's network (peer)",
        None,
        [f"orl_verification-tutorial_network/data.test_fold={k}" for k in range(4)],
        "the same people and folds",
    ),
    (
        "omniglot_oneshot",
        "configs/omniglot_oneshot.yaml",
        ["omniglot_oneshot"],
        "659 characters of the 20 evaluation alphabets",
    ),
)


def ensure_run(run: Path, config: str | None, env: dict[str, str]) -> None:
    if (run / "model.safetensors").is_file():
        return
    if config is None:
        raise SystemExit(f"{run} is missing: run benchmarks/bench_recipes.py orl_verification")
    argv = [sys.executable, "-m", "siamese", "train", config, "--out", str(run), "--quiet"]
    subprocess.run(argv, env=env, cwd=ROOT, check=True)


def evaluate(run: Path, env: dict[str, str]) -> dict[str, Any]:
    out = run.parent / f"{run.name}-identification"
    argv = [sys.executable, "-m", "siamese", "evaluate", str(run), "--protocol"]
    argv += ["identification", "--out", str(out), "--quiet"]
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "data": metrics["data"],
        "statement": metrics["statement"],
        **metrics["metrics"]["identification"],
    }


def pooled(reports: list[dict[str, Any]], shots: str, path: tuple[str, ...]) -> dict | None:
    """Mean over runs of each run's mean (folds), and the std of those means."""
    values = []
    for report in reports:
        node: Any = report.get(shots, {})
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return None
        values.append(node["mean"])
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    return {"mean": mean, "std": std, "runs": len(values)}


def summary(reports: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for shots in ("1-shot", "5-shot"):
        out[shots] = {
            "rank1": pooled(reports, shots, ("rank1",)),
            "fnir_at_fpir_0.1": pooled(reports, shots, ("fnir_at_fpir", "0.1")),
            "fnir_at_fpir_0.01": pooled(reports, shots, ("fnir_at_fpir", "0.01")),
            "dir_at_far_0.01": pooled(reports, shots, ("at_threshold", "0.01", "dir")),
            "fpir_at_far_0.01": pooled(reports, shots, ("at_threshold", "0.01", "fpir")),
        }
    return out


def cell(value: dict | None, percent: bool = True) -> str:
    if value is None:
        return "—"
    spread = f" ± {100 * value['std']:.1f}" if value["runs"] > 1 else ""
    return f"{100 * value['mean']:.1f}{spread} %"


def table(document: dict[str, Any]) -> str:
    lines = [
        "| recipe | people measured | shots | rank-1 | FNIR at FPIR 10 % | FNIR at FPIR 1 % "
        "| DIR at the model's FAR 1e-2 threshold | FPIR there |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in document["recipes"]:
        for shots in ("1-shot", "5-shot"):
            s = row["summary"][shots]
            lines.append(
                f"| {row['name']} | {row['what']} | {shots} | {cell(s['rank1'])} | "
                f"{cell(s['fnir_at_fpir_0.1'])} | {cell(s['fnir_at_fpir_0.01'])} | "
                f"{cell(s['dir_at_far_0.01'])} | {cell(s['fpir_at_far_0.01'])} |"
            )
    return "\n".join(lines)


def section(document: dict[str, Any]) -> str:
    m = document["machine"]
    return "\n".join(
        [
            "Open-set identification on identities never trained on (all open-set): per "
            "trial half of them enrolled with 1 or 5 images, the rest of their images mated "
            "probes, every image of the others non-mated probes; 10 random trials per run "
            "(± over folds where there are several runs, else over nothing: one run). FNIR at "
            "FPIR p is measured only where p × strangers ≥ 1 (—: too few strangers, e.g. ORL's "
            "50 per trial cannot measure 1 %). DIR and FPIR at the model's own threshold for "
            "FAR 1e-2, calibrated by training on its validation classes.",
            "",
            table(document),
            "",
            f"Measured {document['date']} on {m['cpu']} ({m['cores']} cores).",
        ]
    )


def main() -> None:
    data_dir = os.environ.get("SIAMESE_DATA_DIR")
    if not data_dir:
        raise SystemExit("set SIAMESE_DATA_DIR to the directory with the datasets")
    env = {**os.environ, "SIAMESE_DATA_DIR": data_dir}
    rows = []
    for name, config, runs, what in RECIPES:
        print(f"{name} ...", flush=True)
        reports = []
        for run in runs:
            ensure_run(RUNS / run, config, env)
            reports.append(evaluate(RUNS / run, env))
        rows.append(
            {
                "name": name,
                "what": what,
                "runs": runs,
                "reports": reports,
                "summary": summary(reports),
            }
        )
    document = {
        "benchmark": "identification",
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "seed": 0,
        "recipes": rows,
    }
    text = section(document)
    publish_results("identification", document, text)
    replace_section(ROOT / "README.md", "identification-results", table(document))
    print(text)


if __name__ == "__main__":
    main()
