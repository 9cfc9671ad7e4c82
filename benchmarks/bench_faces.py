"""Faces (issue 15): detection rates, end-to-end speed against dlib's own pipeline, and the two
face recipes — celebrity retrieval and ORL through the pretrained network, then fine-tuned.

Every peer runs in the same invocation on the same machine and data:

- detection: each detector on every image of ORL (400) and the 5 celebrities (118 photos):
  the share in which it finds a face, and milliseconds per image.
- speed: faces per second from photo file to descriptor on the celebrity photos, ours (HOG
  with retries, dlib's 5-point chip, the PyTorch port of dlib's ResNet in batches) against
  dlib's own calls as face_recognition makes them (HOG detector with one upsampling, the
  5-point landmarks, `compute_face_descriptor` one face at a time); interleaved repetitions,
  the median of each, and the ratio.
- celebrity_retrieval (closed-set: the 5 people are the gallery): the 93 training photos
  are the gallery, the 25 val photos the queries; precision@1, precision@5, R-precision and
  MAP@R over all 25 queries (a query in which no face is found counts as a miss). Rows: raw
  pixels, this project's ConvNet trained from scratch on the training photos, the pretrained
  encoder on Haar crops (the tutorial's), on Haar boxes aligned, on HOG boxes aligned (the
  recipe, `configs/celebrity_retrieval.yaml`), and dlib's own pipeline. Figures: a t-SNE of
  every face with thumbnails, and a retrieval grid (`siamese evaluate` of the recipe's run).
- orl_pretrained (open-set): `configs/orl_pretrained.yaml` over the 4 identity folds of
  `orl_verification` (the same people to train, validate and test, the same balanced pairs),
  as published (train.steps 0) and fine-tuned on each fold's 24 training people; EER,
  accuracy at the validation threshold, 10-way 1-shot and open-set identification (FNIR at
  FPIR) on the 10 unseen people; dlib's own pipeline on the same test people and pairs; the
  from-scratch recipe's committed figures beside them.

Writes `benchmarks/results/faces.json`, the figures under `benchmarks/results/figures/`, and
BENCHMARKS.md's faces section.

    python benchmarks/bench_faces.py                       # everything (about 25 minutes)
    python benchmarks/bench_faces.py detection speed       # named parts only
    python benchmarks/bench_faces.py publish               # rewrite the tables from faces.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import replace_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "bench" / "faces"
RESULTS = HERE / "results" / "faces.json"
FIGURES = HERE / "results" / "figures"
PARTS = ("detection", "speed", "celebrity", "orl")
FOLDS = 4
CELEBRITY = "5-celebrity-faces"
DLIB_ACCURACY = "accuracy at dlib's 0.6 threshold"


# ------------------------------------------------------------------------------------------
# Data


def celebrity_photos() -> dict[str, list[tuple[str, str]]]:
    """split → [(path, person)] of the 5-celebrity-faces photos, sorted."""
    from siamese.cache import cache_dir
    from siamese.data.datasets.archives import cached_extraction, is_archive
    from siamese.data.datasets.catalog import dataset_info, resolve_data_dir

    root = dataset_info(CELEBRITY).locate(resolve_data_dir(None), "train")
    if root.is_file() and is_archive(root):
        root = cached_extraction(root, cache_dir() / "extracted")
    while not (root / "train").is_dir():  # the archive's top folder
        (root,) = [p for p in root.iterdir() if p.is_dir()]
    return {
        split: sorted(
            (str(path), path.parent.name) for path in (root / split).glob("*/*") if path.is_file()
        )
        for split in ("train", "val")
    }


def rgb(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def orl_images() -> tuple[list[np.ndarray], torch.Tensor]:
    """ORL's 400 photos as (112, 92, 3) gray RGB arrays, and their person ids."""
    from siamese.data.sources import load_dataset

    data = load_dataset("orl", "all")
    return [np.repeat(x[0].numpy()[:, :, None], 3, axis=2) for x in data.x], data.y


# ------------------------------------------------------------------------------------------
# dlib's own pipeline (the peer), as face_recognition calls it


