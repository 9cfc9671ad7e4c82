"""Every recipe in `configs/`, run as a user runs it, and measured against its goal and peers.

For each recipe: `siamese train` (or `siamese sweep`) in a fresh process, timed from start to
the saved model; then `siamese evaluate` with the recipe's protocol; the figures are read
from the run's evaluation/metrics.json. Peers run in the same invocation on the same machine,
under the recipe's own protocol: pytorch-metric-learning's standard MNIST recipe beside
`mnist_retrieval`, with its own network and with ours (its accuracy at our training time, and
the time it needs to reach ours); the Keras tutorial itself (Keras 3, torch backend) beside
`mnist_keras_tutorial`; the ORL tutorial's network and training on `orl_verification`'s
identity folds (the same people to train, validate and test, the same balanced pairs).

Writes `benchmarks/results/recipe_<name>.json` per recipe (machine, versions, seed, wall
times, figures, goals), its BENCHMARKS.md section, and README's Results table.

    python benchmarks/bench_recipes.py                  # every recipe (about an hour here)
    python benchmarks/bench_recipes.py --quick          # the few-minute subset
    python benchmarks/bench_recipes.py mnist_retrieval  # named recipes only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results, replace_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "bench"
VERDICTS = {True: "met", False: "not met", None: "not measured"}
PEER_TIME_FACTOR = 2  # PML's recipe may train up to this multiple of our training time


@dataclass(frozen=True)
class Goal:
    """A figure the recipe must reach: `path` into metrics.json's `metrics` (or a result key
    such as `train_seconds`), compared with `at_least` or `at_most`."""

    label: str
    path: str
    at_least: float | None = None
    at_most: float | None = None

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        if self.at_least is not None and value < self.at_least:
            return False
        return not (self.at_most is not None and value > self.at_most)


@dataclass(frozen=True)
class Recipe:
    name: str
    what: str
    evaluate: tuple[str, ...]
    figures: tuple[tuple[str, str], ...]
    """(label, path): the figures reported, paths into metrics.json's `metrics`."""
    goals: tuple[Goal, ...] = ()
    tutorial: str = ""
    anchor: str = ""
    quick: bool = False
    sweep: tuple[str, ...] = ()
    """`--set KEY=V1,V2,...` for recipes that are sweeps."""
    run_of: str = ""
    """Evaluate another recipe's run instead of training one (the same model measured by
    another protocol): its name; that run is trained first if it is not there."""
    folds: int = 0
    """Identity folds (`data.test_fold` 0 … folds − 1): one run per fold, figures as the
    mean ± std over them; `figures` then name evaluation headlines."""
    peer: str = ""
    """A peer run in the same invocation under the recipe's protocol: "pml", "keras" or
    "orl_tutorial_network"."""
    claim: str = ""
    """A published figure measured under this recipe's own protocol (a reproduction's
    target), for the reference column when no peer runs; figures under other protocols stay
    in `tutorial` and `anchor`, which only BENCHMARKS.md shows."""
    figures_drawn: tuple[str, ...] = field(default=())


