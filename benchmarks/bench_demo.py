"""How long `siamese demo` takes, end to end, as a user runs it.

Runs the command in fresh processes: once with an empty cache (the first run, which renders
the glyphs), then alternately with and without the allocator tuning of `siamese.training.allocator`
(SIAMESE_MALLOC_TUNING=1/0) so that both see the same machine load. Writes
`benchmarks/results/demo.json`.

    python benchmarks/bench_demo.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results

HERE = Path(__file__).resolve().parent


def benchmarks_section(result: dict) -> str:
    """The BENCHMARKS.md section for these results."""
    s, m = result["summary"], result["machine"]
    rows = [
        ("first run, empty cache (renders the glyphs)", f"{s['first_run_wall_seconds']:.1f} s"),
        ("later runs, median", f"{s['wall_seconds_median']:.1f} s"),
        (
            "later runs without the allocator tuning, median",
            f"{s['wall_seconds_median_without_malloc_tuning']:.1f} s",
        ),
        ("training throughput, median", f"{s['train_images_per_second_median']:,.0f} images/s"),
        (
            "training throughput without the allocator tuning, median",
            f"{s['train_images_per_second_median_without_malloc_tuning']:,.0f} images/s",
        ),
        (
            "allocator tuning speed-up of training (same run, alternated)",
            f"{s['malloc_tuning_speedup_train']:.2f}×",
        ),
        (
            "held-out verification AUC (raw pixels)",
            f"{s['unseen_verification_auc']:.3f} ({s['raw_pixels_verification_auc']:.3f})",
        ),
        (
            "held-out 5-way 1-shot (raw pixels)",
            f"{s['oneshot_5way']:.1%} ({s['raw_pixels_oneshot_5way']:.1%})",
        ),
        (
            "held-out 20-way 1-shot (raw pixels)",
            f"{s['oneshot_20way']:.1%} ({s['raw_pixels_oneshot_20way']:.1%})",
        ),
    ]
    head = (
        f"`siamese demo` with default settings in fresh processes, run {len(result['runs'])} times on "
        f"{m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']}), {result['date']}.\n\n"
        "| measure | value |\n|---|---|\n"
    )
    return head + "\n".join(f"| {name} | {value} |" for name, value in rows)


def run_demo(out: Path, cache: Path, tuning: bool) -> dict:
    env = {
        **os.environ,
        "SIAMESE_CACHE_DIR": str(cache),
        "SIAMESE_MALLOC_TUNING": "1" if tuning else "0",
    }
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "siamese", "demo", "--out", str(out), "--quiet"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    # demo.json: the demo's summary numbers (metrics.json holds them too, under "summary").
    summary = json.loads((out / "demo.json").read_text())
    return {
        "wall_seconds": round(wall, 2),
        "malloc_tuning": tuning,
        **{k: round(v, 4) for k, v in summary.items() if isinstance(v, float)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        first = run_demo(Path(tmp) / "first", cache, tuning=True)
        first["cold_cache"] = True
        runs.append(first)
        print(f"cold cache: {first['wall_seconds']} s")
        for r in range(args.repeats):
            for tuning in (False, True):
                result = run_demo(Path(tmp) / f"run{r}{tuning}", cache, tuning)
                result["cold_cache"] = False
                runs.append(result)
                print(
                    f"repeat {r} tuning={tuning}: {result['wall_seconds']} s, "
                    f"{result['train_images_per_second']:.0f} img/s"
                )

    def median(key: str, tuning: bool) -> float:
        return statistics.median(
            r[key] for r in runs if not r["cold_cache"] and r["malloc_tuning"] == tuning
        )

    summary = {
        "first_run_wall_seconds": first["wall_seconds"],
        "wall_seconds_median": median("wall_seconds", True),
        "wall_seconds_median_without_malloc_tuning": median("wall_seconds", False),
        "train_images_per_second_median": median("train_images_per_second", True),
        "train_images_per_second_median_without_malloc_tuning": median(
            "train_images_per_second", False
        ),
        "malloc_tuning_speedup_train": round(
            median("train_images_per_second", True) / median("train_images_per_second", False), 3
        ),
        "unseen_verification_auc": first["unseen_verification_auc"],
        "oneshot_5way": first["oneshot_5way"],
        "oneshot_20way": first["oneshot_20way"],
        "raw_pixels_verification_auc": first["raw_pixels_verification_auc"],
        "raw_pixels_oneshot_5way": first["raw_pixels_oneshot_5way"],
        "raw_pixels_oneshot_20way": first["raw_pixels_oneshot_20way"],
    }
    result = {
        "benchmark": "bench_demo",
        "command": "siamese demo --quiet (default settings, seed 0)",
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "summary": summary,
        "runs": runs,
    }
    publish_results("demo", result, benchmarks_section(result))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
