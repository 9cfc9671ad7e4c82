"""Streaming an image folder larger than memory (issue 17): siamese's `load_batches` over a
streamed `folder:` against a plain PyTorch `Dataset` + `DataLoader` reading the same files
with Pillow, on a generated folder of 100,000 64×64 RGB JPEGs (1,000 classes × 100).

- images/s decoding to (3, 64, 64) uint8 batches of 256, with 0, 1 and 2 DataLoader workers,
  both sides reading the same files in the same fixed random order (10,240 images a
  measurement); each measurement in a fresh process, the two sides interleaved, repeated;
- peak memory of each measurement: the proportional set size (PSS: shared pages counted
  once) of the process and its worker processes together, sampled every 50 ms, and the
  growth over the process's own size before it started reading;
- what decoding all 100,000 up front would take: N × C × H × W bytes, and the measured peak
  of `load_folder(stream=False)` (the eager load, with its decoded cache);
- the folder index: listing + reading every header with an empty index cache, then from the
  cache; and the eager load's listing (a stat per file) for comparison;
- end to end: `siamese train` on the whole folder streamed against decoded up front (its
  training images/s and peak memory), and `siamese embed --workers 2` of all 100,000 files.

The folder is generated once into --work-dir (reused while it is complete). The OS file cache
is warm for every measurement (the files were just written or read). Writes
`benchmarks/results/streaming.json` (and BENCHMARKS.md's `streaming` section when it has one).

    python benchmarks/bench_streaming.py [--work-dir DIR] [--repeats 5]
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
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import replace_section

HERE = Path(__file__).resolve().parent
SIDE = 64
BATCH = 256
KINDS = ("siamese", "plain")


# --- the generated folder ----------------------------------------------------------------


def _write_class(task: tuple[str, int, int]) -> int:
    """One class folder of `per_class` 64×64 RGB JPEGs: blocky colour plus noise."""
    from PIL import Image

    root, class_index, per_class = task
    rng = np.random.default_rng(class_index)
    folder = Path(root) / f"class{class_index:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    block = np.ones((8, 8, 1), dtype=np.uint8)
    for i in range(per_class):
        base = np.kron(rng.integers(0, 128, (8, 8, 3), dtype=np.uint8), block)
        pixels = base + rng.integers(0, 128, (SIDE, SIDE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=90)
    return per_class


def generate(root: Path, classes: int, per_class: int) -> float:
    """Write the folder unless a complete one is there; seconds spent (0 when reused)."""
    marker = root / ".complete"
    wanted = f"{classes}x{per_class}"
    if marker.is_file() and marker.read_text() == wanted:
        return 0.0
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_write_class, [(str(root), c, per_class) for c in range(classes)]))
    marker.write_text(wanted)
    return time.perf_counter() - start


# --- memory of a process and its children --------------------------------------------------


def _kib(path: str, field: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (by the parent ids in /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending += parents.get(current, [])
    return found


class PeakMemory:
    """Samples every 50 ms the PSS and RSS of this process plus its descendants; `peak_*` are
    the largest sums seen, in MiB."""

    def __init__(self) -> None:
        self.peak_pss = self.peak_rss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        pids = _descendants(os.getpid())
        pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids) / 1024
        rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids) / 1024
        self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.05)

    def __enter__(self) -> PeakMemory:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def own_pss_mib() -> float:
    return _kib("/proc/self/smaps_rollup", "Pss:") / 1024


# --- one measurement, in its own process ---------------------------------------------------


class PillowFiles:
    """The peer: a plain map-style Dataset, one file per item, through Pillow."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Any:
        import torch
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            image = image.convert("RGB").resize((SIDE, SIDE))
            return torch.from_numpy(np.asarray(image)).permute(2, 0, 1)