ONE_NN = "retrieval.precision_at_1"
RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "mnist_keras_tutorial",
        "the Keras MNIST triplet tutorial reproduced (MLP 784-64-64 sigmoid, random triplets)",
        ("--protocol", "retrieval", "--gallery", "train"),
        (("1-NN accuracy (gallery: 60k training)", ONE_NN), ("MAP@R", "retrieval.map_at_r")),
        tutorial="≈ 90 % 1-NN (issue 7's measurement of the tutorial)",
        anchor="Keras tutorial (no paper)",
        quick=True,
        peer="keras",
    ),
    Recipe(
        "mnist_retrieval",
        "our best MNIST recipe: ConvNet, multi-similarity loss (chosen on validation digits), "
        "light affine augmentation",
        ("--protocol", "retrieval", "--gallery", "train"),
        (("1-NN accuracy (gallery: 60k training)", ONE_NN), ("MAP@R", "retrieval.map_at_r")),
        goals=(
            Goal("1-NN accuracy ≥ 99.5 %", ONE_NN, at_least=0.995),
            Goal("training ≤ 2 minutes", "train_seconds", at_most=120),
        ),
        tutorial="the Keras tutorial (recipe mnist_keras_tutorial)",
        anchor="PML's MNIST recipe with its network and with ours (peers, measured here)",
        peer="pml",
    ),
    Recipe(
        "mnist_margin_sweep",
        "the triplet-CNN tutorial (10-d embedding) trained at margins 0 … 0.9",
        (),
        (),
        tutorial="a grid of embedding plots over margins 0 … 0.9",
        anchor="tutorial (no paper)",
        sweep=("loss.margin=0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",),
    ),
    Recipe(
        "mnist_novelty",
        "softmax probe, Gini and distance novelty detectors vs Omniglot characters",
        ("--protocol", "novelty", "--ood", "omniglot:evaluation"),
        (
            ("probe accuracy (MNIST test)", "novelty.probe_accuracy"),
            ("AUROC, Gini impurity", "novelty.gini.auroc"),
            ("AUROC, distance to nearest training digit", "novelty.distance.auroc"),
        ),
        goals=(
            Goal("probe accuracy ≥ 99 %", "novelty.probe_accuracy", at_least=0.99),
            Goal("Gini AUROC ≥ 0.99", "novelty.gini.auroc", at_least=0.99),
            Goal("distance AUROC ≥ 0.99", "novelty.distance.auroc", at_least=0.99),
        ),
        tutorial="softmax classifier on the embeddings 88 %; Gini test rejects non-digits",
        anchor="tutorial (no paper)",
        run_of="mnist_retrieval",
    ),
    Recipe(
        "orl_contrastive_tutorial",
        "the AT&T-faces contrastive tutorial's network and its 75/25 split of 20,000 pairs",
        (),
        (
            (
                "pair accuracy at the tutorial's rule d < 0.5",
                "verification.accuracy_at_half_margin",
            ),
            ("10-fold accuracy", "verification.ten_fold_mean"),
            ("ROC AUC", "verification.auc"),
            (
                "held-out pairs that are also training pairs",
                "pair_protocol.held_out_pairs_also_training_pairs",
            ),
        ),
        tutorial="97.8 % pair accuracy",
        anchor="Hadsell, Chopra & LeCun 2006 (contrastive loss)",
        claim="the tutorial's own 97.8 % pair accuracy under this protocol (not re-run here)",
        quick=True,
    ),
    Recipe(
        "orl_verification",
        "open-set faces by identity folds: per fold 24 people to train, 6 to choose the "
        "threshold, 10 never seen to test; 4 folds",
        (),
        (
            ("accuracy at the validation threshold", "accuracy at the validation threshold"),
            ("EER", "EER"),
            ("ROC AUC", "ROC AUC"),
            ("10-fold accuracy", "10-fold accuracy"),
            ("10-way 1-shot accuracy", "10-way 1-shot"),
        ),
        goals=(
            Goal(
                "accuracy at the validation threshold ≥ 98 %",
                "mean_std.accuracy at the validation threshold.mean",
                at_least=0.98,
            ),
            Goal("EER ≤ 2 %", "mean_std.EER.mean", at_most=0.02),
        ),
        tutorial="the ORL tutorial's network and training, measured on the same folds (peer)",
        anchor="no published open-set ORL figure under this protocol",
        quick=True,
        folds=4,
        peer="orl_tutorial_network",
    ),
    Recipe(
        "omniglot_oneshot",
        "Omniglot background → evaluation alphabets, 28×28, ConvNet-4, circle loss (chosen on "
        "validation characters)",
        ("--protocol", "fewshot"),
        (
            ("5-way 1-shot", "fewshot.5-way 1-shot.accuracy"),
            ("20-way 1-shot", "fewshot.20-way 1-shot.accuracy"),
            ("20-way 5-shot", "fewshot.20-way 5-shot.accuracy"),
        ),
        goals=(
            Goal("20-way 1-shot ≥ 96 %", "fewshot.20-way 1-shot.accuracy", at_least=0.96),
            Goal("training ≤ 30 minutes", "train_seconds", at_most=1800),
        ),
        tutorial="the one-shot tutorials' similarity function, no retraining for new classes",
        anchor="none under our protocol (Lake's background/evaluation split at 28×28, 20 classes "
        "drawn across all 659 evaluation characters). Nearest: Prototypical Networks (Snell et "
        "al. 2017) 96.0 % 20-way 1-shot at 28×28 with classes drawn across alphabets, but on "
        "Vinyals' split (1,200 training characters, 423 test ones), so not like for like. Koch "
        "et al. 2015 (92.0 %) used 105×105 images and within-alphabet trials on 10 evaluation "
        "alphabets: another protocol, not compared",
    ),
    Recipe(
        "mnist_sequences",
        "a shared LSTM reading each digit row by row (28 steps of 28 pixels)",
        ("--protocol", "retrieval", "--gallery", "train"),
        (("1-NN accuracy (gallery: 60k training)", ONE_NN), ("MAP@R", "retrieval.map_at_r")),
        goals=(Goal("1-NN accuracy ≥ 97 %", ONE_NN, at_least=0.97),),
        tutorial="a shared LSTM for sequences",
        anchor="tutorial (no paper)",
    ),
)