class DlibPipeline:
    def __init__(self) -> None:
        import dlib

        from siamese.faces.dependencies import face_models_dir

        models = face_models_dir()
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(
            str(models / "dlib_face_recognition_resnet_model_v1.dat")
        )

    def descriptors(self, image: np.ndarray, upsample: int = 1) -> list[np.ndarray]:
        """One 128-d descriptor per face dlib finds, largest face first."""
        boxes = sorted(self.detector(image, upsample), key=lambda r: -r.area())
        return [
            np.array(self.encoder.compute_face_descriptor(image, self.landmarks(image, box)))
            for box in boxes
        ]


# ------------------------------------------------------------------------------------------
# Detection rates


def detection(orl: list[np.ndarray], photos: list[str]) -> dict[str, Any]:
    import dlib

    from siamese.faces.detection import detect_faces

    hog = dlib.get_frontal_face_detector()
    detectors = {
        "haar, one pass (the tutorial's)": lambda im: detect_faces(im, "haar", 10_000, ()),
        "haar, with retries (ours)": lambda im: detect_faces(im, "haar"),
        "hog, dlib without upsampling": lambda im: list(hog(im, 0)),
        "hog, dlib with 1 upsampling (face_recognition's default)": lambda im: list(hog(im, 1)),
        "hog, with retries (ours)": lambda im: detect_faces(im, "hog"),
    }
    celebrity = [rgb(p) for p in photos]
    rows = []
    for name, detect in detectors.items():
        row: dict[str, Any] = {"detector": name}
        for dataset, images in (("orl", orl), ("celebrity", celebrity)):
            start = time.perf_counter()
            found = [len(detect(image)) > 0 for image in images]
            seconds = time.perf_counter() - start
            row[dataset] = {
                "images": len(images),
                "found": int(sum(found)),
                "rate": sum(found) / len(images),
                "ms_per_image": 1000 * seconds / len(images),
            }
        rows.append(row)
        print(f"  {name}: {row['orl']['rate']:.3f} ORL, {row['celebrity']['rate']:.3f} celebrities")
    return {"rows": rows}


# ------------------------------------------------------------------------------------------
# Speed


def speed(photos: list[str], repeats: int = 3) -> dict[str, Any]:
    from siamese.faces.face_resnet import DlibFaceResNet
    from siamese.faces.preprocessing import FaceStep, face_crops

    dlib_pipeline = DlibPipeline()
    model = DlibFaceResNet().eval()
    step = FaceStep(faces="all")

    def ours() -> tuple[int, dict[str, float]]:
        stages = {"decode": 0.0, "detect and align": 0.0, "embed": 0.0}
        chips = []
        for path in photos:
            t0 = time.perf_counter()
            image = rgb(path)
            t1 = time.perf_counter()
            chips += [crop.pixels for crop in face_crops(image, step)]
            t2 = time.perf_counter()
            stages["decode"] += t1 - t0
            stages["detect and align"] += t2 - t1
        t0 = time.perf_counter()
        batch = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2)
        with torch.no_grad():
            for start in range(0, len(batch), 32):
                model(batch[start : start + 32].float() / 255)
        stages["embed"] = time.perf_counter() - t0
        return len(chips), stages

    def theirs() -> tuple[int, dict[str, float]]:
        faces, start = 0, time.perf_counter()
        for path in photos:
            faces += len(dlib_pipeline.descriptors(rgb(path)))
        return faces, {"total": time.perf_counter() - start}

    ours()  # warm-up: weights cache, thread pools
    runs: dict[str, list[tuple[int, dict[str, float]]]] = {"ours": [], "dlib": []}
    for _ in range(repeats):
        runs["ours"].append(ours())
        runs["dlib"].append(theirs())
    result: dict[str, Any] = {"photos": len(photos), "repeats": repeats}
    for name, done in runs.items():
        seconds = [sum(stages.values()) for _, stages in done]
        median = statistics.median(seconds)
        faces = done[0][0]
        result[name] = {
            "faces": faces,
            "seconds": seconds,
            "faces_per_second": faces / median,
            "stages_seconds": {k: statistics.median(s[k] for _, s in done) for k in done[0][1]},
        }
    result["ratio"] = result["ours"]["faces_per_second"] / result["dlib"]["faces_per_second"]
    print(
        f"  ours {result['ours']['faces_per_second']:.1f} faces/s, dlib "
        f"{result['dlib']['faces_per_second']:.1f} faces/s: {result['ratio']:.2f}×"
    )
    return result


# ------------------------------------------------------------------------------------------
# Celebrity retrieval


