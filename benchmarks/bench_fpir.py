"""Does a gallery accept the share of strangers it promises, at every size? Realised FPIR on
held-out strangers against the target, for the old rule (a pair FAR threshold, whatever the
size) and the new one (a target FPIR for the gallery's size, with the gallery measuring itself
on its own people as it grows), side by side; the identification rate at FPIR 1 %; and the
faces case (ORL people and web photos of celebrities, enrolled from one photo each).

Every gallery is a real one (`Gallery` on an SQLite file), built through the same calls a
user's are: created with no threshold option (FPIR 1 %) or `--fpir 0.1`, or `--far` for the
old rule; identities enrolled one at a time from one image each (the threshold re-derived in
every write, the gallery measuring itself at every 10 % of growth); probes identified through
`Gallery.identify`. Images are embedded once per dataset and handed to the gallery as
`EmbeddedImages` (what a service does), so a trial costs the gallery's work only.

Data, all open-set (no class was trained on, none chose a threshold):
- omniglot: the model of `configs/omniglot_oneshot.yaml` (trained on the background
  alphabets; its thresholds calibrated on held-out background characters); galleries drawn
  from the 659 evaluation characters and their three turns (2,636 classes), strangers from
  the classes not enrolled.
- glyphs: the demo's model (`configs/glyphs_triplet.yaml`); its 40 test characters.
- orl: dlib's face network (`configs/face_pretrained.yaml`, thresholds calibrated on 20 ORL
  people); galleries of 10 of the other 20 people, the other 10 strangers.
- faces: the same model; 10 of those ORL people and the 5 celebrities enrolled from one photo
  each, their other photos as probes, the other 10 ORL people as strangers; before and after
  `gallery calibrate`.

Writes `benchmarks/results/fpir.json` and its BENCHMARKS.md section.

    python benchmarks/bench_fpir.py [--quick] [--datasets glyphs,orl,omniglot,faces]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results
from siamese.data.sources import load_dataset
from siamese.recognition import Gallery, Recognizer
from siamese.recognition import gallery as gallery_module
from siamese.recognition.calibration_data import calibration_data
from siamese.recognition.model_inputs import EmbeddedImages, PreparedImages

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "bench"
TARGETS = (0.01, 0.1)
RULES = ("far", "fpir", "fpir+ratio", "fpir+t-norm")
RULE_NAMES = {
    "far": "FAR (old)",
    "fpir": "FPIR, distances",
    "fpir+ratio": "FPIR, cohort ratio",
    "fpir+t-norm": "FPIR, T-norm",
}
NORMALISATION = {"far": "none", "fpir": "none", "fpir+ratio": "ratio", "fpir+t-norm": "t-norm"}
FIGURE = HERE / "results" / "figures" / "fpir.png"
MAX_STRANGER_IMAGES = 3_000
MAX_MATED_IMAGES = 3_000


def ensure_run(run: Path, config: str) -> None:
    if (run / "model.safetensors").is_file():
        return
    argv = [sys.executable, "-m", "siamese", "train", config, "--out", str(run), "--quiet"]
    subprocess.run(argv, cwd=ROOT, check=True)


def embedded(z: np.ndarray, x: np.ndarray, rows: np.ndarray) -> EmbeddedImages:
    """Rows of a dataset as the gallery's input (its images, their embeddings)."""
    given = [x[i] for i in rows]
    prepared = PreparedImages(given, [f"#{i}" for i in rows], x[rows], list(range(rows.size)))
    return prepared.embedded(z[rows])


