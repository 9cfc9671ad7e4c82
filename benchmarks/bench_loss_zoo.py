"""A metric-learning reality check on this project's data (after Musgrave, Belongie and Lim,
"A Metric Learning Reality Check", ECCV 2020): every loss of the catalog under one protocol.

Per dataset, every loss trains the same encoder with the same P×K sampler, augmentation,
optimiser, schedule and number of steps (the same images seen: the budget). Each loss's
hyperparameters are chosen on validation data only:

1. its own settings: two candidates (the catalog's default and one other, below), at the
   dataset's learning rate;
2. the learning rate: the better candidate at the rate × 1/3 and × 3;

the pick is the best validation MAP@R of the four. The picked setting then trains on the
training and validation data with other seeds (or on every identity fold), and only those
runs are evaluated on the test split, which no choice saw:

    dataset         train → validation → test                              classes in test
    mnist           train split less 10 % of its examples → those → test   seen (closed-set)
    fashion-mnist   the same                                               seen (closed-set)
    omniglot        background less 20 % of its characters → those →       unseen (open-set)
                    evaluation alphabets (MAP@R, P@1, 20-way 1-shot)
    orl             4 identity folds: per fold, 10 people test, 6 of the   unseen (open-set)
                    other 30 validation, 24 train; the choice is made per
                    fold on that fold's validation people (nested), so no
                    test person ever chose a setting

Reported per loss: test MAP@R and P@1 (leave-one-out retrieval within the test split), 20-way
1-shot accuracy on Omniglot, mean ± standard deviation over the seeds or folds, the chosen
setting and the mean training time. Runs go to `runs/zoo/` and every finished job is kept in
`runs/zoo/jobs.jsonl`, so an interrupted benchmark resumes where it stopped. Writes
`benchmarks/results/loss_zoo.json`, its BENCHMARKS.md section and README's table.

    python benchmarks/bench_loss_zoo.py                         # all datasets, 2 workers
    python benchmarks/bench_loss_zoo.py --datasets orl --losses triplet,arcface
    python benchmarks/bench_loss_zoo.py --from-results          # tables from the JSON only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results, replace_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "zoo"
JOBS = RUNS / "jobs.jsonl"
NAME = "loss_zoo"


@dataclass(frozen=True)
class Dataset:
    name: str
    config: dict[str, Any]
    """The run config every loss shares (its `loss` section is the loss's)."""
    test_split: str | None
    """The split evaluated for the report (None: the fold's test classes, `test_fraction`)."""
    setting: str
    folds: int = 0
    """Identity folds (0: none; the seeds below give the spread)."""
    seeds: tuple[int, ...] = (1, 2)
    fewshot: bool = False


def _config(
    data: dict[str, Any], widths: list[int], p: int, k: int, steps: int, lr: float
) -> dict[str, Any]:
    return {
        "seed": 0,
        "data": data,
        "augment": {"degrees": 8, "translate": 0.06},
        "model": {
            "encoder": "convnet",
            "options": {"widths": widths},
            "embedding_dim": 64,
            "normalize": True,
        },
        "batches": {"kind": "pk", "p": p, "k": k},
        "optimizer": {"name": "adamw", "lr": lr, "weight_decay": 0.0001},
        "schedule": {"name": "cosine", "warmup_fraction": 0.05},
        "train": {"steps": steps, "epochs": None, "log_every": 50, "validate_every": 0},
    }


SAMPLES = {"validation": "samples", "validation_fraction": 0.1}
DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        "mnist",
        _config({"name": "mnist", "split": "train", **SAMPLES}, [16, 32, 64], 10, 16, 100, 0.003),
        "test",
        "closed-set: the test digits' classes were trained on",
    ),
    "fashion-mnist": Dataset(
        "fashion-mnist",
        _config(
            {"name": "fashion-mnist", "split": "train", **SAMPLES}, [16, 32, 64], 10, 16, 100, 0.003
        ),
        "test",
        "closed-set: the test garments' classes were trained on",
    ),
    "omniglot": Dataset(
        "omniglot",
        _config(
            {
                "name": "omniglot",
                "split": "background",
                "options": {"image_size": [28, 28]},
                "validation": "classes",
                "validation_fraction": 0.2,
            },
            [16, 32, 64],
            32,
            4,
            200,
            0.003,
        ),
        "evaluation",
        "open-set: the evaluation alphabets' characters were never trained on",
        fewshot=True,
    ),
    "orl": Dataset(
        "orl",
        _config(
            {
                "name": "orl",
                "split": "all",
                "options": {"image_size": [28, 23]},
                "validation": "classes",
                "validation_fraction": 0.2,
                "test_fraction": 0.25,
            },
            [16, 32, 64],
            12,
            4,
            150,
            0.002,
        ),
        None,
        "open-set: each fold's 10 test people were never trained on",
        folds=4,
        seeds=(0,),
    ),
}

