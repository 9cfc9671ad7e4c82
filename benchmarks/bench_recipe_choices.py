"""Recipe choices made on validation data only, never on the people or classes a recipe reports.

A choice compares a few options of one recipe (each a set of `--set` overrides) over the
recipe's identity folds and picks the option with the best mean validation figure. Every run
validates once, at its end, on its fold's validation classes (for `orl_verification`: 6
people neither trained on nor tested); the test classes are not evaluated at all here. The
recipe's config then carries the chosen option, and `bench_recipes.py` measures it once on
the test classes.

Writes `benchmarks/results/choice_<name>.json` (machine, per-fold validation figures, means,
the option chosen) and its BENCHMARKS.md section.

    python benchmarks/bench_recipe_choices.py                 # every choice
    python benchmarks/bench_recipe_choices.py orl_loss        # named choices only
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "choices"


@dataclass(frozen=True)
class Choice:
    name: str
    recipe: str
    question: str
    options: tuple[tuple[str, tuple[str, ...]], ...]
    """(label, `--set` overrides) per option."""
    folds: int
    lower_is_better: str = "val_eer"
    """The validation column of metrics.csv that decides (lower wins); ties go to the next."""
    tie_break: str = "val_roc_auc"
    """Higher wins."""
    higher_is_better: str | None = None
    """When set, this validation column decides instead (higher wins; ties: `tie_break`)."""
    common: tuple[str, ...] = ()
    """`--set` overrides every option shares (e.g. validation data the recipe itself does
    without)."""
    setting: str = (
        "identity folds (each fold's validation people only; its test people are not evaluated)"
    )
    """What the validation data is, for the section's first line."""

    @property
    def decides(self) -> str:
        return self.higher_is_better or self.lower_is_better


CHOICES: tuple[Choice, ...] = (
    Choice(
        "orl_loss",
        "orl_verification",
        "contrastive loss or semi-hard triplets for open-set face verification",
        (
            (
                "contrastive, margin 0.5",
                ("loss.name=contrastive", "loss.margin=0.5"),
            ),
            (
                "semi-hard triplets, margin 0.2",
                ("loss.name=triplet", "loss.margin=0.2", "loss.mining=semihard"),
            ),
        ),
        folds=4,
    ),
    Choice(
        "mnist_loss",
        "mnist_retrieval",
        "semi-hard triplets or the losses that led the reality check on MNIST's validation "
        "digits (benchmarks/bench_loss_zoo.py: NT-Xent, multi-similarity)",
        (
            ("semi-hard triplets, margin 0.2", ("loss={name: triplet}",)),
            ("NT-Xent, τ 0.07", ("loss={name: ntxent}",)),
            ("multi-similarity, β 20", ("loss={name: multi_similarity, beta: 20}",)),
        ),
        folds=1,
        higher_is_better="val_precision_at_1",
        common=("data.validation=samples", "data.validation_fraction=0.1"),
        setting="a validation share of 10 % of the training digits (6,000, closed-set like "
        "the test digits; the test digits are not evaluated)",
    ),
    Choice(
        "omniglot_loss",
        "omniglot_oneshot",
        "semi-hard triplets or the losses that led the reality check on Omniglot's validation "
        "characters (benchmarks/bench_loss_zoo.py: circle γ 32 and multi-similarity β 20, "
        "each at 3× the triplet learning rate, as the zoo's search chose for both)",
        (
            ("semi-hard triplets, margin 0.2, lr 0.002", ("loss={name: triplet}",)),
            ("circle, γ 32, lr 0.006", ("loss={name: circle, gamma: 32}", "optimizer.lr=0.006")),
            (
                "multi-similarity, β 20, lr 0.006",
                ("loss={name: multi_similarity, beta: 20}", "optimizer.lr=0.006"),
            ),
        ),
        folds=1,
        higher_is_better="val_precision_at_1",
        setting="the recipe's own validation characters (10 % of the background alphabets' "
        "classes, never trained on; the evaluation alphabets are not evaluated)",
    ),
)