def measure(kind: str, workers: int, root: Path, count: int) -> dict[str, Any]:
    """Read the first `count` files of the fixed order with `kind` and `workers`."""
    import torch

    from siamese.data.batches import load_batches
    from siamese.data.folders.loading import load_folder

    data = load_folder(root, stream=True, image_size=SIDE, channels=3, workers=2)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:count]
    before = own_pss_mib()
    seen = 0
    with PeakMemory() as memory:
        start = time.perf_counter()
        if kind == "siamese":
            for x in load_batches(data.x, torch.split(order, BATCH), workers=workers):
                seen += x.shape[0]
        else:
            files = PillowFiles([str(root / p) for p in data.paths])
            loader = torch.utils.data.DataLoader(
                files, batch_size=BATCH, sampler=order.tolist(), num_workers=workers
            )
            for x in loader:
                seen += x.shape[0]
        seconds = time.perf_counter() - start
    assert seen == count and x.dtype == torch.uint8 and tuple(x.shape[1:]) == (3, SIDE, SIDE)
    return {
        "kind": kind,
        "workers": workers,
        "images": count,
        "seconds": seconds,
        "images_per_s": count / seconds,
        "peak_pss_mib": memory.peak_pss,
        "peak_rss_mib": memory.peak_rss,
        "pss_before_mib": before,
        "main_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_eager(root: Path, cache: Path) -> dict[str, Any]:
    """The eager load of everything (2 workers, its decoded cache written), its peak."""
    os.environ["SIAMESE_CACHE_DIR"] = str(cache)
    from siamese.data.folders.loading import load_folder

    before = own_pss_mib()
    with PeakMemory() as memory:
        start = time.perf_counter()
        data = load_folder(root, stream=False, image_size=SIDE, channels=3, workers=2)
        seconds = time.perf_counter() - start
    return {
        "images": len(data),
        "decoded_bytes": int(data.x.numel()),
        "seconds": seconds,
        "peak_pss_mib": memory.peak_pss,
        "peak_rss_mib": memory.peak_rss,
        "pss_before_mib": before,
    }


def measure_index(root: Path, cache: Path) -> dict[str, Any]:
    """Index with an empty cache, then from the cache; and the eager listing."""
    os.environ["SIAMESE_CACHE_DIR"] = str(cache)
    from siamese.data.folders.listing import folder_index, split_folders

    start = time.perf_counter()
    cold = folder_index(root, workers=2)
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    cached = folder_index(root, workers=2)
    cached_s = time.perf_counter() - start
    start = time.perf_counter()
    listed = split_folders(root)
    stat_s = time.perf_counter() - start
    files = sum(len(c) for s in cached.splits for c in s.classes.values())
    assert files == sum(len(f) for s in listed for f in s.classes.values())
    return {
        "files": files,
        "cold_seconds": cold_s,
        "cold_relisted": cold.relisted,
        "cached_seconds": cached_s,
        "cached_relisted": cached.relisted,
        "eager_listing_seconds": stat_s,
    }


TRAIN_STEPS = 60


def measure_training(root: Path, cache: Path, out: Path, stream: bool) -> dict[str, Any]:
    """`siamese train` on the whole folder, streamed or decoded up front: a convnet, P×K
    32×4 semi-hard triplets, `TRAIN_STEPS` steps, 2% of the classes held out
    for validation and the thresholds (embedded at the end, streamed too); the peak memory
    of the process and its workers from the load to the saved model."""
    os.environ["SIAMESE_CACHE_DIR"] = str(cache)
    from siamese.config import load_config
    from siamese.training.training_run import train_run

    config = load_config(
        None,
        [
            f"data.name=folder:{root}",
            f"data.options={{image_size: {SIDE}, channels: 3, workers: 2, "
            f"stream: {str(stream).lower()}}}",
            "data.validation_fraction=0.02",
            "model.options={widths: [16, 32, 64]}",
            "model.embedding_dim=64",
            "batches.p=32",
            "batches.k=4",
            "train.epochs=null",
            f"train.steps={TRAIN_STEPS}",
            "train.log_every=20",
            "train.validate_every=0",
        ],
    )
    before = own_pss_mib()
    with PeakMemory() as memory:
        start = time.perf_counter()
        result = train_run(config, out, quiet=True, force=True)
        seconds = time.perf_counter() - start
    return {
        "stream": stream,
        "steps": result.steps,
        "seconds": seconds,
        "train_images_per_s": result.images_per_s,
        "peak_pss_mib": memory.peak_pss,
        "pss_before_mib": before,
    }


def measure_embedding(root: Path, cache: Path, run: Path, out: Path) -> dict[str, Any]:
    """`siamese embed RUN FOLDER --workers 2` on every file: the peak memory of the process
    and its workers, and the files embedded per second."""
    os.environ["SIAMESE_CACHE_DIR"] = str(cache)
    from siamese.cli import main as siamese

    before = own_pss_mib()
    with PeakMemory() as memory:
        start = time.perf_counter()
        try:
            siamese(["embed", str(run), str(root), "--out", str(out), "--workers", "2", "--quiet"])
        except SystemExit as exit_:
            if exit_.code:
                raise
        seconds = time.perf_counter() - start
    count = len(np.load(out)["paths"])
    return {
        "images": count,
        "seconds": seconds,
        "images_per_s": count / seconds,
        "peak_pss_mib": memory.peak_pss,
        "pss_before_mib": before,
        "output_mib": out.stat().st_size / 2**20,
    }


def in_subprocess(job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--job", json.dumps(job)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"{job} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    root = Path(job["root"])
    if job["what"] == "read":
        return measure(job["kind"], job["workers"], root, job["count"])
    if job["what"] == "eager":
        return measure_eager(root, Path(job["cache"]))
    if job["what"] == "train":
        return measure_training(root, Path(job["cache"]), Path(job["out"]), job["stream"])
    if job["what"] == "embed":
        return measure_embedding(root, Path(job["cache"]), Path(job["run"]), Path(job["out"]))
    return measure_index(root, Path(job["cache"]))


# --- the report --------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]], workers: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for w in workers:
        rows = {k: [r for r in runs if r["kind"] == k and r["workers"] == w] for k in KINDS}
        ratios = [
            a["images_per_s"] / b["images_per_s"]
            for a, b in zip(rows["siamese"], rows["plain"], strict=True)
        ]
        out[str(w)] = {
            **{
                f"{k}_images_per_s": statistics.median(r["images_per_s"] for r in rows[k])
                for k in KINDS
            },
            **{f"{k}_peak_pss_mib": max(r["peak_pss_mib"] for r in rows[k]) for k in KINDS},
            **{
                f"{k}_growth_mib": max(r["peak_pss_mib"] - r["pss_before_mib"] for r in rows[k])
                for k in KINDS
            },
            "speed_ratio": statistics.median(ratios),
        }
    return out


def section(document: dict[str, Any]) -> str:
    """The markdown of BENCHMARKS.md's `streaming` section."""
    m, s = document["machine"], document["settings"]
    index, eager = document["index"], document["eager"]
    lines = [
        f"{s['images']:,} generated {SIDE}×{SIDE} RGB JPEGs ({s['classes']:,} classes), read "
        f"in batches of {BATCH} in one fixed random order, {s['per_measurement']:,} images a "
        f"measurement, each in a fresh process; median of {s['repeats']} interleaved repeats on "
        f"{m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']}), "
        f"{document['date']}. Peer: a PyTorch `Dataset` opening each file with Pillow "
        "(convert RGB, resize, `np.asarray`) under `DataLoader(batch_size=256)` with the same "
        "order. Memory: peak PSS of the process and its workers together (growth over the "
        "process before reading in brackets).",
        "",
        "| workers | siamese `load_batches` images/s | plain DataLoader images/s | ratio | "
        "siamese peak MiB | plain peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    for w, row in document["summary"].items():
        lines.append(
            f"| {w} | {row['siamese_images_per_s']:,.0f} | {row['plain_images_per_s']:,.0f} | "
            f"{row['speed_ratio']:.2f}× | {row['siamese_peak_pss_mib']:,.0f} "
            f"(+{row['siamese_growth_mib']:,.0f}) | {row['plain_peak_pss_mib']:,.0f} "
            f"(+{row['plain_growth_mib']:,.0f}) |"
        )
    decoded_gib = eager["decoded_bytes"] / 2**30
    growth_gib = (eager["peak_pss_mib"] - eager["pss_before_mib"]) / 1024
    lines += [
        "",
        f"Decoding all {eager['images']:,} up front: {decoded_gib:.2f} GiB of pixels; "
        f"`load_folder(stream=False)` (2 workers, decoded cache written) took "
        f"{eager['seconds']:.0f} s and peaked at {eager['peak_pss_mib'] / 1024:.2f} GiB, "
        f"{growth_gib:.2f} GiB over the process before it ({growth_gib / decoded_gib:.1f}× "
        "the pixels).",
        "",
        "",
        _end_to_end(document),
        "",
        f"Folder index of {index['files']:,} files: {index['cold_seconds']:.1f} s with an empty "
        f"cache (listing + every header, 2 processes), {index['cached_seconds']:.2f} s from "
        f"the cache; the eager load's listing (a stat per file) takes "
        f"{index['eager_listing_seconds']:.1f} s.",
    ]
    return "\n".join(lines)


def _end_to_end(document: dict[str, Any]) -> str:
    """The training and embedding rows: the whole folder, streamed against decoded."""
    streamed, eager = document["training"]["streamed"], document["training"]["eager"]
    embedding = document["embedding"]
    lines = [
        f"`siamese train` on all of it ({streamed['steps']} steps of P×K 32×4, convnet, 2% of "
        "the classes validated and calibrated at the end) and `siamese embed --workers 2` of "
        "every file with that run:",
        "",
        "| job | seconds | training images/s | peak MiB (growth) |",
        "|---|---|---|---|",
    ]
    for name, row in (("train, streamed", streamed), ("train, decoded up front", eager)):
        growth = row["peak_pss_mib"] - row["pss_before_mib"]
        lines.append(
            f"| {name} | {row['seconds']:.0f} | {row['train_images_per_s']:,.0f} | "
            f"{row['peak_pss_mib']:,.0f} (+{growth:,.0f}) |"
        )
    growth = embedding["peak_pss_mib"] - embedding["pss_before_mib"]
    lines.append(
        f"| embed {embedding['images']:,} files | {embedding['seconds']:.0f} | "
        f"{embedding['images_per_s']:,.0f} embedded/s | {embedding['peak_pss_mib']:,.0f} "
        f"(+{growth:,.0f}) |"
    )
    ratio = streamed["train_images_per_s"] / eager["train_images_per_s"]
    lines += [
        "",
        f"Streamed training ran at {ratio:.2f}× the speed of training on decoded pixels, in "
        f"{streamed['peak_pss_mib'] / eager['peak_pss_mib']:.2f}× its peak memory.",
    ]
    return "\n".join(lines)


def publish(document: dict[str, Any]) -> Path:
    path = HERE / "results" / "streaming.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    benchmarks_md = HERE / "BENCHMARKS.md"
    if "<!-- streaming:start -->" in benchmarks_md.read_text(encoding="utf-8"):
        replace_section(benchmarks_md, "streaming", section(document))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "siamese-bench-streaming",
        help="where the generated folder is kept (reused when complete)",
    )
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--per-measurement", type=int, default=40 * BATCH)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(json.loads(args.job))))
        return

    root = args.work_dir / "images"
    generated_s = generate(root, args.classes, args.per_class)
    made = f"generated in {generated_s:.0f} s" if generated_s else "reused"
    print(f"folder: {root} ({made})")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as scratch:
        index = in_subprocess(
            {"what": "index", "root": str(root), "cache": f"{scratch}/index-cache"}, {}
        )
        print("index:", index)
        # The reads share one index cache (filled here), as a run's loads would.
        env = {"SIAMESE_CACHE_DIR": f"{scratch}/cache"}
        in_subprocess({"what": "index", "root": str(root), "cache": env["SIAMESE_CACHE_DIR"]}, {})
        runs = []
        for repeat in range(args.repeats):
            for workers in args.workers:
                for kind in KINDS if repeat % 2 == 0 else KINDS[::-1]:
                    job = {
                        "what": "read",
                        "kind": kind,
                        "workers": workers,
                        "root": str(root),
                        "count": args.per_measurement,
                    }
                    result = in_subprocess(job, env)
                    runs.append({**result, "repeat": repeat})
                    print(
                        f"repeat {repeat} {kind:8s} workers={workers}: "
                        f"{result['images_per_s']:,.0f} images/s, "
                        f"peak {result['peak_pss_mib']:,.0f} MiB"
                    )
        eager = in_subprocess(
            {"what": "eager", "root": str(root), "cache": f"{scratch}/eager-cache"}, {}
        )
        print("eager:", eager)
        training = {}
        for stream in (True, False):
            job = {
                "what": "train",
                "root": str(root),
                "cache": f"{scratch}/eager-cache",  # the eager load's pixels are cached there
                "out": f"{scratch}/run-{'streamed' if stream else 'eager'}",
                "stream": stream,
            }
            training["streamed" if stream else "eager"] = in_subprocess(job, {})
            print("train:", training["streamed" if stream else "eager"])
        job = {
            "what": "embed",
            "root": str(root),
            "cache": f"{scratch}/eager-cache",
            "run": f"{scratch}/run-streamed",
            "out": f"{scratch}/embeddings.npz",
        }
        embedding = in_subprocess(job, {})
        print("embed:", embedding)
    document = {
        "benchmark": "streaming",
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "settings": {
            "images": args.classes * args.per_class,
            "classes": args.classes,
            "image": f"{SIDE}x{SIDE} RGB JPEG, quality 90",
            "batch": BATCH,
            "per_measurement": args.per_measurement,
            "repeats": args.repeats,
            "workers": args.workers,
            "generated_seconds": generated_s,
        },
        "index": index,
        "eager": eager,
        "training": training,
        "embedding": embedding,
        "runs": runs,
        "summary": summarise(runs, args.workers),
    }
    path = publish(document)
    print(section(document))
    print(f"→ {path}")


if __name__ == "__main__":
    main()
