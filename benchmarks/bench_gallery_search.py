"""Gallery search on galleries that look like real ones, against peers in the same run.

Galleries: identities × 10 examples drawn by `realistic_galleries` to match the genuine and
impostor distances of the face model (128-d) and the glyph model (64-d) on their calibration
classes (KS distances in `results/realistic_galleries.json`); 100k, 1M and 10M examples.
Probes, never in the gallery: 1,000 mated (an 11th example of 1,000 enrolled identities) and
1,000 strangers (identities drawn apart); a further 1,000 strangers set the threshold (the
exact search's FPIR 1 % at that size) and nothing else.

Methods: `siamese`'s exact search and its indexes ("ivf", "hnsw", "ivfpq"), each tuned at
build to agree with exact search on 99.9 % of stored examples searched as probes (the
gallery's own data: the evaluation probes play no part); scikit-learn's `NearestNeighbors`
with its defaults (brute force here); FAISS used directly with its defaults (`IVF4√N,Flat`
nprobe 1; `HNSW32` efSearch 16; `IVF4√N,PQ16` nprobe 1 at 10M). Every method returns 100
nearest examples reduced to each identity's best (10 identities).

Measured: the identification answer (identity, or "unknown" beyond the threshold) agreeing
with the exact search's, on all 2,000 probes and on the mated ones; recall@1 / @10 of mated
probes; batch-1 latency (median and p95 of single-probe calls); batch-1,000 throughput;
build seconds (with tuning); memory (the structures' bytes, and the phase's peak RSS: each
phase runs in its own process).

Restart: a real SQLite gallery of the face model with 1M examples: seconds from opening to
a first answer with the persisted snapshot, against the same without it (every embedding
read from the database and the index built), and `siamese serve` to ready.

Writes `benchmarks/results/gallery_search.json` and its BENCHMARKS.md section.

    python benchmarks/bench_gallery_search.py                      # all phases: ~1 h here
    python benchmarks/bench_gallery_search.py --phases face:100000 # one
    python benchmarks/bench_gallery_search.py --publish            # the section again
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results, replace_section

HERE = Path(__file__).resolve().parent

RESULTS = HERE / "results" / "gallery_search.json"
RUNS = {"face": "face_pretrained", "glyph": "glyphs_triplet"}
CONFIGS = {"face": "configs/face_pretrained.yaml", "glyph": "configs/glyphs_triplet.yaml"}
PER_IDENTITY, PROBES, K, WIDTH = 10, 1000, 10, 100
ALL = ("exact", "ivf", "hnsw", "ivfpq", "sklearn", "faiss-ivf", "faiss-hnsw")
DEFAULT_PHASES = (
    "face:1000000:" + ",".join(ALL),
    "restart:1000000",
    "face:100000:" + ",".join(ALL),
    "face:10000000:exact,ivfpq,sklearn,faiss-ivfpq",
    "glyph:100000:" + ",".join(ALL),
    "glyph:1000000:exact,ivf,ivfpq,sklearn,faiss-ivf",
    "omniglot:0:" + ",".join(ALL),
)


# ------------------------------------------------------------------------------------------
# Data


def make_data(model_name: str, size: int) -> dict[str, Any]:
    """The gallery (size rows), its identities, mated probes with their identities,
    evaluation strangers and threshold strangers."""
    from bench_cluster import ensure_run
    from realistic_galleries import fitted

    model, _ = fitted(ensure_run(RUNS[model_name], CONFIGS[model_name]))
    count = size // PER_IDENTITY
    z, y = model.identities(count, PER_IDENTITY + 1, seed=1)
    held = np.arange(count) * (PER_IDENTITY + 1) + PER_IDENTITY  # each identity's 11th
    rng = np.random.default_rng(3)
    chosen = np.sort(rng.choice(count, PROBES, replace=False))
    mated, mated_y = z[held[chosen]].copy(), y[held[chosen]].copy()
    keep = np.ones(z.shape[0], dtype=bool)
    keep[held] = False
    gallery = z[keep]
    gallery_y = y[keep]
    del z, y, keep
    strangers, _ = model.identities(2 * PROBES, 1, seed=2)
    return {
        "gallery": gallery,
        "y": gallery_y,
        "mated": mated,
        "mated_y": mated_y,
        "strangers": strangers[:PROBES],
        "threshold_strangers": strangers[PROBES:],
        "metric": model.metric,
    }


def real_omniglot() -> dict[str, Any]:
    """Real embeddings: the glyph model (trained on rendered font characters, never on
    Omniglot) embeds Omniglot's 964 background characters × 20 drawings: 19 of each enrolled
    (18,316 examples), the 20th of each a mated probe; strangers are drawings of its 659
    evaluation characters (1,000 set the threshold, 1,000 others are probes)."""
    from bench_cluster import ensure_run
    from siamese.data.sources import load_dataset
    from siamese.recognition import Recognizer

    recognizer = Recognizer.load(ensure_run(RUNS["glyph"], CONFIGS["glyph"]))
    options = {"image_size": (28, 28)}
    background = load_dataset("omniglot", split="background", **options)
    evaluation = load_dataset("omniglot", split="evaluation", **options)
    z = np.asarray(recognizer.embed_prepared(background.x, 512), dtype=np.float32)
    y = background.y.numpy().astype(np.int64)
    first_of = np.unique(y, return_index=True)[1]  # each character's first drawing: a probe
    keep = np.ones(y.size, dtype=bool)
    keep[first_of] = False
    pick = np.random.default_rng(5).choice(evaluation.y.numel(), 2 * PROBES, replace=False)
    strangers = np.asarray(recognizer.embed_prepared(evaluation.x[pick], 512), np.float32)
    return {
        "gallery": np.ascontiguousarray(z[keep]),
        "y": y[keep],
        "mated": z[first_of],
        "mated_y": y[first_of],
        "strangers": strangers[:PROBES],
        "threshold_strangers": strangers[PROBES:],
        "metric": recognizer.metric,
    }


# ------------------------------------------------------------------------------------------
# Methods: each a (build seconds, batch search → (Q, K) identities and distances, bytes)


def per_identity(d: np.ndarray, i: np.ndarray, owners: np.ndarray) -> tuple:
    """(Q, n) nearest examples → (Q, K) identities by their best example (−1 when fewer)."""
    from siamese.recognition.gallery_search import _first_in_row

    found = np.where(i >= 0, owners[np.clip(i, 0, None)], -1)
    d = np.where(i >= 0, d, np.inf)
    first = _first_in_row(torch.from_numpy(found)).numpy()
    d = np.where(first & (found >= 0), d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")[:, :K]
    best = np.take_along_axis(d, order, axis=1)
    ids = np.where(np.isfinite(best), np.take_along_axis(found, order, axis=1), -1)
    return ids, best


class Method:
    def __init__(self, name: str, data: dict[str, Any]) -> None:
        self.name, self.data = name, data
        self.details: dict[str, Any] = {}
        x, y = data["gallery"], data["y"]
        started = time.perf_counter()
        self.bytes = self._build(x, y)
        self.build_s = time.perf_counter() - started

    def _build(self, x: np.ndarray, y: np.ndarray) -> int:
        import faiss

        from siamese.recognition.gallery_search import ExactSearch, IndexSearch

        metric, ids = self.data["metric"], np.arange(x.shape[0], dtype=np.int64)
        self.owners = y
        name = self.name
        if name == "exact":
            self.search = ExactSearch(metric, "nearest", x.shape[1])
            self.search.reset(x, ids, y)
            return int(x.nbytes)
        if name in ("ivf", "hnsw", "ivfpq"):
            # tuned at the gallery's threshold, as a gallery does (set on threshold strangers)
            radius = self.data["threshold"]
            self.search = IndexSearch(name, metric, "nearest", x.shape[1], radius=radius)
            self.search.reset(x, ids, y)
            assert self.search.index is not None and self.search.tuning is not None
            self.details = {
                "build": self.search.index.build,
                "tuning": self.search.tuning.as_dict(),
            }
            index_bytes = int(faiss.serialize_index(self.search.index.index).nbytes)
            rows = int(self.search.rows.nbytes)
            # the rows are read by ivfpq's re-ranking; ivf and hnsw hold their own copy
            self.details["index_bytes"] = index_bytes
            return index_bytes + (rows if name == "ivfpq" else 0)
        if name == "sklearn":
            from sklearn.neighbors import NearestNeighbors

            self.peer = NearestNeighbors().fit(x)
            return int(np.asarray(self.peer._fit_X).nbytes)
        # FAISS's guidance: 4√N cells (up to 4,096 at 10M: a common choice, and its
        # k-means on 256 × 12,649 training points would take most of an hour here)
        dim, nlist = x.shape[1], min(int(4 * np.sqrt(x.shape[0])), 4096)
        factory = {
            "faiss-ivf": f"IVF{nlist},Flat",
            "faiss-hnsw": "HNSW32",
            "faiss-ivfpq": f"IVF{nlist},PQ{dim // 8}",
        }[name]
        self.peer = faiss.index_factory(dim, factory)
        self.peer.train(x)
        self.peer.add(x)
        self.details = {"factory": factory}
        return int(faiss.serialize_index(self.peer).nbytes)

    def top(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.name in ("exact", "ivf", "hnsw", "ivfpq"):
            out = self.search.top(torch.from_numpy(q), K)
            return out.identity_ids.numpy(), out.distances.numpy()
        if self.name == "sklearn":
            d, i = self.peer.kneighbors(q, WIDTH)
            return per_identity(d, i, self.owners)
        d, i = self.peer.search(np.ascontiguousarray(q), WIDTH)
        return per_identity(np.sqrt(np.clip(d, 0, None)), i, self.owners)


# ------------------------------------------------------------------------------------------
# One phase (in its own process)


def answers(ids: np.ndarray, d: np.ndarray, threshold: float) -> np.ndarray:
    return np.where(d[:, 0] <= threshold, ids[:, 0], -1)


def measure_phase(model_name: str, size: int, methods: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    data = real_omniglot() if model_name == "omniglot" else make_data(model_name, size)
    size = int(data["gallery"].shape[0])
    print(f"{model_name} {size:,}: data in {time.perf_counter() - started:.0f} s", flush=True)
    probes = np.concatenate([data["mated"], data["strangers"]])
    truth_y = data["mated_y"]
    out: dict[str, Any] = {
        "model": RUNS.get(model_name, RUNS["glyph"]),
        "data": "real Omniglot embeddings" if model_name == "omniglot" else "synthetic",
        "examples": size,
        "mated_probes": int(data["mated"].shape[0]),
        "methods": {},
    }
    exact_answers: np.ndarray | None = None
    threshold = None
    for name in ["exact", *[m for m in methods if m != "exact"]]:
        try:
            method = Method(name, data)
        except MemoryError as err:
            out["methods"][name] = {"error": f"out of memory: {err}"}
            continue
        ids, d = method.top(probes)
        if threshold is None:  # the exact search's FPIR 1 % on the threshold strangers
            _, ds = method.top(data["threshold_strangers"])
            threshold = float(np.quantile(ds[:, 0], 0.01))
            exact_answers = answers(ids, d, threshold)
            out["threshold"] = data["threshold"] = threshold
        got = answers(ids, d, threshold)
        assert exact_answers is not None
        n_mated = data["mated"].shape[0]
        mated = ids[:n_mated]
        reps = 200 if size <= 1_000_000 or name not in ("exact", "sklearn") else 20
        single = []
        for row in range(reps):
            t = time.perf_counter()
            method.top(probes[row % probes.shape[0]][None, :])
            single.append(time.perf_counter() - t)
        batch = probes[:PROBES]
        t = time.perf_counter()
        method.top(batch)
        batch_s = time.perf_counter() - t
        result = {
            "agreement": float(np.mean(got == exact_answers)),
            "agreement_mated": float(np.mean(got[:n_mated] == exact_answers[:n_mated])),
            "disagreements": int(np.sum(got != exact_answers)),
            "recall_at_1": float(np.mean(mated[:, 0] == truth_y)),
            "recall_at_10": float(np.mean((mated == truth_y[:, None]).any(axis=1))),
            "identified_at_threshold": float(np.mean(got[:n_mated] == truth_y)),
            "strangers_accepted": float(np.mean(got[n_mated:] >= 0)),
            "latency_ms_median": 1000 * statistics.median(single),
            "latency_ms_p95": 1000 * float(np.quantile(single, 0.95)),
            "batch_1000_per_s": batch.shape[0] / batch_s,
            "build_s": method.build_s,
            "bytes": method.bytes,
            **method.details,
        }
        out["methods"][name] = result
        print(
            f"  {name}: agreement {result['agreement']:.4f}, recall@1 "
            f"{result['recall_at_1']:.3f}, batch-1 {result['latency_ms_median']:.2f} ms, "
            f"{result['batch_1000_per_s']:.0f}/s, build {method.build_s:.1f} s",
            flush=True,
        )
        del method
    exact_ms = out["methods"]["exact"]["latency_ms_median"]
    for result in out["methods"].values():
        if "latency_ms_median" in result:
            result["speed_vs_exact_batch_1"] = exact_ms / result["latency_ms_median"]
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


# ------------------------------------------------------------------------------------------
# Restart: a real gallery on disk


def fill_gallery(path: Path, size: int) -> None:
    """A face-model gallery of `size` realistic examples, written in bulk."""
    from bench_cluster import ensure_run
    from realistic_galleries import fitted
    from siamese.recognition import Gallery, load_recognizer
    from siamese.recognition.gallery_store import examples_table, identities_table

    run = ensure_run(RUNS["face"], CONFIGS["face"])
    model, _ = fitted(run)
    z, y = model.identities(size // PER_IDENTITY, PER_IDENTITY, seed=1)
    # a pair FAR rule: FPIR 1 % at 1M needs rates the 200-example calibration cannot reach
    with Gallery.create(path, load_recognizer(run), far=0.001, search="exact") as gallery:
        store = gallery.store
        with store.transaction() as conn:
            conn.execute(
                identities_table.insert(),
                [
                    {"id": i + 1, "name": f"person {i:07d}", "created_at": "2026-12-07"}
                    for i in range(size // PER_IDENTITY)
                ],
            )
            chunk = 50_000
            for start in range(0, size, chunk):
                conn.execute(
                    examples_table.insert(),
                    [
                        {
                            "id": r + 1,
                            "identity_id": int(y[r]) + 1,
                            "embedding": z[r].tobytes(),
                            "sha256": f"{r:064x}",
                            "source": f"{r}.jpg",
                            "added_at": "2026-12-07",
                        }
                        for r in range(start, min(size, start + chunk))
                    ],
                )
            store.set_settings(conn, {"example_id_high_water": size})
            store.bump(conn)


OPEN_AND_ANSWER = """
import json, sys, time
t0 = time.perf_counter()
from siamese.recognition import Gallery, load_recognizer
import numpy as np
path, search, persist = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
recognizer = load_recognizer(Gallery.its_model(path))
t1 = time.perf_counter()
with Gallery.open(path, recognizer, search=search, persist=persist) as gallery:
    status = gallery.load_search()
    t2 = time.perf_counter()
    probe = gallery.store.embeddings_by_id(np.array([12345]), recognizer.embedding_dim)
    top = gallery.search.top(__import__("torch").from_numpy(probe), 5)
    t3 = time.perf_counter()