CANDIDATES: dict[str, tuple[dict[str, Any], ...]] = {
    "triplet": ({}, {"margin": 0.1}),
    "contrastive": ({}, {"margin": 0.5}),
    "pair_classifier": ({},),
    "arcface": ({}, {"scale": 16.0}),
    "subcenter_arcface": ({}, {"scale": 16.0}),
    "cosface": ({}, {"scale": 16.0}),
    "normalized_softmax": ({}, {"temperature": 0.1}),
    "proxy_anchor": ({}, {"alpha": 16.0}),
    "proxy_nca": ({}, {"scale": 8.0}),
    "multi_similarity": ({}, {"beta": 20.0}),
    "circle": ({}, {"gamma": 32.0}),
    "lifted_structure": ({}, {"margin": 0.5}),
    "margin_loss": ({}, {"margin": 0.1}),
    "ntxent": ({}, {"temperature": 0.2}),
    "supcon": ({}, {"temperature": 0.2}),
}
"""Each loss's candidates in step 1 (the first is the catalog's default: no override; the
other moves the setting the loss's paper or PML's users most often change)."""
LR_FACTORS = (1 / 3, 3.0)


@dataclass(frozen=True)
class Job:
    dataset: str
    fold: int
    loss: str
    options: tuple[tuple[str, Any], ...]
    lr: float
    seed: int
    purpose: str  # "search" (validation MAP@R) or "test"

    @property
    def key(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options) or "default"
        return f"{self.dataset}/f{self.fold}/{self.loss}/{opts}/lr={self.lr:.6g}/s{self.seed}/{self.purpose}"

    @property
    def run_dir(self) -> Path:
        safe = self.key.replace("/", "__").replace("=", "-").replace(",", "_")
        return RUNS / safe


@dataclass
class Ledger:
    """Finished jobs by key, kept in `runs/zoo/jobs.jsonl` (one JSON object per line)."""

    done: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls) -> Ledger:
        ledger = cls()
        if JOBS.exists():
            for line in JOBS.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    ledger.done[row["key"]] = row
        return ledger

    def add(self, row: dict[str, Any]) -> None:
        self.done[row["key"]] = row
        JOBS.parent.mkdir(parents=True, exist_ok=True)
        with JOBS.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def run_job(job: Job) -> dict[str, Any]:
    """Train one job's run and measure it: validation MAP@R (search) or the test figures."""
    import shutil

    import torch

    torch.set_num_threads(1)
    from siamese.config import RunConfig
    from siamese.config.loading import from_dict
    from siamese.config.schema import check_config
    from siamese.training.training_run import TrainingRun, train_run

    # The runs' decision thresholds are not part of this comparison; calibrating them on the
    # validation classes (the FPIR tables) cost as much as the training itself on Omniglot.
    TrainingRun._calibrated_thresholds = lambda self: None  # type: ignore[method-assign]

    dataset = DATASETS[job.dataset]
    raw = json.loads(json.dumps(dataset.config))
    raw["seed"] = job.seed
    raw["loss"] = {"name": job.loss, **dict(job.options)}
    raw["optimizer"]["lr"] = job.lr
    if dataset.folds:
        raw["data"]["test_fold"] = job.fold
    if job.purpose == "test":  # the setting is chosen: train on training + validation data
        raw["data"]["validation"] = "none"
    config = from_dict(RunConfig, raw, job.key)
    check_config(config, job.key)
    shutil.rmtree(job.run_dir, ignore_errors=True)
    started = time.perf_counter()
    result = train_run(config, job.run_dir, quiet=True, force=True)
    train_seconds = time.perf_counter() - started
    row: dict[str, Any] = {
        "key": job.key,
        "dataset": job.dataset,
        "fold": job.fold,
        "loss": job.loss,
        "options": dict(job.options),
        "lr": job.lr,
        "seed": job.seed,
        "purpose": job.purpose,
        "train_seconds": round(train_seconds, 2),
        "images_per_s": round(result.images_per_s, 1),
    }
    if job.purpose == "search":
        row.update(_validation_figures(config, job.run_dir))
    else:
        row.update(_test_figures(dataset, job.run_dir))
    shutil.rmtree(job.run_dir / "checkpoints", ignore_errors=True)
    return row


def _validation_figures(config: Any, run: Path) -> dict[str, Any]:
    import siamese
    from siamese.evaluation.embed import embed
    from siamese.evaluation.retrieval import retrieval_metrics
    from siamese.run_directory.data import load_training_data

    _, val, _ = load_training_data(config)
    z = embed(siamese.load_model(run), val.x)
    report = retrieval_metrics(z, val.y, metric=config.loss.metric)
    return {"val_map_at_r": report.map_at_r, "val_precision_at_1": report.precision_at_1}