def retrieval_row(
    name: str,
    gallery: tuple[torch.Tensor, torch.Tensor],
    queries: tuple[torch.Tensor, torch.Tensor],
    total_queries: int,
    gallery_missing: int,
) -> dict[str, Any]:
    """Retrieval of the queries against the gallery; means over all `total_queries`, the
    queries without a face (absent from `queries`) counting as misses."""
    from siamese.evaluation.retrieval import retrieval_metrics

    zg, yg = gallery
    zq, yq = queries
    report = retrieval_metrics(zq.double(), yq, zg.double(), yg, "euclidean")
    nearest = torch.cdist(zq.double(), zg.double()).topk(5, largest=False).indices
    p5 = (yg[nearest] == yq[:, None]).double().mean(1)
    share = len(yq) / total_queries
    row = {
        "row": name,
        "queries_with_a_face": len(yq),
        "queries": total_queries,
        "gallery_without_a_face": gallery_missing,
        "precision_at_1": report.precision_at_1 * share,
        "precision_at_5": float(p5.mean()) * share,
        "r_precision": report.r_precision * share,
        "map_at_r": report.map_at_r * share,
    }
    print(
        f"  {name}: P@1 {row['precision_at_1']:.3f}, R-precision {row['r_precision']:.3f}, "
        f"MAP@R {row['map_at_r']:.3f} ({len(yq)}/{total_queries} queries with a face)"
    )
    return row