def lookup(document: dict[str, Any], path: str) -> Any:
    """`document["a"]["b"]` for "a.b" (keys may contain spaces and hyphens); None if absent."""
    node: Any = document
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run a command; (wall seconds, its output). Fails loudly with the output."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return seconds, done.stdout + done.stderr


def loop_seconds(run: Path) -> float:
    """Seconds from the run's "training ..." line to its "done:" line in train.log (whole
    seconds: the log's resolution), validations included."""
    from datetime import datetime

    stamps = {}
    for line in (run / "train.log").read_text().splitlines():
        stamp, _, message = line.partition("  ")
        for key in ("training ", "done:"):
            if message.startswith(key):
                stamps.setdefault(key, datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S"))
    return (stamps["done:"] - stamps["training "]).total_seconds()


def last_json(output: str) -> dict[str, Any]:
    """The last line of `output` that is a JSON object."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"no JSON result in:\n{output}")


def recipe_config(recipe: Recipe) -> str:
    """The config a recipe trains (another recipe's when it evaluates that one's run)."""
    return f"configs/{recipe.run_of or recipe.name}.yaml"


def run_recipe(recipe: Recipe, env: dict[str, str], data_dir: str | None) -> dict[str, Any]:
    """Train and evaluate one recipe (and its peer); the results document."""
    siamese = [sys.executable, "-m", "siamese"]
    config = recipe_config(recipe)
    run = RUNS / recipe.name
    shutil.rmtree(run, ignore_errors=True)
    wall = time.perf_counter()
    result: dict[str, Any] = {"recipe": recipe.name, "config": config}
    if recipe.run_of:
        # The same trained model, measured by this recipe's protocol into its own folder.
        trained = RUNS / recipe.run_of
        if not (trained / "model.safetensors").is_file():
            shutil.rmtree(trained, ignore_errors=True)
            timed([*siamese, "train", config, "--out", str(trained), "--quiet"], env)
        argv = [*siamese, "evaluate", str(trained), *recipe.evaluate, "--out", str(run)]
        seconds, _ = timed(argv, env)
        result["evaluate_seconds"] = round(seconds, 1)
        result["train_seconds"] = committed_train_seconds(recipe.run_of)
        result["trained_by"] = recipe.run_of
        result.update(read_evaluation(run, recipe))
    elif recipe.folds:
        values = ",".join(str(k) for k in range(recipe.folds))
        argv = [*siamese, "sweep", config, "--out", str(run), "--set", f"data.test_fold={values}"]
        seconds, _ = timed(argv, env)
        result["sweep_seconds"] = round(seconds, 1)
        document = json.loads((run / "sweep.json").read_text())
        result["folds"], result["mean_std"] = document["folds"], document["mean_std"]
        result["figures"] = {
            label: document["mean_std"].get(name) for label, name in recipe.figures
        }
        statements = [
            json.loads((run / f"data.test_fold={k}" / "evaluation" / "metrics.json").read_text())
            for k in range(recipe.folds)
        ]
        result["evaluated_on"] = [s["data"] for s in statements]
        result["data_statement"] = [s["statement"] for s in statements]
        result["figures_drawn"] = ["sweep.md, sweep.json; each fold's evaluation/ folder"]
    elif recipe.sweep:
        argv = [*siamese, "sweep", config, "--out", str(run), "--episodes", "200"]
        for value in recipe.sweep:
            argv += ["--set", value]
        seconds, _ = timed(argv, env)
        result["sweep_seconds"] = round(seconds, 1)
        rows = json.loads((run / "sweep.json").read_text())
        result["sweep"] = rows
        result["figures_drawn"] = ["sweep.png (embedding grid, one panel per margin)", "sweep.md"]
    else:
        seconds, output = timed([*siamese, "train", config, "--out", str(run), "--quiet"], env)
        result["train_seconds"] = round(seconds, 1)
        result["train_loop_seconds"] = loop_seconds(run)
        result["train_summary"] = output.strip().splitlines()[-1]
        seconds, _ = timed([*siamese, "evaluate", str(run), *recipe.evaluate], env)
        result["evaluate_seconds"] = round(seconds, 1)
        result.update(read_evaluation(run / "evaluation", recipe))
    measured = {**result.get("metrics", {}), **result}
    values = [(goal, lookup(measured, goal.path)) for goal in recipe.goals]
    result["goals"] = [
        {"goal": goal.label, "value": value, "met": goal.met(value)} for goal, value in values
    ]
    if recipe.peer == "pml":
        result["peer"] = run_pml_peer(result, env, data_dir, "pml")
        result["peer_our_network"] = run_pml_peer(result, env, data_dir, "ours")
    if recipe.peer == "orl_tutorial_network":
        result["peer"] = run_orl_tutorial_peer(recipe, env)
    if recipe.peer == "keras":
        result["peer"] = run_keras_peer(result, env, data_dir)
    result["wall_seconds"] = round(time.perf_counter() - wall, 1)
    return result


def run_pml_peer(
    ours: dict[str, Any], env: dict[str, str], data_dir: str | None, network: str
) -> dict[str, Any]:
    """PML's recipe (with its own `network` "pml", or with ours: "ours") trained until it
    reaches our accuracy or twice our training loop's time (at least one epoch, at most 10),
    measured after every epoch. Both times are training loops only (no process start, no
    data loading, no evaluation)."""
    target = ours["figures"]["1-NN accuracy (gallery: 60k training)"]
    argv = [
        sys.executable,
        str(HERE / "peers" / "pml_mnist.py"),
        "--budget",
        str(PEER_TIME_FACTOR * ours["train_loop_seconds"]),
        "--network",
        network,
    ]
    argv += ["--target", str(target)] + (["--data-dir", data_dir] if data_dir else [])
    _, output = timed(argv, env)
    peer = last_json(output)
    epochs = peer["epochs"]
    within = [e for e in epochs if e["train_seconds"] <= ours["train_loop_seconds"]]
    reached = next((e for e in epochs if e["accuracy_1nn"] >= target), None)
    peer["accuracy_at_our_time"] = within[-1]["accuracy_1nn"] if within else None
    peer["seconds_to_our_accuracy"] = None if reached is None else reached["train_seconds"]
    peer["our_accuracy"], peer["our_train_loop_seconds"] = target, ours["train_loop_seconds"]
    return peer


def run_orl_tutorial_peer(recipe: Recipe, env: dict[str, str]) -> dict[str, Any]:
    """The ORL contrastive tutorial's network and training (`orl_contrastive_tutorial.yaml`:
    its SeedCNN, contrastive loss with margin 1 on unnormalised ReLU embeddings, RMSprop,
    13 epochs of 15,000 pairs, the size of its 75 % training share of 20,000 pairs) on the
    recipe's identity folds: the same people to train on, validate on (the threshold) and
    test on, evaluated by the same `siamese evaluate`. Only its pairs differ: fresh balanced
    pairs of the training people every epoch, since its fixed pairs over all 400 faces would
    include the test people."""
    from siamese.config.schema import load_config

    ours = load_config(ROOT / recipe_config(recipe)).data
    out = RUNS / f"{recipe.name}-tutorial_network"
    shutil.rmtree(out, ignore_errors=True)
    folds = ",".join(str(k) for k in range(recipe.folds))
    overrides = [
        "data.validation=classes",
        f"data.validation_fraction={ours.validation_fraction}",
        f"data.test_fraction={ours.test_fraction}",
        f"data.test_fold={folds}",
        "batches.per_epoch=15000",
        "train.validate_every=0",
    ]
    argv = [sys.executable, "-m", "siamese", "sweep", "configs/orl_contrastive_tutorial.yaml"]
    argv += ["--out", str(out)]
    for override in overrides:
        argv += ["--set", override]
    seconds, _ = timed(argv, env)
    document = json.loads((out / "sweep.json").read_text())
    for k in range(recipe.folds):
        name = f"data.test_fold={k}"
        theirs = json.loads((out / name / "split.json").read_text())
        mine = json.loads((RUNS / recipe.name / name / "split.json").read_text())
        if split_people(theirs) != split_people(mine):
            raise SystemExit(f"fold {k}: the peer's split of people differs from the recipe's")
    return {
        "peer": "the ORL tutorial's network and training on the same identity folds",
        "config": "configs/orl_contrastive_tutorial.yaml",
        "same_people": True,  # checked above, fold by fold
        "overrides": overrides,
        "sweep_seconds": round(seconds, 1),
        "folds": document["folds"],
        "mean_std": document["mean_std"],
        "figures": {label: document["mean_std"].get(name) for label, name in recipe.figures},
    }


def split_people(split: dict[str, Any]) -> dict[str, list[str]]:
    """The class names of each part of a run's split.json (train, validation, test)."""
    people = {part: v["class_names"] for part, v in split.get("parts", {}).items()}
    return {**people, "test": split.get("test", {}).get("class_names", [])}