def trial(
    recognizer: Recognizer,
    z: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    size: int,
    rng: np.random.Generator,
    folder: Path,
) -> dict[str, Any]:
    """One random gallery of `size` classes (one image each), its realised rates."""
    classes = np.unique(y)
    enrolled = rng.choice(classes, size, replace=False)
    is_enrolled = np.isin(y, enrolled)
    enrol_rows = np.asarray([rng.choice(np.flatnonzero(y == c)) for c in enrolled])
    mated = np.setdiff1d(np.flatnonzero(is_enrolled), enrol_rows)
    strangers = np.flatnonzero(~is_enrolled)
    mated = rng.permutation(mated)[:MAX_MATED_IMAGES]
    strangers = rng.permutation(strangers)[:MAX_STRANGER_IMAGES]
    out: dict[str, Any] = {"strangers": int(strangers.size), "mated": int(mated.size)}
    for target in TARGETS:
        rows: dict[str, Any] = {}
        for rule in RULES:
            path = folder / f"{rule}-{target}-{size}-{rng.integers(1 << 30)}.sqlite"
            kwargs: dict[str, Any] = {"far": target} if rule == "far" else {"fpir": target}
            kwargs["normalisation"] = NORMALISATION[rule]
            with Gallery.create(path, recognizer, **kwargs) as gallery:
                for c, row in zip(enrolled, enrol_rows, strict=True):
                    gallery.enroll(f"c{c}", embedded(z, x, np.asarray([row])))
                s = gallery.identify(embedded(z, x, strangers), k=1)
                m = gallery.identify(embedded(z, x, mated), k=1)
                truth = [f"c{c}" for c in y[mated]]
                rows[rule] = {
                    "threshold": gallery.threshold,
                    "estimated_fpir": gallery.decision.estimated_fpir,
                    "basis": gallery.decision.basis,
                    "fpir": float(np.mean([a.identity is not None for a in s])),
                    "dir": float(np.mean([a.identity == t for a, t in zip(m, truth, strict=True)])),
                }
            path.unlink()
        out[str(target)] = rows
    return out