def celebrity(env: dict[str, str]) -> dict[str, Any]:
    from siamese.data.sources import load_dataset
    from siamese.models.files import load_model
    from siamese.plots.embedding import plot_embedding_2d

    photos = celebrity_photos()
    total_queries = len(photos["val"])
    classes = sorted({person for _, person in photos["train"]})

    def faces(face: dict[str, Any], size: int | None = None) -> dict[str, Any]:
        options: dict[str, Any] = {"face": {**face, "on_no_face": "skip"}}
        if size is not None:
            options["image_size"] = (size, size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {split: load_dataset(CELEBRITY, split, **options) for split in ("train", "val")}

    def embed(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([model(x[i : i + 32]) for i in range(0, len(x), 32)])

    from siamese.faces.face_resnet import DlibFaceResNet

    pretrained = DlibFaceResNet().eval()
    variants = {
        "haar crops (the tutorial's)": {"detector": "haar", "align": False},
        "haar boxes, 5-point aligned": {"detector": "haar", "align": True},
        "hog boxes, 5-point aligned (the recipe)": {"detector": "hog", "align": True},
    }
    rows = []
    loaded = {name: faces(face) for name, face in variants.items()}

    tutorial = loaded["haar crops (the tutorial's)"]
    pixels = {s: d.x.flatten(1).float() / 255 for s, d in tutorial.items()}
    rows.append(
        retrieval_row(
            "raw pixels (haar crops)",
            (pixels["train"], tutorial["train"].y),
            (pixels["val"], tutorial["val"].y),
            total_queries,
            len(tutorial["train"].skipped),
        )
    )

    scratch = RUNS / "celebrity_scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    config = {
        "seed": 0,
        "data": {
            "name": CELEBRITY,
            "split": "train",
            "options": {
                "face": {"detector": "hog", "align": True, "on_no_face": "skip"},
                "image_size": [64, 64],
            },
            "validation": "none",
        },
        "augment": {"degrees": 8, "translate": 0.06, "scale": [0.92, 1.08], "hflip": 0.5},
        "model": {"encoder": "convnet", "options": {"widths": [32, 64, 128, 128]}},
        "loss": {"name": "triplet", "margin": 0.2, "mining": "semihard"},
        "batches": {"kind": "pk", "p": 5, "k": 4},
        "optimizer": {"name": "adamw", "lr": 0.002, "weight_decay": 0.0005},
        "train": {"steps": 300, "epochs": None, "validate_every": 0},
    }
    scratch.mkdir(parents=True)
    (scratch.parent / "celebrity_scratch.json").write_text(json.dumps(config))
    started = time.perf_counter()
    run(["train", str(scratch.parent / "celebrity_scratch.json"), "--out", str(scratch)], env)
    scratch_seconds = time.perf_counter() - started
    small = faces(config["data"]["options"]["face"], 64)
    model = load_model(scratch)
    rows.append(
        retrieval_row(
            "ConvNet-4 trained from scratch on the 93 training photos (hog, aligned, 64×64)",
            (embed(model, small["train"].x), small["train"].y),
            (embed(model, small["val"].x), small["val"].y),
            total_queries,
            len(small["train"].skipped),
        )
    )
    rows[-1]["train_seconds"] = round(scratch_seconds, 1)

    for name, data in loaded.items():
        rows.append(
            retrieval_row(
                f"pretrained face ResNet (port), {name}",
                (embed(pretrained, data["train"].x), data["train"].y),
                (embed(pretrained, data["val"].x), data["val"].y),
                total_queries,
                len(data["train"].skipped),
            )
        )

    peer = DlibPipeline()
    parts: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    for split, files in photos.items():
        z, y = [], []
        for path, person in files:
            found = peer.descriptors(rgb(path))
            if found:
                z.append(found[0])
                y.append(classes.index(person))
        parts[split] = (z, y)
    rows.append(
        retrieval_row(
            "dlib's own pipeline (hog with 1 upsampling, 5 landmarks, compute_face_descriptor)",
            (torch.tensor(np.array(parts["train"][0])), torch.tensor(parts["train"][1])),
            (torch.tensor(np.array(parts["val"][0])), torch.tensor(parts["val"][1])),
            total_queries,
            len(photos["train"]) - len(parts["train"][1]),
        )
    )

    # The figures: t-SNE of every face (recipe's crops), and the recipe's own evaluation.
    recipe = loaded["hog boxes, 5-point aligned (the recipe)"]
    x = torch.cat([recipe["train"].x, recipe["val"].x])
    y = torch.cat([recipe["train"].y, recipe["val"].y])
    FIGURES.mkdir(parents=True, exist_ok=True)
    plot_embedding_2d(
        embed(pretrained, x),
        y,
        recipe["train"].classes,
        FIGURES / "celebrity_tsne.png",
        "5 celebrities: pretrained face ResNet (port), t-SNE of all 116 faces",
        method="tsne",
        images=x,
        thumbnails=60,
    )
    recipe_run = RUNS / "celebrity_retrieval"
    shutil.rmtree(recipe_run, ignore_errors=True)
    run(["train", "configs/celebrity_retrieval.yaml", "--out", str(recipe_run)], env)
    run(
        [
            "evaluate", str(recipe_run), "--split", "val", "--protocol", "retrieval",
            "--gallery", "train",
        ],
        env,
    )  # fmt: skip
    from PIL import Image

    with Image.open(recipe_run / "evaluation" / "figures" / "retrieval.png") as grid:
        # 256 colours: a third of the size in the repository, no visible change
        grid.convert("RGB").quantize(256).save(FIGURES / "celebrity_retrieval.png", optimize=True)
    metrics = json.loads((recipe_run / "evaluation" / "metrics.json").read_text())
    return {
        "protocol": (
            "closed-set: the 93 training photos of the 5 people are the gallery, the 25 val "
            "photos the queries; euclidean distance; means over all 25 queries, a query in "
            "which no face is found counting as a miss; gallery photos without a face are "
            "left out"
        ),
        "rows": rows,
        "recipe_cli": {
            "config": "configs/celebrity_retrieval.yaml",
            "retrieval": metrics["metrics"]["retrieval"],
            "data": metrics["data"],
            "statement": metrics["statement"],
        },
        "figures": ["figures/celebrity_tsne.png", "figures/celebrity_retrieval.png"],
    }


# ------------------------------------------------------------------------------------------
# ORL: pretrained, fine-tuned, dlib's own pipeline on the same folds


def run(arguments: list[str], env: dict[str, str]) -> str:
    quiet = [] if arguments[0] == "sweep" else ["--quiet"]  # sweep prints no progress bars
    argv = [sys.executable, "-m", "siamese", *arguments, *quiet]
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def orl_part(env: dict[str, str]) -> dict[str, Any]:
    from siamese.config import load_config
    from siamese.evaluation.verification import accuracy_at_threshold, eer, labelled_pairs
    from siamese.faces.face_resnet import DLIB_THRESHOLD
    from siamese.run_evaluation.data import evaluation_data

    rows: dict[str, Any] = {}
    for name, extra in (("pretrained", ["--set", "train.steps=0"]), ("fine-tuned", [])):
        sweep = RUNS / f"orl_{name}"
        shutil.rmtree(sweep, ignore_errors=True)
        started = time.perf_counter()
        folds = ",".join(str(k) for k in range(FOLDS))
        run(
            ["sweep", "configs/orl_pretrained.yaml", "--out", str(sweep), "--set",
             f"data.test_fold={folds}", *extra],
            env,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        document = json.loads((sweep / "sweep.json").read_text())
        identification = []
        for k in range(FOLDS):
            fold = sweep / f"data.test_fold={k}"
            out = sweep / f"identification-{k}"
            run(["evaluate", str(fold), "--protocol", "identification", "--out", str(out)], env)
            identification.append(
                json.loads((out / "metrics.json").read_text())["metrics"]["identification"]
            )
        rows[name] = {
            "sweep_seconds": round(seconds, 1),
            "mean_std": document["mean_std"],
            "folds": document["folds"],
            "identification": identification,
        }
        print(f"  {name}: EER {document['mean_std']['EER']}")

    # dlib's own pipeline on each fold's test examples as `evaluate` chose them (the same
    # photos, labels and seed, so the same balanced pairs), from the original photos; where
    # dlib's detector finds no face, the whole photo is the face box (ORL photos are face
    # crops already), as face_recognition users pass known_face_locations.
    import dlib

    from siamese.data.sources import load_dataset

    peer = DlibPipeline()
    raw = load_dataset("orl", "all")
    photo = {path: x[0].numpy() for path, x in zip(raw.paths or [], raw.x, strict=True)}
    folds_out = []
    for k in range(FOLDS):
        config = load_config(RUNS / "orl_pretrained" / f"data.test_fold={k}" / "config.yaml")
        chosen = evaluation_data(config).data
        descriptors, whole = [], 0
        for path in chosen.paths or []:
            image = np.ascontiguousarray(np.repeat(photo[path][:, :, None], 3, axis=2))
            found = peer.descriptors(image, upsample=1)
            if not found:
                whole += 1
                box = dlib.rectangle(0, 0, image.shape[1] - 1, image.shape[0] - 1)
                shape = peer.landmarks(image, box)
                found = [np.array(peer.encoder.compute_face_descriptor(image, shape))]
            descriptors.append(found[0])
        z = torch.tensor(np.array(descriptors))
        i, j, same = labelled_pairs(chosen.y, max_pairs=200_000, seed=0)
        distances = torch.linalg.vector_norm(z[i] - z[j], dim=1)
        folds_out.append(
            {
                "fold": k,
                "examples": len(chosen),
                "pairs": len(same),
                "no_face_found_whole_photo_used": whole,
                "EER": eer(distances, same),
                DLIB_ACCURACY: accuracy_at_threshold(distances, same, DLIB_THRESHOLD),
            }
        )
    rows["dlib"] = {"folds": folds_out, "mean_std": _mean_std(folds_out)}
    print(f"  dlib's pipeline: EER {rows['dlib']['mean_std']['EER']}")
    scratch = json.loads((HERE / "results" / "recipe_orl_verification.json").read_text())
    rows["from_scratch_recipe"] = {
        "source": "results/recipe_orl_verification.json (bench_recipes.py, same folds and pairs)",
        "mean_std": scratch.get("mean_std"),
        "date": scratch.get("date"),
    }
    return rows


def _mean_std(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = [k for k, v in rows[0].items() if isinstance(v, float)]
    return {
        key: {
            "mean": statistics.fmean(r[key] for r in rows),
            "std": statistics.pstdev(r[key] for r in rows),
        }
        for key in keys
    }


# ------------------------------------------------------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f} %"


def pm(stats: dict[str, float] | None, digits: int = 2) -> str:
    if not stats:
        return "—"
    return f"{100 * stats['mean']:.{digits}f} ± {100 * stats['std']:.{digits}f} %"


def identification_cell(rows: list[dict[str, Any]], shots: str, key: str) -> str:
    values = []
    for report in rows:
        node = report.get(shots, {})
        node = node.get(key) if key == "rank1" else node.get("fnir_at_fpir", {}).get("0.1")
        if node is None:
            return "—"
        values.append(node["mean"] if isinstance(node, dict) else node)
    return pm({"mean": statistics.fmean(values), "std": statistics.pstdev(values)}, 1)


def section(document: dict[str, Any]) -> str:
    m = document["machine"]
    lines: list[str] = []
    if "detection" in document:
        lines += [
            "**Detection**: the share of images in which each detector finds a face (every "
            "image of both datasets holds one), and its time per image.",
            "",
            "| detector | ORL (400 photos, 92×112 gray) | ms/photo | 5 celebrities (118 photos) "
            "| ms/photo |",
            "|---|---|---|---|---|",
        ]
        for row in document["detection"]["rows"]:
            o, c = row["orl"], row["celebrity"]
            lines.append(
                f"| {row['detector']} | {pct(o['rate'])} ({o['found']}) | "
                f"{o['ms_per_image']:.1f} | {pct(c['rate'])} ({c['found']}) | "
                f"{c['ms_per_image']:.1f} |"
            )
        lines.append("")
    if "speed" in document:
        sp = document["speed"]
        ours, dlib = sp["ours"], sp["dlib"]
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in ours["stages_seconds"].items())
        lines += [
            f"**Speed**, photo file to descriptor, on the {sp['photos']} celebrity photos "
            f"(median of {sp['repeats']} interleaved runs): ours "
            f"**{ours['faces_per_second']:.1f} faces/s** ({ours['faces']} faces; {stages}), "
            f"dlib's own pipeline {dlib['faces_per_second']:.1f} faces/s ({dlib['faces']} "
            f"faces): **{sp['ratio']:.1f}×** (goal ≥ 3×: "
            f"{'met' if sp['ratio'] >= 3 else 'not met'}).",
            "",
        ]
    if "celebrity_retrieval" in document:
        cr = document["celebrity_retrieval"]
        lines += [
            f"**celebrity_retrieval** ({cr['protocol']}).",
            "",
            "| row | P@1 | P@5 | R-precision | MAP@R | queries with a face | gallery photos "
            "without one |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in cr["rows"]:
            lines.append(
                f"| {row['row']} | {pct(row['precision_at_1'])} | {pct(row['precision_at_5'])} "
                f"| {row['r_precision']:.3f} | {row['map_at_r']:.3f} | "
                f"{row['queries_with_a_face']}/{row['queries']} | "
                f"{row['gallery_without_a_face']} |"
            )
        cli = cr["recipe_cli"]["retrieval"]
        lines += [
            "",
            f"The recipe by its two commands (`siamese train configs/celebrity_retrieval.yaml`, "
            f"`siamese evaluate RUN --split val --protocol retrieval --gallery train`): 1-NN "
            f"{pct(cli.get('precision@1', cli.get('precision_at_1')))} over the queries with a "
            "face. Goal: P@1 = 100 % with the pretrained encoder. Figures: "
            "[t-SNE](results/figures/celebrity_tsne.png), "
            "[retrieval grid](results/figures/celebrity_retrieval.png).",
            "",
        ]
    if "orl_pretrained" in document:
        op = document["orl_pretrained"]
        lines += [
            "**orl_pretrained** (open-set: 10 people never trained on per fold, 4 identity "
            "folds, the balanced pairs of `orl_verification`; mean ± std over folds; "
            "identification: half the unseen people enrolled, 10 trials per fold).",
            "",
            "| row | EER | accuracy at the validation threshold | 10-way 1-shot | open-set "
            "rank-1 (1-shot) | FNIR at FPIR 10 % (1-shot) |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("pretrained", "fine-tuned"):
            row = op[name]
            ms = row["mean_std"]
            lines.append(
                f"| dlib face ResNet (port), {name} | {pm(ms.get('EER'))} | "
                f"{pm(ms.get('accuracy at the validation threshold'))} | "
                f"{pm(ms.get('10-way 1-shot'))} | "
                f"{identification_cell(row['identification'], '1-shot', 'rank1')} | "
                f"{identification_cell(row['identification'], '1-shot', 'fnir')} |"
            )
        dl = op["dlib"]["mean_std"]
        at_dlib = pm(dl.get(DLIB_ACCURACY))
        lines.append(
            "| dlib's own pipeline (same photos and pairs; accuracy at dlib's 0.6) | "
            f"{pm(dl.get('EER'))} | {at_dlib} | — | — | — |"
        )
        sc = op["from_scratch_recipe"]["mean_std"] or {}
        lines.append(
            f"| orl_verification, ConvNet from scratch (committed {op['from_scratch_recipe']['date']}) "
            f"| {pm(sc.get('EER'))} | {pm(sc.get('accuracy at the validation threshold'))} | "
            f"{pm(sc.get('10-way 1-shot'))} | — | — |"
        )
        lines.append("")
    lines.append(f"Measured {document['date']} on {m['cpu']} ({m['cores']} cores).")
    return "\n".join(lines)


def readme_table(document: dict[str, Any]) -> str:
    """README's summary: the recipe rows against their peers, and the speed."""
    lines = ["| measure | ours | peers in the same run |", "|---|---|---|"]
    cr = document.get("celebrity_retrieval")
    if cr:
        rows = {row["row"]: row for row in cr["rows"]}
        recipe = next(r for name, r in rows.items() if "(the recipe)" in name)
        dlib = next(r for name, r in rows.items() if name.startswith("dlib's own"))
        scratch = next(r for name, r in rows.items() if name.startswith("ConvNet"))
        raw = next(r for name, r in rows.items() if name.startswith("raw pixels"))
        tutorial = next(
            r for name, r in rows.items() if "tutorial" in name and "pretrained" in name
        )
        lines.append(
            "| celebrity_retrieval P@1 / R-precision (25 queries, closed-set) | "
            f"{pct(recipe['precision_at_1'])} / {recipe['r_precision']:.3f} (pretrained, "
            "hog + aligned) | dlib's pipeline "
            f"{pct(dlib['precision_at_1'])} / {dlib['r_precision']:.3f}; Haar crops "
            f"{pct(tutorial['precision_at_1'])} / {tutorial['r_precision']:.3f}; ConvNet from "
            f"scratch {pct(scratch['precision_at_1'])} / {scratch['r_precision']:.3f}; raw "
            f"pixels {pct(raw['precision_at_1'])} / {raw['r_precision']:.3f} |"
        )
    op = document.get("orl_pretrained")
    if op:
        scratch = (op["from_scratch_recipe"]["mean_std"] or {}).get("EER")
        lines.append(
            "| orl_pretrained EER (open-set, 4 folds) | "
            f"{pm(op['pretrained']['mean_std'].get('EER'))} pretrained, "
            f"{pm(op['fine-tuned']['mean_std'].get('EER'))} fine-tuned | dlib's pipeline "
            f"{pm(op['dlib']['mean_std'].get('EER'))}; orl_verification from scratch "
            f"{pm(scratch)} (committed run) |"
        )
    sp = document.get("speed")
    if sp:
        lines.append(
            "| faces/s, photo to descriptor (celebrity photos, 2 cores) | "
            f"{sp['ours']['faces_per_second']:.1f} | dlib's pipeline "
            f"{sp['dlib']['faces_per_second']:.1f} (ours {sp['ratio']:.1f}×) |"
        )
    det = document.get("detection")
    if det:
        rows = {row["detector"]: row for row in det["rows"]}
        ours = rows["hog, with retries (ours)"]
        theirs = rows["hog, dlib with 1 upsampling (face_recognition's default)"]
        lines.append(
            "| photos with a face found (ORL 400 / celebrities 118) | "
            f"{pct(ours['orl']['rate'])} / {pct(ours['celebrity']['rate'])} | dlib HOG with "
            f"1 upsampling {pct(theirs['orl']['rate'])} / {pct(theirs['celebrity']['rate'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    args = parser.parse_args()
    parts = args.parts or list(PARTS)
    unknown = sorted(set(parts) - {*PARTS, "publish"})
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}: choose from {', '.join(PARTS)}")
    data_dir = os.environ.get("SIAMESE_DATA_DIR")
    if not data_dir:
        raise SystemExit("set SIAMESE_DATA_DIR to the directory with the datasets")
    env = {**os.environ, "SIAMESE_DATA_DIR": data_dir}
    document: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if parts != ["publish"]:
        document.update(
            benchmark="faces", date=time.strftime("%Y-%m-%d"), machine=describe_machine()
        )
    photos = [p for split in celebrity_photos().values() for p, _ in split]
    for part in parts:
        print(f"{part} ...", flush=True)
        if part == "detection":
            document["detection"] = detection(orl_images()[0], photos)
        elif part == "speed":
            document["speed"] = speed(photos)
        elif part == "celebrity":
            document["celebrity_retrieval"] = celebrity(env)
        elif part == "orl":
            document["orl_pretrained"] = orl_part(env)
        else:
            continue
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    replace_section(HERE / "BENCHMARKS.md", "faces", section(document))
    replace_section(ROOT / "README.md", "faces-results", readme_table(document))


if __name__ == "__main__":
    main()
