"""Clustering unlabelled photos by identity (issue 27): `siamese cluster`'s algorithms at the
model's calibrated distance, against the tools people cluster faces with, in the same run.

Sets (every one open-set: no identity in it was trained on or calibrated on):

- orl: ORL's 20 people the face model was not calibrated on (200 photos);
- celebrities: the 5 celebrities' 118 photos (train and val folders together);
- orl+celebrities: both mixed (25 people, 318 photos);
- omniglot: Omniglot's evaluation characters (659 characters × 20 drawings), the
  omniglot_oneshot model (trained and calibrated on background alphabets);
- glyphs: the glyphs' held-out test characters, the glyphs_triplet model.

Rows: each of our algorithms at the distance the model's calibration gives for the default
pair FAR (`siamese.clustering.photo_clustering.DEFAULT_FAR`: no per-set tuning), and the
peers — face_recognition's recipe (dlib's own detector, landmarks and descriptors, then
`dlib.chinese_whispers_clustering` at 0.5, as its "cluster faces" example), scikit-learn's
DBSCAN with the distance photo apps built on dlib descriptors use (eps 0.5, at least 3
faces), and scikit-learn's HDBSCAN with its defaults (on our embeddings). A photo in which a
pipeline finds no face is a group of one in its result (every row is scored on every photo).

The default algorithm and FAR were chosen (part `choice`) on validation sets only: ORL's 20
people the face model was calibrated on, the omniglot_oneshot run's validation characters
and the glyphs run's validation characters — none of them in an evaluation set.

Part `scale`: 100,000 embeddings (10,000 synthetic identities × 10 in 128-d) clustered by
the default algorithm, time and peak memory measured in a fresh process, beside dlib's
`chinese_whispers_clustering` (every pair, in C++) on 10,000 and 20,000 of them.

Writes benchmarks/results/cluster.json and BENCHMARKS.md's cluster section.

    python benchmarks/bench_cluster.py                 # everything (about 15 minutes)
    python benchmarks/bench_cluster.py choice          # named parts only
    python benchmarks/bench_cluster.py publish         # rewrite the section from the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from bench_faces import DlibPipeline, celebrity_photos, rgb
from machine import describe_machine
from markdown_tables import publish_results
from siamese.clustering import ALGORITHMS, DEFAULT_ALGORITHM, cluster_embeddings
from siamese.clustering.photo_clustering import DEFAULT_FAR
from siamese.clustering.scores import clustering_scores
from siamese.recognition import Recognizer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "bench"
RESULTS = HERE / "results" / "cluster.json"
PARTS = ("choice", "quality", "scale")
FACE_SETS = ("orl", "celebrities", "orl+celebrities")
SETS = (*FACE_SETS, "omniglot", "glyphs")
CANDIDATE_FARS = (1e-2, 5e-3, 1e-3, 5e-4, 1e-4)
PHOTO_APP_EPS, PHOTO_APP_MIN_FACES = 0.5, 3
FACE_RECOGNITION_TOLERANCE = 0.5


def ensure_run(name: str, config: str) -> Path:
    run = RUNS / name
    if not (run / "model.safetensors").is_file():
        argv = [sys.executable, "-m", "siamese", "train", config, "--out", str(run), "--quiet"]
        subprocess.run(argv, cwd=ROOT, check=True)
    return run


def distance_at(recognizer: Any, far: float) -> tuple[float, float]:
    """The calibrated distance at `far`, or at the nearest larger rate the calibration
    supports (the rule `siamese cluster` applies to its default)."""
    at = recognizer.thresholds.at_far
    supported = [f for f in at if f >= far * (1 - 1e-9)] or [max(at)]
    rate = min(supported)
    return float(at[rate]), float(rate)


# ------------------------------------------------------------------------------------------
# Data: every set as (items, true labels), our embeddings (None where no face), the model


def embedded_rows(recognizer: Any, images: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Our embeddings of the images that gave a face, and which images those are."""
    prepared = recognizer.prepare_images(images)
    z = np.asarray(recognizer.embed_prepared(prepared.x, 128), dtype=np.float32)
    return z, np.asarray(prepared.image, dtype=np.int64)