def final_validation(run: Path) -> dict[str, float]:
    """The last validation row of a run's metrics.csv: its `val_*` figures."""
    with (run / "metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "validation"]
    if not rows:
        raise SystemExit(f"{run} has no validation row in metrics.csv")
    return {k: float(v) for k, v in rows[-1].items() if k.startswith("val_") and v != ""}


def run_choice(choice: Choice, env: dict[str, str]) -> dict[str, Any]:
    """Train every option on every fold (validation only); the results document."""
    options = []
    for index, (label, overrides) in enumerate(choice.options):
        start = time.perf_counter()
        per_fold = []
        for fold in range(choice.folds):
            run = RUNS / choice.name / f"option{index}" / f"data.test_fold={fold}"
            shutil.rmtree(run, ignore_errors=True)
            run.parent.mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, "-m", "siamese", "train", f"configs/{choice.recipe}.yaml"]
            argv += ["--out", str(run), "--quiet", "--set", f"data.test_fold={fold}"]
            for override in (*choice.common, *overrides):
                argv += ["--set", override]
            done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
            per_fold.append({"data.test_fold": fold, **final_validation(run)})
        names = [n for n in per_fold[0] if n.startswith("val_")]
        means = {n: sum(f[n] for f in per_fold) / len(per_fold) for n in names}
        options.append(
            {
                "option": label,
                "overrides": list(overrides),
                "folds": per_fold,
                "mean": means,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(json.dumps(options[-1]), flush=True)
    if choice.higher_is_better:
        best = max(
            options,
            key=lambda o: (o["mean"][choice.higher_is_better], o["mean"][choice.tie_break]),
        )
    else:
        best = min(
            options,
            key=lambda o: (o["mean"][choice.lower_is_better], -o["mean"][choice.tie_break]),
        )
    return {
        "choice": choice.name,
        "recipe": choice.recipe,
        "options": options,
        "chosen": best["option"],
    }


def section(document: dict[str, Any], choice: Choice) -> str:
    """The choice's BENCHMARKS.md section."""
    column = choice.decides
    title = column.removeprefix("val_").replace("_", " ")
    title = title.upper() if title == "eer" else title
    folds = f"over {choice.folds} {choice.setting}" if choice.folds > 1 else f"on {choice.setting}"
    lines = [
        f"`{choice.recipe}`: {choice.question}. Decided by the mean validation {title} {folds}.",
        "",
        "| option | " + " | ".join(f"fold {k}" for k in range(choice.folds)) + f" | mean {title} "
        "| mean ROC AUC |",
        "|---|" + "---|" * (choice.folds + 2),
    ]
    for option in document["options"]:
        cells = [f"{100 * f[column]:.2f} %" for f in option["folds"]]
        lines.append(
            f"| {option['option']} | "
            + " | ".join(cells)
            + f" | {100 * option['mean'][column]:.2f} % "
            f"| {option['mean']['val_roc_auc']:.3f} |"
        )
    m = document["machine"]
    lines += [
        "",
        f"Chosen: **{document['chosen']}** (fold cells: validation {title}). Measured "
        f"{document['date']} on {m['cpu']} ({m['cores']} cores).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("choices", nargs="*", help="choice names (default: all)")
    parser.add_argument("--data-dir", default=os.environ.get("SIAMESE_DATA_DIR"))
    args = parser.parse_args()
    known = {c.name: c for c in CHOICES}
    unknown = sorted(set(args.choices) - set(known))
    if unknown:
        raise SystemExit(f"unknown choice(s) {unknown}; known: {', '.join(known)}")
    if not args.data_dir:
        raise SystemExit("set SIAMESE_DATA_DIR (or --data-dir) to the directory with the datasets")
    env = {**os.environ, "SIAMESE_DATA_DIR": args.data_dir}
    import torch

    for choice in [known[n] for n in args.choices] if args.choices else CHOICES:
        result = run_choice(choice, env)
        document = {
            "benchmark": f"choice_{choice.name}",
            "date": time.strftime("%Y-%m-%d"),
            "machine": describe_machine(),
            "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
            "seed": 0,
            **result,
        }
        text = section(document, choice)
        publish_results(f"choice_{choice.name}", document, text)
        print(text, flush=True)


if __name__ == "__main__":
    main()