def _test_figures(dataset: Dataset, run: Path) -> dict[str, Any]:
    from siamese.run_evaluation import evaluate_run

    protocols = ("retrieval", "fewshot") if dataset.fewshot else ("retrieval",)
    evaluation = evaluate_run(
        run, protocols=protocols, split=dataset.test_split, episodes=500, out=run / "evaluation"
    )
    retrieval = evaluation.metrics["retrieval"]
    row = {
        "map_at_r": retrieval["map_at_r"],
        "precision_at_1": retrieval["precision_at_1"],
        "test_examples": evaluation.examples,
        "test_classes": evaluation.classes,
        "setting": evaluation.statement.get("setting"),
        "classes_seen": evaluation.statement.get("classes_seen"),
    }
    if dataset.fewshot:
        row["20-way 1-shot"] = evaluation.metrics["fewshot"]["20-way 1-shot"]["accuracy"]
    return row


def run_jobs(jobs: list[Job], ledger: Ledger, workers: int) -> None:
    todo = [j for j in jobs if j.key not in ledger.done]
    if not todo:
        return
    print(f"{len(todo)} jobs ({len(jobs) - len(todo)} already done)", flush=True)
    env_threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    os.environ.update(env_threads)
    if workers <= 1:
        for job in todo:
            ledger.add(run_job(job))
            print(f"done {job.key}", flush=True)
        return
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for job, row in zip(todo, pool.map(run_job, todo), strict=True):
            ledger.add(row)
            figure = row.get("val_map_at_r", row.get("map_at_r"))
            print(f"done {job.key}: {figure:.4f} in {row['train_seconds']:.0f} s", flush=True)


def base_lr(dataset: str) -> float:
    return float(DATASETS[dataset].config["optimizer"]["lr"])


def search(dataset: str, fold: int, losses: list[str], ledger: Ledger, workers: int) -> dict:
    """Each loss's pick on validation: (options, lr) with the best validation MAP@R."""
    lr = base_lr(dataset)
    step1 = [
        Job(dataset, fold, loss, tuple(sorted(c.items())), lr, 0, "search")
        for loss in losses
        for c in CANDIDATES[loss]
    ]
    run_jobs(step1, ledger, workers)
    best1 = {loss: _best([j for j in step1 if j.loss == loss], ledger) for loss in losses}
    step2 = [
        Job(dataset, fold, loss, best1[loss].options, lr * f, 0, "search")
        for loss in losses
        for f in LR_FACTORS
    ]
    run_jobs(step2, ledger, workers)
    picks = {}
    for loss in losses:
        pick = _best([best1[loss], *[j for j in step2 if j.loss == loss]], ledger)
        picks[loss] = pick
    return picks