def face_sets(recognizer: Any) -> dict[str, dict[str, Any]]:
    """The face evaluation sets: images (arrays or paths), labels, our embeddings."""
    from siamese.data.sources import load_dataset

    split = json.loads((recognizer.model_dir / "split.json").read_text())
    calibration_people = set(split["parts"]["validation"]["class_names"])
    orl = load_dataset("orl", "all")
    keep = [i for i, c in enumerate(orl.y.tolist()) if orl.classes[c] not in calibration_people]
    orl_images = [np.repeat(orl.x[i, 0].numpy()[:, :, None], 3, axis=2) for i in keep]
    orl_y = orl.y.numpy()[keep]
    photos = celebrity_photos()
    celeb = photos["train"] + photos["val"]
    celeb_images = [path for path, _ in celeb]
    names = sorted({person for _, person in celeb})
    celeb_y = np.asarray([1000 + names.index(person) for _, person in celeb])
    sets = {}
    for name, images, y in (
        ("orl", orl_images, orl_y),
        ("celebrities", celeb_images, celeb_y),
    ):
        z, rows = embedded_rows(recognizer, images)
        dlib_rgb = [image if isinstance(image, np.ndarray) else rgb(image) for image in images]
        sets[name] = {"images": dlib_rgb, "y": y, "z": z, "rows": rows}
    a, b = sets["orl"], sets["celebrities"]
    sets["orl+celebrities"] = {
        "images": a["images"] + b["images"],
        "y": np.concatenate([a["y"], b["y"]]),
        "z": np.concatenate([a["z"], b["z"]]),
        "rows": np.concatenate([a["rows"], b["rows"] + len(a["images"])]),
    }
    return sets


def character_set(recognizer: Any, name: str) -> dict[str, Any]:
    from siamese.data.sources import load_dataset

    if name == "omniglot":
        data = load_dataset("omniglot", "evaluation", None, image_size=(28, 28))
    else:
        data = load_dataset("glyphs", "test", None)
    z = np.asarray(recognizer.embed_prepared(data.x, 512), dtype=np.float32)
    y = data.y.numpy()
    return {"y": y, "z": z, "rows": np.arange(y.size)}


def validation_set(run: Path) -> dict[str, Any]:
    """A run's validation classes (its calibration data), embedded."""
    from siamese.config import load_config
    from siamese.run_directory.data import load_training_data

    recognizer = Recognizer.load(run)
    _, validation, _ = load_training_data(load_config(run / "config.yaml"))
    assert validation is not None
    z = np.asarray(recognizer.embed_prepared(validation.x, 512), dtype=np.float32)
    y = validation.y.numpy()
    return {"recognizer": recognizer, "y": y, "z": z, "rows": np.arange(y.size)}


# ------------------------------------------------------------------------------------------
# Scoring: every item of a set is scored; items without an embedding are singletons