def run_keras_peer(
    ours: dict[str, Any], env: dict[str, str], data_dir: str | None
) -> dict[str, Any]:
    """The Keras tutorial itself, for its time and accuracy beside our reproduction."""
    argv = [sys.executable, str(HERE / "peers" / "keras_mnist_tutorial.py")]
    argv += ["--data-dir", data_dir] if data_dir else []
    seconds, output = timed(argv, {**env, "KERAS_BACKEND": "torch"})
    peer = last_json(output)
    peer["process_seconds"] = round(seconds, 1)
    return peer


def percent(value: Any) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def fold_text(label: str, value: dict[str, float] | None) -> str:
    """A mean ± std over folds, in the figure's unit."""
    if value is None:
        return "—"
    if "AUC" in label:
        return f"{value['mean']:.3f} ± {value['std']:.3f}"
    return f"{100 * value['mean']:.2f} ± {100 * value['std']:.2f} %"


def figure_text(label: str, value: Any) -> str:
    if value is None:
        return "—"
    if "AUC" in label or "AUROC" in label or "MAP" in label:
        return f"{value:.3f}"
    return percent(value)


def benchmarks_section(result: dict[str, Any], recipe: Recipe) -> str:
    """The recipe's BENCHMARKS.md section."""
    m = result["machine"]
    lines = [
        f"`{result['config']}` — {recipe.what}. Tutorial: {recipe.tutorial}. "
        f"Anchor: {recipe.anchor}.",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    if "folds" in result:
        names = [name for _, name in recipe.figures]
        lines = [
            *lines[:2],
            "| fold | " + " | ".join(label for label, _ in recipe.figures) + " |",
            "|---|" + "---|" * len(names),
        ]
        for row in result["folds"]:
            cells = [figure_text(label, row.get(name)) for label, name in recipe.figures]
            lines.append(f"| {row['data.test_fold']} | " + " | ".join(cells) + " |")
        cells = [fold_text(label, result["figures"][label]) for label, _ in recipe.figures]
        lines.append("| mean ± std | " + " | ".join(cells) + " |")
        lines.append(
            f"\nAll {len(result['folds'])} folds trained and evaluated in "
            f"{result['sweep_seconds']:.0f} s. Each fold's test people are open-set (classes "
            "seen in training: "
            + ", ".join(str(s["classes_seen"]) for s in result["data_statement"])
            + "), balanced pairs."
        )
    elif "sweep" in result:
        lines = [
            *lines[:2],
            "| margin | 1-NN accuracy (leave-one-out, test) | MAP@R |",
            "|---|---|---|",
        ]
        for row in result["sweep"]:
            lines.append(
                f"| {row['loss.margin']} | {percent(row.get('precision@1'))} | "
                f"{figure_text('MAP@R', row.get('MAP@R'))} |"
            )
        lines.append(
            f"\nThe whole sweep ({len(result['sweep'])} runs, each trained and evaluated): "
            f"{result['sweep_seconds']:.0f} s."
        )
    else:
        for label, value in result["figures"].items():
            lines.append(f"| {label} | {figure_text(label, value)} |")
        if "trained_by" in result:
            lines.append(
                f"\nThe model is `{result['trained_by']}`'s run (trained once, "
                f"{result['train_seconds']:.0f} s), measured here by another protocol."
            )
        else:
            lines.append(
                f"| training time (process start to saved model) | "
                f"{result['train_seconds']:.0f} s |"
            )
        lines.append(f"\nEvaluated on {result['evaluated_on']}.")
    for goal in result["goals"]:
        verdict = VERDICTS[goal["met"]].replace("not met", "**not met**")
        lines.append(f"- Goal {goal['goal']}: {verdict}.")
    peer = result.get("peer")
    if peer and "epochs" in peer:
        lines.append(pml_peer_line(peer, result))
        if "peer_our_network" in result:
            lines.append(pml_peer_line(result["peer_our_network"], result))
    elif peer and "folds" in peer:
        lines.extend(fold_peer_lines(peer, result, recipe))
    elif peer:
        ours = result["figures"]["1-NN accuracy (gallery: 60k training)"]
        lines.append(
            f"- Peer, {peer['peer']} (same run; its {peer['steps']} steps of 2,048 triplets, "
            f"ours 300): 1-NN accuracy {percent(peer['accuracy_1nn'])} in "
            f"{peer['train_seconds']:.1f} s of `fit`; ours {percent(ours)} in "
            f"{result['train_loop_seconds']:.0f} s of training loop "
            f"({result['train_seconds']:.0f} s from process start). "
            f"Accuracy ratio {ours / peer['accuracy_1nn']:.3f}, time ratio (ours / peer) "
            f"{result['train_loop_seconds'] / peer['train_seconds']:.2f}."
        )
    lines.append(f"- Figures drawn: {', '.join(result['figures_drawn'])}.")
    lines.append(f"\nMeasured {result['date']} on {m['cpu']} ({m['cores']} cores).")
    return "\n".join(lines)


def pml_peer_line(peer: dict[str, Any], result: dict[str, Any]) -> str:
    """One PML peer's line: its accuracy at our training time and its time to our accuracy."""
    ours_seconds = result["train_loop_seconds"]
    reach = peer["seconds_to_our_accuracy"]
    best = max(e["accuracy_1nn"] for e in peer["epochs"])
    reach_text = (
        f"{reach:.0f} s ({reach / ours_seconds:.2f}× our time)"
        if reach is not None
        else f"not reached in {peer['epochs'][-1]['train_seconds']:.0f} s "
        f"({len(peer['epochs'])} epochs, best {percent(best)})"
    )
    return (
        f"- Peer, {peer['peer']} (same run): 1-NN accuracy at our training loop's time "
        f"({ours_seconds:.0f} s) {percent(peer['accuracy_at_our_time'])} vs "
        f"our {percent(peer['our_accuracy'])}; time to our accuracy: {reach_text}. Per epoch: "
        + ", ".join(
            f"{e['train_seconds']:.0f} s → {percent(e['accuracy_1nn'])}" for e in peer["epochs"]
        )
        + "."
    )


def fold_peer_lines(peer: dict[str, Any], result: dict[str, Any], recipe: Recipe) -> list[str]:
    """A fold peer's table (same folds, same figures) and the paired comparison per figure."""
    labels = [label for label, _ in recipe.figures]
    lines = [
        f"\nPeer, {peer['peer']} (`{peer['config']}` with "
        + ", ".join(f"`{o}`" for o in peer["overrides"])
        + f"; {peer['sweep_seconds']:.0f} s for all folds):",
        "",
        "| fold | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for row in peer["folds"]:
        cells = [figure_text(label, row.get(name)) for label, name in recipe.figures]
        lines.append(f"| {row['data.test_fold']} | " + " | ".join(cells) + " |")
    cells = [fold_text(label, peer["figures"].get(label)) for label in labels]
    lines.append("| mean ± std | " + " | ".join(cells) + " |")
    lines.append("")
    for label, name in recipe.figures:
        better = paired_wins(result["folds"], peer["folds"], name, lower=label == "EER")
        if better is not None:
            lines.append(f"- {label}: ours better on {better[0]} of {better[1]} folds.")
    return lines


def paired_wins(
    ours: list[dict[str, Any]], theirs: list[dict[str, Any]], name: str, lower: bool
) -> tuple[int, int] | None:
    """(folds where ours is strictly better, folds compared), fold by fold; None if absent."""
    pairs = [(a.get(name), b.get(name)) for a, b in zip(ours, theirs, strict=True)]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not pairs:
        return None
    return sum((a < b) if lower else (a > b) for a, b in pairs), len(pairs)


def read_evaluation(folder: Path, recipe: Recipe) -> dict[str, Any]:
    """What a recipe's result keeps of an evaluation folder: its data and data statement,
    every metric, the recipe's figures and the names of the figures drawn."""
    metrics = json.loads((folder / "metrics.json").read_text())
    return {
        "evaluated_on": metrics["data"],
        "data_statement": metrics["statement"],
        "metrics": metrics["metrics"],
        "figures": {label: lookup(metrics["metrics"], path) for label, path in recipe.figures},
        "figures_drawn": sorted(metrics["figures"]),
    }


def committed_train_seconds(name: str) -> float | None:
    """The training time in the committed results of recipe `name` (None if not measured)."""
    path = HERE / "results" / f"recipe_{name}.json"
    return json.loads(path.read_text()).get("train_seconds") if path.is_file() else None


def committed_results() -> dict[str, dict[str, Any]]:
    """The results file of every recipe that has one, by recipe name."""
    results = {}
    for recipe in RECIPES:
        path = HERE / "results" / f"recipe_{recipe.name}.json"
        if path.is_file():
            results[recipe.name] = json.loads(path.read_text())
    return results


def reference(result: dict[str, Any], recipe: Recipe) -> str:
    """What the recipe is measured against in README: the peer measured in the same run
    under the same protocol, else a published figure under the same protocol, else nothing
    (figures under other protocols are not set beside ours)."""
    peer = result.get("peer")
    if peer and "epochs" in peer:
        text = []
        for name, p in (("its network", peer), ("our network", result.get("peer_our_network"))):
            if p:
                text.append(
                    f"PML's recipe with {name}, same run: {percent(p['accuracy_at_our_time'])} "
                    f"at our time, {percent(max(e['accuracy_1nn'] for e in p['epochs']))} after "
                    f"{p['epochs'][-1]['train_seconds']:.0f} s"
                )
        return "; ".join(text)
    if peer and "folds" in peer:
        return "the ORL tutorial's network on the same folds: " + ", ".join(
            f"{label} {fold_text(label, value)}"
            for label, value in peer["figures"].items()
            if label in ("accuracy at the validation threshold", "EER")
        )
    if peer:
        return f"the Keras tutorial on Keras 3, same run: {percent(peer['accuracy_1nn'])}"
    return recipe.claim or "no peer measured under this protocol"


def readme_table(results: dict[str, dict[str, Any]]) -> str:
    """README's Results table: one row per measured recipe, its headline figures."""
    lines = [
        "| recipe | headline (measured) | training | reference | goal | measured |",
        "|---|---|---|---|---|---|",
    ]
    old_protocol = False
    for recipe in RECIPES:
        result = results.get(recipe.name)
        if result is None:
            continue
        if "folds" in result:
            headline = (
                ", ".join(
                    f"{label} {fold_text(label, value)}"
                    for label, value in result["figures"].items()
                )
                + f" (mean ± std over {len(result['folds'])} identity folds)"
            )
            budget = f"{result['sweep_seconds']:.0f} s ({len(result['folds'])} runs)"
        elif "sweep" in result:
            best = max(result["sweep"], key=lambda r: r.get("precision@1", 0))
            headline = f"best margin {best['loss.margin']}: 1-NN {percent(best.get('precision@1'))}"
            budget = f"{result['sweep_seconds']:.0f} s ({len(result['sweep'])} runs)"
        else:
            headline = ", ".join(
                f"{label} {figure_text(label, value)}" for label, value in result["figures"].items()
            )
            budget = (
                f"{result['trained_by']}'s run"
                if "trained_by" in result
                else f"{result['train_seconds']:.0f} s"
            )
        goals = (
            "; ".join(f"{g['goal']}: {VERDICTS[g['met']]}" for g in result["goals"])
            or "reproduction"
        )
        # Results with a data statement come from the evaluation with balanced pairs, the
        # data statement and held-out novelty calibration; older ones are marked.
        marker = "" if "data_statement" in result or "sweep" in result else " †"
        old_protocol |= bool(marker)
        lines.append(
            f"| `{recipe.name}` | {headline} | {budget} | {reference(result, recipe)} | {goals} "
            f"| {result['date']}{marker} |"
        )
    if old_protocol:
        lines += [
            "",
            "† measured before the evaluation fixes of 2026-11-28 (verification on every pair "
            "of a small set, unbalanced; novelty false alarms calibrated on the scores they are "
            "reported on); not yet re-measured.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", help="recipe names (default: all, or --quick)")
    parser.add_argument("--quick", action="store_true", help="only the few-minute subset")
    parser.add_argument("--data-dir", default=os.environ.get("SIAMESE_DATA_DIR"))
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="run nothing: rebuild BENCHMARKS.md's sections and README's table from results/",
    )
    args = parser.parse_args()
    if args.tables_only:
        publish_tables()
        return
    known = {r.name: r for r in RECIPES}
    unknown = sorted(set(args.recipes) - set(known))
    if unknown:
        raise SystemExit(f"unknown recipe(s) {unknown}; known: {', '.join(known)}")
    chosen = (
        [known[n] for n in args.recipes]
        if args.recipes
        else [r for r in RECIPES if r.quick or not args.quick]
    )
    if not args.data_dir:
        raise SystemExit("set SIAMESE_DATA_DIR (or --data-dir) to the directory with the datasets")
    env = {**os.environ, "SIAMESE_DATA_DIR": args.data_dir}
    import torch

    for recipe in chosen:
        print(f"{recipe.name} ...", flush=True)
        result = run_recipe(recipe, env, args.data_dir)
        document = {
            "benchmark": f"recipe_{recipe.name}",
            "date": time.strftime("%Y-%m-%d"),
            "machine": describe_machine(),
            "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
            "seed": 0,
            **result,
        }
        section = benchmarks_section(document, recipe)
        publish_results(f"recipe_{recipe.name}", document, section)
        print(section, flush=True)
    publish_tables()


def publish_tables() -> None:
    """BENCHMARKS.md's recipe sections and README's Results table from the results files."""
    results = committed_results()
    for recipe in RECIPES:
        if recipe.name in results:
            section = benchmarks_section(results[recipe.name], recipe)
            replace_section(HERE / "BENCHMARKS.md", f"recipe_{recipe.name}", section)
    replace_section(ROOT / "README.md", "recipe-results", readme_table(results))


if __name__ == "__main__":
    main()