def summarise(trials: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target in TARGETS:
        for rule in RULES:
            values = {
                key: [t[str(target)][rule][key] for t in trials]
                for key in ("fpir", "dir", "threshold")
            }
            estimates = [
                t[str(target)][rule]["estimated_fpir"]
                for t in trials
                if t[str(target)][rule]["estimated_fpir"] is not None
            ]
            out[f"{rule}@{target}"] = {
                "fpir_mean": float(np.mean(values["fpir"])),
                "fpir_std": float(np.std(values["fpir"])),
                "ratio_to_target": float(np.mean(values["fpir"]) / target),
                "dir_mean": float(np.mean(values["dir"])),
                "dir_std": float(np.std(values["dir"])),
                "threshold_mean": float(np.mean(values["threshold"])),
                "estimated_fpir_mean": float(np.mean(estimates)) if estimates else None,
                "basis": trials[-1][str(target)][rule]["basis"],
            }
    return out


def dataset(name: str, quick: bool) -> tuple[Recognizer, np.ndarray, np.ndarray, np.ndarray, str]:
    """(model, embeddings, inputs, labels, what) of one benchmark dataset."""
    if name == "omniglot":
        run = RUNS / "omniglot_oneshot"
        ensure_run(run, "configs/omniglot_oneshot.yaml")
        recognizer = Recognizer.load(run)
        data = load_dataset(
            "omniglot", "evaluation", None, image_size=(28, 28), rotated_classes=True
        )
        what = "Omniglot evaluation characters and their turns (2,636 classes)"
    elif name == "orl":
        run = RUNS / "face_pretrained"
        ensure_run(run, "configs/face_pretrained.yaml")
        recognizer = Recognizer.load(run)
        d = faces_data(recognizer)
        orl = d["y"] < 1000
        return (
            recognizer,
            d["z"][orl],
            d["x"][orl],
            d["y"][orl],
            "ORL's 20 people the model was not calibrated on",
        )
    elif name == "glyphs":
        run = RUNS / "glyphs_triplet"
        ensure_run(run, "configs/glyphs_triplet.yaml")
        recognizer = Recognizer.load(run)
        data = load_dataset("glyphs", "test", None)
        what = "glyphs' 40 test characters"
    else:
        raise ValueError(name)
    x = data.x.numpy()
    z = recognizer.embed_prepared(data.x, 512).numpy()
    return recognizer, z, x, data.y.numpy(), what


def faces_data(recognizer: Recognizer) -> dict[str, Any]:
    """ORL's people the face model was not calibrated on, and the celebrities: embedded."""
    import json

    split = json.loads((recognizer.model_dir / "split.json").read_text())
    calibration_people = set(split["parts"]["validation"]["class_names"])
    orl, _, _ = calibration_data(recognizer, "orl", "all", {})
    keep = np.asarray([orl.classes[int(c)] not in calibration_people for c in orl.y])
    orl_x, orl_y = orl.x.numpy()[keep], orl.y.numpy()[keep]
    celebs, _, _ = calibration_data(recognizer, "5-celebrity-faces", "train", {})
    celebs_val, _, _ = calibration_data(recognizer, "5-celebrity-faces", "val", {})
    cx = np.concatenate([celebs.x.numpy(), celebs_val.x.numpy()])
    cy = np.concatenate([celebs.y.numpy(), celebs_val.y.numpy()]) + 1000
    x = np.concatenate([orl_x, cx])
    y = np.concatenate([orl_y, cy])
    z = recognizer.embed_prepared(x, 256).numpy()
    return {"x": x, "y": y, "z": z}


def faces_case(recognizer: Recognizer, folder: Path, trials: int) -> dict[str, Any]:
    """10 ORL people and the 5 celebrities enrolled from one photo each; their other photos
    as probes; the other 10 ORL people as strangers; before and after `gallery calibrate`."""
    d = faces_data(recognizer)
    x, y, z = d["x"], d["y"], d["z"]
    orl_people = np.unique(y[y < 1000])
    celebrities = np.unique(y[y >= 1000])
    results = []
    rng = np.random.default_rng(0)
    for t in range(trials):
        people = rng.permutation(orl_people)
        enrolled = np.concatenate([people[:10], celebrities])
        strangers = np.flatnonzero(np.isin(y, people[10:]))
        enrol_rows = np.asarray([rng.choice(np.flatnonzero(y == c)) for c in enrolled])
        probes = np.setdiff1d(np.flatnonzero(np.isin(y, enrolled)), enrol_rows)
        celeb_probes = probes[y[probes] >= 1000]
        orl_probes = probes[y[probes] < 1000]
        row: dict[str, Any] = {}
        for target, normalisation in [(f, m) for f in TARGETS for m in ("none", "ratio", "t-norm")]:
            key = f"{target}/{normalisation}"
            path = folder / f"faces-{target}-{normalisation}-{t}.sqlite"
            with Gallery.create(
                path, recognizer, fpir=target, normalisation=normalisation
            ) as gallery:
                # "before": the model's calibration alone (the gallery does not measure
                # itself while enrolling); "after": `siamese gallery calibrate`
                automatic = gallery_module.MIN_SELF_CALIBRATION
                gallery_module.MIN_SELF_CALIBRATION = 10**9
                try:
                    for c, r in zip(enrolled, enrol_rows, strict=True):
                        gallery.enroll(f"c{c}", embedded(z, x, np.asarray([r])))
                finally:
                    gallery_module.MIN_SELF_CALIBRATION = automatic
                stages = {}
                for stage in ("before", "after"):
                    if stage == "after":
                        gallery.calibrate()
                    measured = {}
                    for label, rows_ in (
                        ("celebrities", celeb_probes),
                        ("orl", orl_probes),
                        ("strangers", strangers),
                    ):
                        answers = gallery.identify(embedded(z, x, rows_), k=1)
                        if label == "strangers":
                            measured["strangers_rejected"] = float(
                                np.mean([a.identity is None for a in answers])
                            )
                        else:
                            truth = [f"c{c}" for c in y[rows_]]
                            measured[f"{label}_identified"] = float(
                                np.mean(
                                    [a.identity == w for a, w in zip(answers, truth, strict=True)]
                                )
                            )
                    measured["threshold"] = gallery.threshold
                    measured["basis"] = gallery.decision.basis
                    stages[stage] = measured
            path.unlink()
            row[key] = stages
        results.append(row)
    summary: dict[str, Any] = {}
    for key in results[0]:
        for stage in ("before", "after"):
            for measure in ("celebrities_identified", "orl_identified", "strangers_rejected"):
                values = [r[key][stage][measure] for r in results]
                summary[f"{key}/{stage}/{measure}"] = {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values)),
                }
    return {"trials": results, "summary": summary}