def full_labels(found: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """(n,) labels over every item: the clustering's for the rows it saw, −1 elsewhere."""
    labels = np.full(n, -1, dtype=np.int64)
    labels[rows] = found
    return labels


def ours(s: dict[str, Any], recognizer: Any, algorithm: str, distance: float) -> dict:
    """One of our algorithms on a set; a refusal (linkage over too large a chained group)
    is recorded with its message and scores 0."""
    from siamese.errors import ConfigError

    started = time.perf_counter()
    try:
        result = cluster_embeddings(s["z"], recognizer.metric, distance, algorithm)
    except ConfigError as err:
        return {"refused": str(err), "pairwise_f1": 0.0, "bcubed_f": 0.0, "clusters_found": 0}
    seconds = time.perf_counter() - started
    labels = full_labels(result.labels, s["rows"], s["y"].size)
    return {**clustering_scores(labels, s["y"]).as_dict(), "seconds": seconds}


def sklearn_peer(s: dict[str, Any], kind: str, metric: str) -> dict:
    from sklearn.cluster import DBSCAN, HDBSCAN

    x = s["z"].astype(np.float64)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    model = (
        DBSCAN(eps=PHOTO_APP_EPS, min_samples=PHOTO_APP_MIN_FACES)
        if kind == "dbscan"
        else HDBSCAN()
    )
    started = time.perf_counter()
    found = model.fit_predict(x)
    seconds = time.perf_counter() - started
    labels = full_labels(found, s["rows"], s["y"].size)
    return {**clustering_scores(labels, s["y"]).as_dict(), "seconds": seconds}


def face_recognition_peer(s: dict[str, Any], dlib_pipeline: DlibPipeline) -> dict:
    """face_recognition's "cluster faces" recipe on every photo: dlib's pipeline end to end,
    then chinese_whispers_clustering at 0.5 (timed: descriptors and clustering)."""
    import dlib

    started = time.perf_counter()
    descriptors, rows = [], []
    for i, image in enumerate(s["images"]):
        found = dlib_pipeline.descriptors(image)
        if found:
            descriptors.append(dlib.vector(found[0].tolist()))
            rows.append(i)
    embedding = time.perf_counter() - started
    started = time.perf_counter()
    found_labels = np.asarray(
        dlib.chinese_whispers_clustering(descriptors, FACE_RECOGNITION_TOLERANCE)
    )
    seconds = time.perf_counter() - started
    labels = full_labels(found_labels, np.asarray(rows), s["y"].size)
    return {
        **clustering_scores(labels, s["y"]).as_dict(),
        "seconds": seconds,
        "descriptor_seconds": embedding,
        "photos_with_a_face": len(rows),
    }


# ------------------------------------------------------------------------------------------
# Parts


def choice_part() -> dict[str, Any]:
    """Pairwise F1 of every algorithm at every candidate FAR, on the validation sets."""
    runs = {
        "orl-calibration-people": ensure_run("face_pretrained", "configs/face_pretrained.yaml"),
        "omniglot-validation": ensure_run("omniglot_oneshot", "configs/omniglot_oneshot.yaml"),
        "glyphs-validation": ensure_run("glyphs_triplet", "configs/glyphs_triplet.yaml"),
    }
    table: dict[str, Any] = {}
    for name, run in runs.items():
        s = validation_set(run)
        recognizer = s.pop("recognizer")
        rows = {}
        for far in CANDIDATE_FARS:
            distance, rate = distance_at(recognizer, far)
            for algorithm in ALGORITHMS:
                scores = ours(s, recognizer, algorithm, distance)
                rows[f"{algorithm}@{far:g}"] = {**scores, "far_used": rate, "distance": distance}
                print(f"{name} {algorithm}@{far:g}: F1 {scores['pairwise_f1']:.4f}", flush=True)
                if "refused" in scores:
                    print(f"  refused: {scores['refused']}", flush=True)
        table[name] = {
            "items": int(s["y"].size),
            "classes": int(np.unique(s["y"]).size),
            "rows": rows,
        }
    keys = list(next(iter(table.values()))["rows"])
    mean = {k: float(np.mean([t["rows"][k]["pairwise_f1"] for t in table.values()])) for k in keys}
    best = max(mean, key=mean.__getitem__)
    return {"sets": table, "mean_pairwise_f1": mean, "best": best}


def quality_part() -> dict[str, Any]:
    face_run = ensure_run("face_pretrained", "configs/face_pretrained.yaml")
    face_model = Recognizer.load(face_run)
    out: dict[str, Any] = {}
    sets: dict[str, tuple[dict[str, Any], Any]] = {}
    for name, s in face_sets(face_model).items():
        sets[name] = (s, face_model)
    for name, (run, config) in {
        "omniglot": ("omniglot_oneshot", "configs/omniglot_oneshot.yaml"),
        "glyphs": ("glyphs_triplet", "configs/glyphs_triplet.yaml"),
    }.items():
        model = Recognizer.load(ensure_run(run, config))
        sets[name] = (character_set(model, name), model)
    dlib_pipeline = DlibPipeline()
    for name in SETS:
        s, model = sets[name]
        distance, rate = distance_at(model, DEFAULT_FAR)
        rows: dict[str, Any] = {}
        for algorithm in ALGORITHMS:
            rows[algorithm] = ours(s, model, algorithm, distance)
        rows["DBSCAN (photo apps: eps 0.5, 3 faces)"] = sklearn_peer(s, "dbscan", model.metric)
        rows["HDBSCAN (defaults)"] = sklearn_peer(s, "hdbscan", model.metric)
        if name in FACE_SETS:
            rows["face_recognition (dlib, Chinese whispers at 0.5)"] = face_recognition_peer(
                s, dlib_pipeline
            )
        out[name] = {
            "items": int(s["y"].size),
            "identities": int(np.unique(s["y"]).size),
            "embedded": int(s["rows"].size),
            "distance": distance,
            "far": rate,
            "rows": rows,
        }
        best = max(rows, key=lambda r: rows[r]["pairwise_f1"])
        print(
            f"{name}: best {best} {rows[best]['pairwise_f1']:.4f}; "
            f"ours {DEFAULT_ALGORITHM} {rows[DEFAULT_ALGORITHM]['pairwise_f1']:.4f}",
            flush=True,
        )
    return out


SCALE_CHILD = r"""
import json, sys, time
import numpy as np

def memory_mib(field):  # VmHWM: this process's peak resident memory (fresh after exec)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

n, identities, dim, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if mode == "dlib":
    import dlib
else:
    from siamese.clustering import cluster_embeddings
    from siamese.clustering.scores import clustering_scores
rng = np.random.default_rng(0)
centres = rng.normal(size=(identities, dim)).astype(np.float32)
centres /= np.linalg.norm(centres, axis=1, keepdims=True)
y = np.repeat(np.arange(identities), n // identities)
z = centres[y] + rng.normal(scale=0.03, size=(y.size, dim)).astype(np.float32)
before = memory_mib("VmHWM")
started = time.perf_counter()
if mode == "dlib":
    labels = np.asarray(dlib.chinese_whispers_clustering([dlib.vector(r.tolist()) for r in z], 0.5))
else:
    labels = cluster_embeddings(z, "euclidean", 0.5, mode).labels
seconds = time.perf_counter() - started
after = memory_mib("VmHWM")
from siamese.clustering.scores import clustering_scores
print(json.dumps({"seconds": seconds, "peak_rss_mib": after, "data_rss_mib": before,
                  **clustering_scores(labels, y).as_dict()}))
"""


def scale_run(n: int, mode: str) -> dict[str, Any]:
    argv = [sys.executable, "-c", SCALE_CHILD, str(n), str(n // 10), "128", mode]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def scale_part() -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for n in (10_000, 20_000):
        rows[f"{DEFAULT_ALGORITHM} {n:,}"] = scale_run(n, DEFAULT_ALGORITHM)
        rows[f"dlib chinese_whispers_clustering {n:,}"] = scale_run(n, "dlib")
        print(
            n,
            rows[f"{DEFAULT_ALGORITHM} {n:,}"]["seconds"],
            rows[f"dlib chinese_whispers_clustering {n:,}"]["seconds"],
            flush=True,
        )
    rows[f"{DEFAULT_ALGORITHM} 100,000"] = scale_run(100_000, DEFAULT_ALGORITHM)
    print(rows[f"{DEFAULT_ALGORITHM} 100,000"], flush=True)
    return {
        "data": "synthetic: identities × 10 embeddings, 128-d, unit centres + N(0, 0.03²) noise, "
        "threshold 0.5 (Euclidean)",
        "rows": rows,
    }


# ------------------------------------------------------------------------------------------
# Report


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def section(document: dict[str, Any]) -> str:
    lines = [
        f"Measured {document.get('date', '')} on {document['machine'].get('cpu', 'this machine')}"
        f" ({document['machine'].get('cores', '?')} cores); `python benchmarks/bench_cluster.py`.",
        "",
    ]
    quality = document.get("quality")
    if quality:
        lines += [
            "Open-set: no identity below was trained on or used to calibrate the model, or to "
            f"choose the defaults ({DEFAULT_ALGORITHM}, pair FAR "
            f"{document.get('default_far', DEFAULT_FAR):g}; chosen on validation sets, below). "
            "Pairwise F1 (%), BCubed F (%), clusters found / true identities; every photo "
            "scored (one without a face found is a group of one).",
            "",
        ]
        names = list(next(iter(quality.values()))["rows"])
        names += [r for s in quality.values() for r in s["rows"] if r not in names]
        header = (
            "| rows | "
            + " | ".join(
                f"{k} ({v['items']:,} {'photos' if k in FACE_SETS else 'drawings'}, "
                f"{v['identities']} ids)"
                for k, v in quality.items()
            )
            + " |"
        )
        lines += [header, "|---" * (len(quality) + 1) + "|"]
        for row in names:
            cells = []
            for s in quality.values():
                r = s["rows"].get(row)
                best = max(x["pairwise_f1"] for x in s["rows"].values())
                if r is None:
                    cells.append("—")
                    continue
                if "refused" in r:
                    cells.append("refused: a chained group over 12,000")
                    continue
                cell = f"{pct(r['pairwise_f1'])} / {pct(r['bcubed_f'])} / {r['clusters_found']}"
                cells.append(f"**{cell}**" if r["pairwise_f1"] == best else cell)
            label = f"ours: {row}" if row in ALGORITHMS else row
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        verdicts = []
        for k in FACE_SETS:
            rows_k = quality[k]["rows"]
            best_row = max(rows_k, key=lambda r: rows_k[r]["pairwise_f1"])
            mine = rows_k[DEFAULT_ALGORITHM]
            if mine["pairwise_f1"] >= rows_k[best_row]["pairwise_f1"]:
                verdicts.append(f"{k}: met ({pct(mine['pairwise_f1'])})")
            else:
                verdicts.append(
                    f"{k}: not met ({pct(mine['pairwise_f1'])} against {best_row} "
                    f"{pct(rows_k[best_row]['pairwise_f1'])}; ours at precision "
                    f"{pct(mine['pairwise_precision'])}, recall {pct(mine['pairwise_recall'])})"
                )
        lines += [
            "",
            "Goal, the best pairwise F1 on every face set with the defaults: "
            + "; ".join(verdicts)
            + ".",
            "",
            "True identities: "
            + ", ".join(f"{k} {v['identities']}" for k, v in quality.items())
            + ". Distances: "
            + ", ".join(f"{k} {v['distance']:.3f} (FAR {v['far']:g})" for k, v in quality.items())
            + ".",
            "",
        ]
    choice = document.get("choice")
    if choice:
        mean = choice["mean_pairwise_f1"]
        top = sorted(mean, key=mean.__getitem__, reverse=True)[:6]
        lines += [
            "What chose the defaults (validation sets only: "
            + ", ".join(
                f"{k} ({v['items']} items, {v['classes']} classes)"
                for k, v in choice["sets"].items()
            )
            + "): mean pairwise F1 over them, best six of every algorithm × pair FAR:",
            "",
            "| algorithm @ FAR | mean pairwise F1 (%) | " + " | ".join(choice["sets"]) + " |",
            "|---|---|" + "---|" * len(choice["sets"]),
        ]
        for key in top:
            lines.append(
                f"| {key} | {pct(mean[key])} | "
                + " | ".join(pct(v["rows"][key]["pairwise_f1"]) for v in choice["sets"].values())
                + " |"
            )
        lines.append("")
    scale = document.get("scale")
    if scale:
        lines += [
            f"Scale ({scale['data']}; each in a fresh process):",
            "",
            "| run | seconds | peak memory (MiB) | before clustering (data, libraries) | pairwise F1 (%) |",
            "|---|---|---|---|---|",
        ]
        for key, r in scale["rows"].items():
            lines.append(
                f"| {key} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | "
                f"{r['data_rss_mib']:.0f} | {pct(r['pairwise_f1'])} |"
            )
    return "\n".join(lines)


def readme_table(document: dict[str, Any]) -> str:
    """README's summary: pairwise F1 of the default against every peer, per set, and scale."""
    quality = document["quality"]
    peers = [r for r in next(iter(quality.values()))["rows"] if r not in ALGORITHMS]
    peers += [
        r for s in quality.values() for r in s["rows"] if r not in ALGORITHMS and r not in peers
    ]
    lines = [
        "| pairwise F1 (%), open-set | "
        + " | ".join(k if k in FACE_SETS else f"{k} (not faces)" for k in quality)
        + " |",
        "|---" * (len(quality) + 1) + "|",
    ]
    for row in [DEFAULT_ALGORITHM, *peers]:
        label = f"**siamese cluster** ({row}, FAR {DEFAULT_FAR:g})" if row in ALGORITHMS else row
        cells = [
            pct(s["rows"][row]["pairwise_f1"])
            if row in s["rows"] and "refused" not in s["rows"][row]
            else "—"
            for s in quality.values()
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    scale = document.get("scale", {}).get("rows", {})
    key = f"{DEFAULT_ALGORITHM} 100,000"
    if key in scale:
        ours20, dlib20 = (
            scale[f"{DEFAULT_ALGORITHM} 20,000"],
            scale["dlib chinese_whispers_clustering 20,000"],
        )
        lines += [
            "",
            f"100,000 embeddings: {scale[key]['seconds']:.0f} s, peak memory "
            f"{scale[key]['peak_rss_mib']:,.0f} MiB; at 20,000, {ours20['seconds']:.1f} s against "
            f"dlib's chinese_whispers_clustering {dlib20['seconds']:.1f} s "
            f"({dlib20['seconds'] / ours20['seconds']:.0f}× faster; 2 cores).",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=list(PARTS), help=f"{PARTS} or publish")
    args = parser.parse_args()
    os.environ.setdefault("SIAMESE_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    document = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if args.parts != ["publish"]:
        document["machine"] = describe_machine()
        document["date"] = time.strftime("%Y-%m-%d")
        document["default_algorithm"], document["default_far"] = DEFAULT_ALGORITHM, DEFAULT_FAR
        for part in args.parts:
            document[part] = {"choice": choice_part, "quality": quality_part, "scale": scale_part}[
                part
            ]()
            RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    publish_results("cluster", document, section(document))
    if "quality" in document:
        from markdown_tables import replace_section

        replace_section(ROOT / "README.md", "cluster-results", readme_table(document))


if __name__ == "__main__":
    main()
