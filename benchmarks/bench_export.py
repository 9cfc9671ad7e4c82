"""onnxruntime against PyTorch eager on this CPU, at batch 1 and 64, for the exported models
(issue 17): the face model (dlib's face ResNet port, 3×150×150) and the demo's glyph ConvNet.

Each model is exported with `siamese export --format onnx` (which verifies it); then both
runtimes embed the same images, interleaved, several repetitions each, with the same number of
threads; images/s is the median. Writes `benchmarks/results/export.json` and BENCHMARKS.md's
export section.

    python benchmarks/bench_export.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "bench" / "export"
REPEATS = 7


def interleaved(runs: list[tuple[Any, Any]], repeats: int) -> list[float]:
    """Median seconds of each `run(x)`, the runs taking turns `repeats` times (after one
    warm-up each), so that a slow moment of this shared machine hits them alike."""
    for run, x in runs:
        run(x)
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for k, (run, x) in enumerate(runs):
            start = time.perf_counter()
            run(x)
            samples[k].append(time.perf_counter() - start)
    return [statistics.median(s) for s in samples]


def measure(name: str, run_dir: Path) -> dict[str, Any]:
    import onnxruntime
    import torch

    from siamese.export.model_export import export_model
    from siamese.models.files import load_model

    report = export_model(run_dir, RUNS / name, "onnx")
    model = load_model(run_dir)
    threads = torch.get_num_threads()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        report.model_file, options, providers=["CPUExecutionProvider"]
    )
    description = json.loads((run_dir / "model.json").read_text())
    shape = tuple(int(v) for v in description["input_shape"])
    generator = torch.Generator().manual_seed(0)
    rows = []
    for batch in (1, 64):
        x = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=generator)
        array = x.numpy()

        def eager(inputs: torch.Tensor) -> Any:
            with torch.inference_mode():
                return model(inputs)

        def ort(inputs: Any) -> Any:
            return session.run(["embeddings"], {"images": inputs})

        repeats = REPEATS if batch > 1 else REPEATS * 5
        eager_s, ort_s = interleaved([(eager, x), (ort, array)], repeats)
        rows.append(
            {
                "batch": batch,
                "pytorch_images_per_second": batch / eager_s,
                "onnxruntime_images_per_second": batch / ort_s,
                "ratio": eager_s / ort_s,
            }
        )
        print(
            f"{name} batch {batch}: torch {batch / eager_s:.1f}/s, ort {batch / ort_s:.1f}/s",
            flush=True,
        )
    return {
        "model": name,
        "input_shape": list(shape),
        "verified_max_abs_difference": report.max_abs_difference,
        "threads": threads,
        "rows": rows,
    }


def main() -> None:
    if not os.environ.get("SIAMESE_DATA_DIR"):
        raise SystemExit("set SIAMESE_DATA_DIR to the directory with the datasets")
    from siamese.config import load_config
    from siamese.training.training_run import train_run

    shutil.rmtree(RUNS, ignore_errors=True)
    RUNS.mkdir(parents=True)
    faces = RUNS / "faces-run"
    train_run(load_config(ROOT / "configs" / "face_pretrained.yaml"), faces, quiet=True)
    glyphs = RUNS / "glyphs-run"
    config = load_config(ROOT / "configs" / "glyphs_triplet.yaml", ["train.epochs=1"])
    train_run(config, glyphs, quiet=True)
    models = [
        measure("face ResNet (dlib port, 3×150×150)", faces),
        measure("glyph ConvNet (the demo's, 1×28×28, 1 epoch)", glyphs),
    ]
    import onnxruntime
    import torch

    document = {
        "benchmark": "export",
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "models": models,
    }
    publish_results("export", document, section(document))


def section(document: dict[str, Any]) -> str:
    m = document["machine"]
    lines = [
        f"onnxruntime {document['onnxruntime']} against PyTorch {document['torch']} eager "
        "(inference mode), the same exported model and images, the same thread count; median of "
        "interleaved repetitions. Each export was verified by `siamese export` (max abs difference shown).",
        "",
        "| model | batch | PyTorch images/s | onnxruntime images/s | onnxruntime / PyTorch | max abs difference |",
        "|---|---|---|---|---|---|",
    ]
    for model in document["models"]:
        for row in model["rows"]:
            lines.append(
                f"| {model['model']} | {row['batch']} | {row['pytorch_images_per_second']:.1f} | "
                f"{row['onnxruntime_images_per_second']:.1f} | {row['ratio']:.2f}× | "
                f"{model['verified_max_abs_difference']:.1e} |"
            )
    lines += ["", f"Measured {document['date']} on {m['cpu']} ({m['cores']} cores)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
