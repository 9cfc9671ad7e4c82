"""How fast the data sources load, against the plain way of reading the same files.

- MNIST: all 70,000 images (train + test) from the four `.gz` files through
  `load_dataset`, against the numpy snippet of the data README (gzip + frombuffer + torch),
  alternated in one process; plus the whole command as a user meets it, in fresh processes
  (Python start and `import torch` included).
- Omniglot and ORL: `load_dataset` from the shared packs.
- Image folders: a folder of generated PNGs and the real 5-celebrity-faces JPGs, decoded by
  `folder:` serially, in parallel worker processes, and from its decoded cache on a second
  load, against a serial Pillow loop (open, convert, resize, stack) — the loop the Keras
  tutorials use.

Needs SIAMESE_DATA_DIR (or --data-dir). Writes `benchmarks/results/data.json` and the `data`
section of BENCHMARKS.md.

    python benchmarks/bench_data.py [--repeats 5] [--images 3000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results

HERE = Path(__file__).resolve().parent


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Each function `repeats` times, interleaved, so that all see the same machine load."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return times


def readme_snippet_mnist(data_dir: Path) -> tuple[object, ...]:
    """The peer: the loader of the data README, as a user would paste it, into tensors."""
    import torch

    def load_idx(path: Path) -> np.ndarray:
        b = gzip.open(path).read()
        nd = b[3]
        dims = np.frombuffer(b, ">u4", count=nd, offset=4)
        return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(tuple(int(d) for d in dims))

    out = []
    for prefix in ("train", "t10k"):
        x = load_idx(data_dir / "mnist" / f"{prefix}-images-idx3-ubyte.gz")
        y = load_idx(data_dir / "mnist" / f"{prefix}-labels-idx1-ubyte.gz")
        out += [torch.from_numpy(x.copy())[:, None], torch.from_numpy(y.astype(np.int64))]
    return tuple(out)


def cold_mnist_seconds(data_dir: Path, repeats: int) -> list[float]:
    """Fresh interpreter: import siamese (and torch), load train + test."""
    code = (
        "import siamese;"
        f"siamese.load_dataset('mnist','train',data_dir={str(data_dir)!r});"
        f"siamese.load_dataset('mnist','test',data_dir={str(data_dir)!r})"
    )
    return [
        timed(lambda: subprocess.run([sys.executable, "-c", code], check=True))
        for _ in range(repeats)
    ]


def pillow_loop(root: Path, size: tuple[int, int], mode: str) -> np.ndarray:
    """The peer for folders: one file after another through Pillow."""
    from PIL import Image

    images = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(class_dir.iterdir()):
            with Image.open(path) as image:
                image = image.convert(mode).resize((size[1], size[0]), Image.Resampling.BICUBIC)
                images.append(np.asarray(image))
    return np.stack(images)


def make_png_folder(root: Path, images: int, classes: int = 50, side: int = 64) -> Path:
    """`images` PNGs of random shapes in `classes` folders (real files through Pillow)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"class_{i % classes:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            box = (
                sorted(rng.integers(0, side, 2).tolist()),
                sorted(rng.integers(0, side, 2).tolist()),
            )
            draw.ellipse(
                (box[0][0], box[1][0], box[0][1], box[1][1]),
                fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
            )
        noise = rng.integers(0, 24, (side, side, 3), dtype=np.uint8)
        Image.fromarray(np.asarray(image) // 2 + noise).save(folder / f"{i:05d}.png")
    return root


def folder_timings(
    root: Path, size: tuple[int, int], repeats: int, cache: Path
) -> dict[str, object]:
    """Serial Pillow loop vs folder: with 1 and 2 workers (no cache), and a cached load."""
    import siamese

    name = f"folder:{root}"
    options = {"image_size": size, "channels": 3}
    os.environ["SIAMESE_CACHE_DIR"] = str(cache)
    siamese.load_dataset(name, **options, use_cache=True)  # fills the cache
    times = alternate(
        {
            "pillow_loop": lambda: pillow_loop(root, size, "RGB"),
            "workers_1": lambda: siamese.load_dataset(name, **options, workers=1, use_cache=False),
            "workers_2": lambda: siamese.load_dataset(name, **options, workers=2, use_cache=False),
            "cached": lambda: siamese.load_dataset(name, **options, use_cache=True),
        },
        repeats,
    )
    medians = {k: statistics.median(v) for k, v in times.items()}
    count = len(siamese.load_dataset(name, **options, use_cache=True))
    return {
        "images": count,
        "image_size": list(size),
        "seconds": times,
        "median_seconds": medians,
        "speedup_vs_pillow_loop": {
            k: medians["pillow_loop"] / v for k, v in medians.items() if k != "pillow_loop"
        },
    }


def extract_celebrities(data_dir: Path, target: Path) -> Path:
    from siamese.data.datasets.archives import extract_archive

    archive = data_dir / "5-celebrity-faces" / "5-celebrity-faces-dataset.tar.gz"
    return extract_archive(archive, target) / "5-celebrity-faces-dataset" / "train"


def benchmarks_section(result: dict) -> str:
    m, s = result["machine"], result["summary"]
    lines = [
        f"Median of {result['repeats']} alternated runs on {m['cpu']} ({m['cores']} cores, "
        f"{m['memory_gib']} GiB, torch {m['torch']}), {result['date']}.",
        "",
        "| load | siamese | peer | siamese speed-up |",
        "|---|---|---|---|",
        f"| MNIST, all 70,000 images (`load_dataset`, in-process) | {s['mnist_seconds']:.2f} s | "
        f"{s['mnist_readme_snippet_seconds']:.2f} s (data README's numpy snippet) | "
        f"{s['mnist_speedup']:.2f}× |",
        f"| MNIST, fresh process (Python + `import torch` + load) | {s['mnist_cold_process_seconds']:.2f} s | | |",
        f"| Omniglot background, 19,280 images (pack) | {s['omniglot_background_seconds']:.2f} s | | |",
        f"| ORL, 400 faces (from the tar.gz) | {s['orl_seconds']:.2f} s | | |",
    ]
    rows = (
        (
            "pngs",
            f"{s['pngs_images']:,} PNGs {s['pngs_size']} → RGB",
            ("workers_1", "workers_2", "cached"),
        ),
        # 93 files are below the pool's threshold: workers=2 decodes in-process, so not shown
        (
            "celebrities",
            f"5-celebrity-faces train, {s['celebrities_images']} JPGs → {s['celebrities_size']} RGB",
            ("workers_1", "cached"),
        ),
    )
    texts = {
        "workers_1": "1 process",
        "workers_2": "2 worker processes",
        "cached": "second load, decoded cache",
    }
    for key, label, variants in rows:
        peer = s[f"{key}_pillow_loop_seconds"]
        for variant in variants:
            lines.append(
                f"| {label}, {texts[variant]} | {s[f'{key}_{variant}_seconds']:.2f} s | {peer:.2f} s "
                f"(serial Pillow loop) | {peer / s[f'{key}_{variant}_seconds']:.1f}× |"
            )
    lines += [
        "",
        "The Pillow loop resizes with Pillow's default bicubic filter; `folder:` uses Lanczos and "
        "applies EXIF orientation: that is what the single process pays against the loop. A pool is "
        "used from 256 files or 16 MiB.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=3000, help="PNGs in the generated folder")
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("SIAMESE_DATA_DIR"))
    args = parser.parse_args()
    if args.data_dir is None or not Path(args.data_dir).is_dir():
        raise SystemExit("set SIAMESE_DATA_DIR or pass --data-dir: the real datasets are needed")
    data_dir = Path(args.data_dir).resolve()

    import siamese

    def ours_mnist() -> None:
        siamese.load_dataset("mnist", "train", data_dir=data_dir)
        siamese.load_dataset("mnist", "test", data_dir=data_dir)

    ours_mnist()  # imports the modules once, as a loaded program would have
    mnist = alternate(
        {"siamese": ours_mnist, "readme_snippet": lambda: readme_snippet_mnist(data_dir)},
        args.repeats,
    )
    cold = cold_mnist_seconds(data_dir, max(3, args.repeats // 2))
    omniglot = [
        timed(lambda: siamese.load_dataset("omniglot", "background", data_dir=data_dir))
        for _ in range(args.repeats)
    ]
    orl = [
        timed(lambda: siamese.load_dataset("orl", data_dir=data_dir)) for _ in range(args.repeats)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        pngs = folder_timings(
            make_png_folder(tmp_path / "pngs", args.images),
            (64, 64),
            args.repeats,
            tmp_path / "cache",
        )
        celebrities = folder_timings(
            extract_celebrities(data_dir, tmp_path / "celebrities"),
            (160, 160),
            args.repeats,
            tmp_path / "cache",
        )

    med = statistics.median
    summary: dict[str, float | int | str] = {
        "mnist_seconds": med(mnist["siamese"]),
        "mnist_readme_snippet_seconds": med(mnist["readme_snippet"]),
        "mnist_speedup": med(mnist["readme_snippet"]) / med(mnist["siamese"]),
        "mnist_cold_process_seconds": med(cold),
        "omniglot_background_seconds": med(omniglot),
        "orl_seconds": med(orl),
    }
    for key, result in (("pngs", pngs), ("celebrities", celebrities)):
        summary[f"{key}_images"] = result["images"]
        summary[f"{key}_size"] = "×".join(str(v) for v in result["image_size"])
        for variant, seconds in result["median_seconds"].items():
            summary[f"{key}_{variant}_seconds"] = seconds
    result = {
        "benchmark": "data",
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "repeats": args.repeats,
        "malloc_env": {
            k: os.environ.get(k) for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")
        },
        "raw": {
            "mnist": mnist,
            "mnist_cold_process": cold,
            "omniglot_background": omniglot,
            "orl": orl,
            "pngs": pngs,
            "celebrities": celebrities,
        },
        "summary": summary,
    }
    publish_results("data", result, benchmarks_section(result))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