print(json.dumps({"import_and_model_s": t1 - t0, "search_ready_s": t2 - t1,
                  "first_answer_s": t3 - t2, "total_s": t3 - t0, "status": status,
                  "found": int(top.identity_ids[0, 0])}, default=str))
"""


def measure_restart(size: int, work: Path) -> dict[str, Any]:
    path = work / "faces.sqlite"
    started = time.perf_counter()
    fill_gallery(path, size)
    out: dict[str, Any] = {"examples": size, "fill_s": time.perf_counter() - started}
    print(f"restart: gallery of {size:,} filled in {out['fill_s']:.0f} s", flush=True)

    def run(search: str, persist: bool) -> dict[str, Any]:
        argv = [sys.executable, "-c", OPEN_AND_ANSWER, str(path), search, "1" if persist else "0"]
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    from siamese.recognition.gallery_search import search_for_size

    auto = search_for_size("auto", size)
    out["auto_kind"] = auto
    out["without_snapshot"] = {"exact": run("exact", False)}
    out["first_start"] = {"exact": run("exact", True), auto: run(auto, True)}
    out["restart"] = {"exact": run("exact", True), auto: run(auto, True)}
    for key in ("without_snapshot", "first_start", "restart"):
        for kind, r in out[key].items():
            print(
                f"  {key} {kind}: {r['total_s']:.1f} s (search ready {r['search_ready_s']:.1f} s)"
            )
    out["serve_first"] = measure_serve(path)  # also makes the model's ONNX export
    out["serve"] = measure_serve(path)
    print(
        f"  serve: ready in {out['serve']['ready_s']:.1f} s "
        f"(first start {out['serve_first']['ready_s']:.1f} s)",
        flush=True,
    )
    return out


def measure_serve(path: Path) -> dict[str, Any]:
    """`siamese serve` on the gallery: seconds from the process's start to /readyz 200."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "siamese", "serve", str(path), "--port", str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.perf_counter() - started < 600:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return {"ready_s": time.perf_counter() - started}
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(process.stderr.read().decode()[-2000:]) from None
                time.sleep(0.05)
        raise RuntimeError("siamese serve was not ready within 600 s")
    finally:
        process.terminate()
        process.wait(30)