def choice_on_validation(names: list[str]) -> dict[str, Any]:
    """What chose the default scoring: on each model's own validation classes (its
    calibration data, never the evaluation sets above), random galleries of one image per
    class, and the share of mated probes identified when each scoring's threshold is set, by
    hindsight, to accept exactly 1 % or 10 % of the strangers."""
    import torch

    from siamese.config import load_config
    from siamese.recognition.score_normalisation import COHORT, normalised_best
    from siamese.run_directory.data import load_training_data

    runs = {"glyphs": "glyphs_triplet", "omniglot": "omniglot_oneshot", "orl": "face_pretrained"}
    out: dict[str, Any] = {}
    for name in names:
        run = RUNS / runs[name]
        recognizer = Recognizer.load(run)
        _, validation, _ = load_training_data(load_config(run / "config.yaml"))
        assert validation is not None
        z = torch.as_tensor(recognizer.embed_prepared(validation.x, 512))
        y = validation.y.numpy()
        classes = np.unique(y)
        rng = np.random.default_rng(0)
        sizes = [n for n in (10, 30, 100) if n <= classes.size // 2]
        rows = {}
        for n in sizes:
            hits: dict[str, list[float]] = {}
            for _ in range(10):
                enrolled = rng.choice(classes, n, replace=False)
                enrol_rows = np.asarray([rng.choice(np.flatnonzero(y == c)) for c in enrolled])
                is_enrolled = np.isin(y, enrolled)
                mated = np.setdiff1d(np.flatnonzero(is_enrolled), enrol_rows)
                strangers = np.flatnonzero(~is_enrolled)

                width = min(COHORT + 1, n)
                d = torch.cdist(z[strangers], z[enrol_rows])
                vs = d.topk(width, dim=1, largest=False).values.numpy()
                d = torch.cdist(z[mated], z[enrol_rows])
                top = d.topk(width, dim=1, largest=False)
                vm, who = top.values.numpy(), enrolled[top.indices.numpy()]
                right = who[:, 0] == y[mated]
                for kind in ("none", "ratio", "t-norm"):
                    ss = vs[:, 0] if kind == "none" else normalised_best(vs, kind)
                    sm = vm[:, 0] if kind == "none" else normalised_best(vm, kind)
                    for target in TARGETS:
                        t = np.quantile(ss, target)
                        hits.setdefault(f"{kind}@{target}", []).append(
                            float(np.mean((sm <= t) & right))
                        )
            rows[str(n)] = {k: float(np.mean(v)) for k, v in hits.items()}
        out[name] = {"run": runs[name], "classes": int(classes.size), "sizes": rows}
    return out


def choice_section(choice: dict[str, Any]) -> str:
    lines = [
        "What chose the default scoring (distances; the ratio ties, T-norm loses): each "
        "model's own validation "
        "classes (its calibration data; none of the evaluation sets above), 10 random "
        "galleries of one image per class per size; the share of mated probes identified "
        "when each scoring's threshold accepts exactly the target share of strangers "
        "(thresholds by hindsight, so this compares scorings, not calibration).",
        "",
        "| model (validation classes) | identities | target FPIR | distances | cohort ratio | "
        "T-norm |",
        "|---|---|---|---|---|---|",
    ]
    for name, block in choice.items():
        for size, row in block["sizes"].items():
            for target in TARGETS:
                cells = " | ".join(
                    f"{100 * row[f'{kind}@{target}']:.1f} %" for kind in ("none", "ratio", "t-norm")
                )
                lines.append(
                    f"| {name} ({block['classes']} classes) | {size} | {target:g} | {cells} |"
                )
    return "\n".join(lines)


def section(document: dict[str, Any]) -> str:
    lines = [
        "Realised FPIR (share of held-out strangers a gallery accepted) against the target, "
        "for the old rule (`--far` at the target rate, a fixed pair threshold) and the FPIR "
        "rule (`--fpir`: the threshold for the gallery's size, re-derived at every enrollment; "
        "the gallery measures itself from 10 identities on) deciding on distances (the "
        "default), on the cohort ratio (the best distance over the mean of the next five "
        "identities'), or on T-norm. Galleries enrolled from one image per identity, all "
        "identities and strangers never trained on and never used to set a threshold "
        "(open-set); mean ± std over random galleries (10 per size, 3 at 300 and 659, 20 for "
        "ORL). Goal: the ratio within [0.5, 2] at every size. DIR: mated probes identified "
        "(right identity, accepted). Threshold: the distance threshold (the normalised rules "
        "decide on their own scale).",
        "",
        "| data | identities | rule | target | realised FPIR | ratio | DIR (identified) | "
        "threshold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for block in document["datasets"]:
        for size in block["sizes"]:
            for target in TARGETS:
                for rule in RULES:
                    s = size["summary"][f"{rule}@{target}"]
                    lines.append(
                        f"| {block['name']} | {size['identities']} | "
                        f"{RULE_NAMES[rule]} | {target:g} | "
                        f"{100 * s['fpir_mean']:.2f} ± {100 * s['fpir_std']:.2f} % | "
                        f"{s['ratio_to_target']:.2f} | {100 * s['dir_mean']:.1f} % | "
                        f"{s['threshold_mean']:.4f} |"
                    )
    faces = document.get("faces")
    if faces:
        lines += [
            "",
            "Faces case (dlib's face network, thresholds calibrated on 20 ORL people): 10 other "
            "ORL people and the 5 celebrities enrolled from one photo each; their other photos "
            "as probes; the remaining 10 ORL people as strangers; before and after `siamese "
            "gallery calibrate` (the gallery measuring itself on its 15 people).",
            "",
            "| target FPIR | scores | stage | celebrities' photos identified | ORL probes "
            "identified | strangers rejected |",
            "|---|---|---|---|---|---|",
        ]
        s = faces["summary"]
        for target in TARGETS:
            for normalisation in ("none", "ratio", "t-norm"):
                for stage in ("before", "after"):
                    key = f"{target}/{normalisation}/{stage}"

                    def cell(measure: str, key: str = key) -> str:
                        v = s[f"{key}/{measure}"]
                        return f"{100 * v['mean']:.1f} ± {100 * v['std']:.1f} %"

                    lines.append(
                        f"| {target:g} | {normalisation} "
                        f"| {stage} | {cell('celebrities_identified')} | "
                        f"{cell('orl_identified')} | {cell('strangers_rejected')} |"
                    )
    m = document["machine"]
    lines += [
        "",
        "![realised FPIR over the target against gallery size](results/figures/fpir.png)",
        "",
        f"Measured {document['date']} on {m['cpu']} ({m['cores']} cores).",
    ]
    return "\n".join(lines)


def figure(document: dict[str, Any], path: Path) -> None:
    """Realised FPIR over the target against gallery size, per rule and target: the goal band
    [0.5, 2] shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TARGETS), figsize=(11, 4.2), sharey=True)
    styles = {"glyphs": "s", "orl": "D", "omniglot": "o"}
    colours = {"far": "tab:red", "fpir": "tab:blue", "fpir+ratio": "tab:green",
               "fpir+t-norm": "tab:gray"}  # fmt: skip
    for ax, target in zip(axes, TARGETS, strict=True):
        ax.axhspan(0.5, 2.0, color="0.92", zorder=0)
        ax.axhline(1.0, color="0.6", linewidth=0.8)
        for block in document["datasets"]:
            sizes = [s["identities"] for s in block["sizes"]]
            for rule in RULES:
                ratios = [
                    max(s["summary"][f"{rule}@{target}"]["ratio_to_target"], 1e-2)
                    for s in block["sizes"]
                ]
                ax.plot(
                    sizes, ratios, marker=styles.get(block["name"], "o"), color=colours[rule],
                    label=f"{block['name']}: {RULE_NAMES[rule]}", linewidth=1.2, markersize=4,
                )  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("identities enrolled (one image each)")
        ax.set_title(f"target FPIR {target:g}")
    axes[0].set_ylabel("realised FPIR / target (band: 0.5–2)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials and sizes")
    parser.add_argument("--datasets", default="glyphs,orl,omniglot,faces")
    parser.add_argument(
        "--choice",
        action="store_true",
        help="measure what chose the default scoring, on the models' validation classes",
    )
    parser.add_argument(
        "--from-results",
        action="store_true",
        help="redraw the figure and BENCHMARKS.md's section from results/fpir.json",
    )
    args = parser.parse_args()
    if args.choice:
        choice = choice_on_validation(["glyphs", "orl", "omniglot"])
        document = {
            "benchmark": "fpir_choice",
            "date": time.strftime("%Y-%m-%d"),
            "machine": describe_machine(),
            "seed": 0,
            "choice": choice,
        }
        m = document["machine"]
        text = choice_section(choice) + (
            f"\n\nMeasured {document['date']} on {m['cpu']} ({m['cores']} cores)."
        )
        publish_results("fpir_choice", document, text)
        print(text)
        return
    if args.from_results:
        import json

        document = json.loads((HERE / "results" / "fpir.json").read_text())
        figure(document, FIGURE)
        publish_results("fpir", document, section(document))
        return
    if not os.environ.get("SIAMESE_DATA_DIR"):
        raise SystemExit("set SIAMESE_DATA_DIR to the directory with the datasets")
    wanted = args.datasets.split(",")
    plans = {
        "glyphs": [(10, 10), (20, 10), (30, 10)],
        "orl": [(10, 20)],
        "omniglot": [(10, 10), (30, 10), (100, 5), (300, 3), (659, 3)],
    }
    document: dict[str, Any] = {
        "benchmark": "fpir",
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "seed": 0,
        "targets": list(TARGETS),
        "datasets": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-fpir-") as tmp:
        folder = Path(tmp)
        for name in (n for n in wanted if n in plans):
            recognizer, z, x, y, what = dataset(name, args.quick)
            block: dict[str, Any] = {"name": name, "what": what, "sizes": []}
            for size, trials in plans[name]:
                if args.quick:
                    trials = min(trials, 2)
                rng = np.random.default_rng(size)
                started = time.perf_counter()
                runs = [trial(recognizer, z, x, y, size, rng, folder) for _ in range(trials)]
                summary = summarise(runs)
                block["sizes"].append({"identities": size, "trials": runs, "summary": summary})
                print(
                    f"{name} N={size}: "
                    + "; ".join(
                        f"{k} FPIR {v['fpir_mean']:.4f} (x{v['ratio_to_target']:.2f}) DIR "
                        f"{v['dir_mean']:.3f}"
                        for k, v in summary.items()
                    )
                    + f" [{time.perf_counter() - started:.0f} s]",
                    flush=True,
                )
            document["datasets"].append(block)
        if "faces" in wanted:
            run = RUNS / "face_pretrained"
            ensure_run(run, "configs/face_pretrained.yaml")
            recognizer = Recognizer.load(run)
            document["faces"] = faces_case(recognizer, folder, 2 if args.quick else 5)
            print(document["faces"]["summary"], flush=True)
    figure(document, FIGURE)
    text = section(document)
    publish_results("fpir", document, text)
    print(text)


if __name__ == "__main__":
    main()