def _best(jobs: list[Job], ledger: Ledger) -> Job:
    # ties go to the earlier candidate (the default first, then the base learning rate)
    return max(jobs, key=lambda j: (ledger.done[j.key]["val_map_at_r"], -jobs.index(j)))


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--losses", default=",".join(CANDIDATES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--from-results", action="store_true")
    args = parser.parse_args()
    if args.from_results:
        document = json.loads((HERE / "results" / f"{NAME}.json").read_text(encoding="utf-8"))
        publish(document)
        return
    datasets = [d for d in args.datasets.split(",") if d]
    losses = [loss for loss in args.losses.split(",") if loss]
    for name in [*datasets, *losses]:
        if name not in DATASETS and name not in CANDIDATES:
            raise SystemExit(f"unknown dataset or loss {name!r}")
    os.environ.setdefault("SIAMESE_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    ledger = Ledger.read()
    started = time.time()
    previous = HERE / "results" / f"{NAME}.json"
    results: dict[str, Any] = {}
    if previous.exists():  # keep the datasets this run does not measure
        results = json.loads(previous.read_text(encoding="utf-8")).get("datasets", {})
    for name in datasets:
        dataset = DATASETS[name]
        folds = range(dataset.folds) if dataset.folds else [0]
        picks = {fold: search(name, fold, losses, ledger, args.workers) for fold in folds}
        tests = [
            Job(name, fold, loss, pick.options, pick.lr, seed, "test")
            for fold in folds
            for loss, pick in picks[fold].items()
            for seed in dataset.seeds
        ]
        run_jobs(tests, ledger, args.workers)
        results[name] = summarise(dataset, picks, tests, ledger)
        document = {
            "benchmark": NAME,
            "date": time.strftime("%Y-%m-%d"),
            "machine": describe_machine(),
            "protocol": __doc__.split("\n\n")[1:4],
            "candidates": {k: list(v) for k, v in CANDIDATES.items()},
            "lr_factors": list(LR_FACTORS),
            "datasets": {k: results[k] for k in DATASETS if k in results},
            "wall_seconds": round(time.time() - started, 1),
        }
        publish(document)  # after every dataset: an interrupted benchmark keeps what it has


def summarise(dataset: Dataset, picks: dict[int, dict[str, Job]], tests: list[Job], ledger: Ledger):
    config = DATASETS[dataset.name].config
    rows = {}
    for loss in picks[next(iter(picks))]:
        done = [ledger.done[j.key] for j in tests if j.loss == loss]
        figures = {}
        for metric in ("map_at_r", "precision_at_1", "20-way 1-shot"):
            values = [row[metric] for row in done if metric in row]
            if values:
                mean, std = mean_std(values)
                figures[metric] = {"mean": mean, "std": std, "values": values}
        rows[loss] = {
            "chosen": [
                {"fold": fold, "options": dict(p[loss].options), "lr": p[loss].lr}
                for fold, p in picks.items()
            ],
            "validation_map_at_r": [
                ledger.done[p[loss].key]["val_map_at_r"] for p in picks.values()
            ],
            "test": figures,
            "train_seconds": statistics.fmean(row["train_seconds"] for row in done),
            "setting": done[0].get("setting"),
        }
    return {
        "setting": dataset.setting,
        "spread_over": f"{dataset.folds} identity folds"
        if dataset.folds
        else f"{len(dataset.seeds)} seeds",
        "budget": {
            "steps": config["train"]["steps"],
            "batch": f"P×K = {config['batches']['p']}×{config['batches']['k']}",
            "encoder": f"convnet {config['model']['options']['widths']}, 64-d, normalised",
        },
        "test_split": dataset.test_split or "each fold's test people",
        "losses": rows,
    }


def publish(document: dict[str, Any]) -> None:
    table = markdown(document)
    publish_results(NAME, document, table)
    replace_section(ROOT / "README.md", NAME, table)


def _cell(figure: dict[str, float] | None) -> str:
    if not figure:
        return "—"
    return f"{100 * figure['mean']:.1f} ± {100 * figure['std']:.1f}"


def markdown(document: dict[str, Any]) -> str:
    lines = []
    machine = document["machine"]
    for name, result in document["datasets"].items():
        budget = result["budget"]
        lines.append(
            f"**{name}** ({result['setting']}; test: {result['test_split']}; spread over "
            f"{result['spread_over']}; every loss {budget['steps']} steps of {budget['batch']}, "
            f"{budget['encoder']})\n"
        )
        fewshot = any("20-way 1-shot" in r["test"] for r in result["losses"].values())
        head = "| loss | MAP@R % | P@1 % |" + (" 20-way 1-shot % |" if fewshot else "")
        lines.append(head + " chosen on validation | train s |")
        lines.append("|---" * (head.count("|") + 1) + "|")
        ranked = sorted(
            result["losses"].items(),
            key=lambda kv: -kv[1]["test"].get("map_at_r", {"mean": 0})["mean"],
        )
        for loss, row in ranked:
            chosen = row["chosen"][0]
            opts = ", ".join(f"{k} {v}" for k, v in chosen["options"].items()) or "defaults"
            if len(row["chosen"]) > 1:
                opts = "per fold: " + "; ".join(
                    (", ".join(f"{k} {v}" for k, v in c["options"].items()) or "defaults")
                    + f" lr {c['lr']:.2g}"
                    for c in row["chosen"]
                )
            else:
                opts += f", lr {chosen['lr']:.2g}"
            cells = [_cell(row["test"].get("map_at_r")), _cell(row["test"].get("precision_at_1"))]
            if fewshot:
                cells.append(_cell(row["test"].get("20-way 1-shot")))
            lines.append(
                f"| `{loss}` | " + " | ".join(cells) + f" | {opts} | {row['train_seconds']:.0f} |"
            )
        lines.append("")
    lines.append(
        f"Measured {document['date']} on {machine.get('cpu', 'this machine')} "
        f"({machine.get('cores', '?')} cores), 2 runs at a time, 1 thread each; "
        "`benchmarks/bench_loss_zoo.py`, results in `benchmarks/results/loss_zoo.json`. "
        "Every loss of a dataset sees the same images (the budget is steps, not seconds); "
        "`train s` is the wall time of one run beside another on the shared cores, a rough "
        "guide to a loss's cost only. Settings at the edge of the search (most picks took the "
        "highest learning rate on MNIST: the budget is short) say the search could go further."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