# ------------------------------------------------------------------------------------------
# The report


def ordered(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The search phases by data, model and size (the restart apart)."""
    phases = [p for p in document["phases"].values() if "methods" in p]
    return sorted(phases, key=lambda p: (p.get("data") != "synthetic", p["model"], p["examples"]))


def label(phase: dict[str, Any]) -> str:
    real = phase.get("data") == "real Omniglot embeddings"
    return f"{phase['model']} on Omniglot (real)" if real else phase["model"]


def section(document: dict[str, Any]) -> str:
    m = document["machine"]
    lines = [
        "Galleries of identities × 10 examples drawn to match the face model's (128-d) and "
        "the glyph model's (64-d) genuine and impostor distances (`realistic_galleries`); "
        "1,000 mated probes (an unseen 11th example) and 1,000 strangers, none in the "
        "gallery; the threshold is the exact search's FPIR 1 % on 1,000 other strangers. "
        "Agreement: the identification answer (identity or unknown) equal to the exact "
        "search's. `ivf`/`hnsw`/`ivfpq` were tuned at build on the gallery's own examples "
        "to 99.9 % agreement; peers use their defaults. Open-set: no probe identity was "
        "in any model's training.",
        "",
        "| model | examples | search | agreement | recall@1 | recall@10 | batch-1 | "
        "× exact | batch 1,000 | build | memory |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for phase in ordered(document):
        for name, r in phase["methods"].items():
            if "agreement" not in r:
                lines.append(
                    f"| {phase['model']} | {phase['examples']:,} | {name} | "
                    f"{r.get('error', '')} ||||||||"
                )
                continue
            params = r.get("tuning", {}).get("params")
            shown = (
                f"{name} ({', '.join(f'{k} {v}' for k, v in params.items())})" if params else name
            )
            lines.append(
                f"| {label(phase)} | {phase['examples']:,} | {shown} | "
                f"{100 * r['agreement']:.2f} % | {r['recall_at_1']:.3f} | "
                f"{r['recall_at_10']:.3f} | {r['latency_ms_median']:.2f} ms | "
                f"{r['speed_vs_exact_batch_1']:.1f}× | {r['batch_1000_per_s']:,.0f}/s | "
                f"{r['build_s']:.1f} s | {r['bytes'] / 2**20:,.0f} MiB |"
            )
    ratios = [
        f"{p['examples']:,} ({label(p)}): "
        f"{p['methods']['exact']['batch_1000_per_s'] / p['methods']['sklearn']['batch_1000_per_s']:.2f}×"
        for p in ordered(document)
        if "batch_1000_per_s" in p["methods"].get("sklearn", {})
    ]
    lines += [
        "",
        "Exact search against scikit-learn's brute force, batch 1,000 (probes/s ratio): "
        + "; ".join(ratios)
        + ". At batch 1: see the × exact column of the scikit-learn rows.",
    ]
    peaks = [
        f"{label(p)} {p['examples']:,}: {p['peak_rss_gib']:.1f} GiB" for p in ordered(document)
    ]
    lines += [
        "",
        "Peak memory of each phase's process (data, every method): " + "; ".join(peaks) + ".",
    ]
    restart = document["phases"].get("restart:1000000")
    if restart:
        auto = restart["auto_kind"]
        lines += [
            "",
            f"Restart, a real SQLite gallery of {restart['examples']:,} face-model examples "
            "(seconds from a new process to a first answer, model loading included): "
            f"without a snapshot (every embedding read, exact) "
            f"{restart['without_snapshot']['exact']['total_s']:.1f} s; first start with "
            f"`{auto}` (reads, builds, tunes and writes the index) "
            f"{restart['first_start'][auto]['total_s']:.1f} s; restart with `{auto}` "
            f"**{restart['restart'][auto]['total_s']:.1f} s**, with `exact` "
            f"{restart['restart']['exact']['total_s']:.1f} s; `siamese serve` ready in "
            f"**{restart['serve']['ready_s']:.2f} s**.",
        ]
    lines += [
        "",
        f"Measured {document['date']} on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB).",
    ]
    return "\n".join(lines)


def readme_table(document: dict[str, Any]) -> str:
    """README's table: per face-model gallery size, each of our searches, and what `auto`
    picks there."""
    from siamese.recognition.gallery_search import search_for_size

    lines = [
        "| examples (face model) | search | answers as exact | batch-1 | × exact | "
        "build | memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase in ordered(document):
        if phase["model"] != RUNS["face"] or phase.get("data") == "real Omniglot embeddings":
            continue
        auto = search_for_size("auto", phase["examples"])
        for name in ("exact", "ivf", "hnsw", "ivfpq"):
            r = phase["methods"].get(name)
            if not r or "agreement" not in r:
                continue
            shown = f"**{name}** (auto)" if name == auto else name
            lines.append(
                f"| {phase['examples']:,} | {shown} | {100 * r['agreement']:.2f} % | "
                f"{r['latency_ms_median']:.2f} ms | {r['speed_vs_exact_batch_1']:.0f}× | "
                f"{r['build_s']:.0f} s | {r['bytes'] / 2**20:,.0f} MiB |"
            )
    m = document["machine"]
    lines.append(
        f"\nMeasured {document['date']} on {m['cpu']} ({m['cores']} cores); memory is the "
        "index's (for ivfpq with the rows its re-ranking reads); BENCHMARKS has the peers "
        "(scikit-learn, FAISS with its defaults), recall, throughput and the glyph model."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", nargs="*", default=list(DEFAULT_PHASES))
    parser.add_argument("--publish", action="store_true", help="only rewrite the section")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("SIAMESE_DATA_DIR", str(HERE.parent.parent / "shared" / "data"))
    if args.one:
        kind, size, *rest = args.one.split(":")
        if kind == "restart":
            with tempfile.TemporaryDirectory(dir=HERE.parent / "runs") as work:
                result = measure_restart(int(size), Path(work))
        else:
            result = measure_phase(kind, int(size), rest[0].split(","))
        print("RESULT " + json.dumps(result))
        return
    document = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"phases": {}}
    if not args.publish:
        document.update(machine=describe_machine(), date=time.strftime("%Y-%m-%d"))
        for phase in args.phases:
            key = ":".join(phase.split(":")[:2])
            argv = [sys.executable, str(Path(__file__).resolve()), "--one", phase]
            done = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            print("\n".join(x for x in done.stdout.splitlines() if not x.startswith("RESULT ")))
            if done.returncode or not lines:
                document["phases"][key] = {"error": f"exit {done.returncode}"}
            else:
                document["phases"][key] = json.loads(lines[-1][len("RESULT ") :])
            RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    publish_results("gallery_search", document, section(document))
    replace_section(HERE.parent / "README.md", "gallery-search-results", readme_table(document))


if __name__ == "__main__":
    main()
