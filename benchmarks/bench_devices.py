"""Training and embedding on a GPU against this machine's CPU, in one run (issue 17).

The same `siamese train` (the demo's glyph ConvNet recipe, a fixed number of steps) runs on
the CPU in fp32 and on CUDA in fp32, bf16 and fp16 (with its gradient scaler); then the
run's model embeds the same 20,000 images on each device. Reported: training images/s and
embedded images/s, each as a ratio to the CPU in the same run, and the largest difference of
the GPU embeddings from the CPU ones. Writes `benchmarks/results/devices.json` and
BENCHMARKS.md's `devices` section.

Without CUDA it measures nothing and says why (exit code 2): the figures exist only where
they were measured. Run it, with the CUDA tests, on a machine with a GPU:

    python -m pytest -q tests/test_devices.py && python benchmarks/bench_devices.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results

RECIPE = Path(__file__).resolve().parent.parent / "configs" / "glyphs_triplet.yaml"
STEPS = 200
EMBEDDED = 20_000
SETTINGS = (("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "bf16"), ("cuda", "fp16"))


def train_once(device: str, precision: str, out: Path) -> dict[str, Any]:
    from siamese.config import load_config
    from siamese.training.training_run import train_run

    config = load_config(
        RECIPE,
        [
            f"device={device}",
            f"train.precision={precision}",
            "train.epochs=null",
            f"train.steps={STEPS}",
            "train.validate_every=0",
        ],
    )
    result = train_run(config, out, quiet=True, force=True)
    return {"images_per_s": result.images_per_s, "steps": result.steps}


def embed_speed(run: Path, device: str) -> tuple[float, Any]:
    import torch

    from siamese.data.sources import load_dataset
    from siamese.evaluation.embed import embed
    from siamese.models.files import load_model

    x = load_dataset("glyphs").x[:EMBEDDED]
    model = load_model(run).to(device)
    embed(model, x[:2048])  # warm-up (kernels, allocator)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    z = embed(model, x)
    if device == "cuda":
        torch.cuda.synchronize()
    return x.shape[0] / (time.perf_counter() - start), z.cpu()


def section(document: dict[str, Any]) -> str:
    m = document["machine"]
    rows = document["training"]
    cpu = rows["cpu fp32"]["images_per_s"]
    lines = [
        f"`siamese train configs/glyphs_triplet.yaml` for {STEPS} steps on each device and "
        f"precision, then the model embedding {EMBEDDED:,} glyphs; {m['cpu']} "
        f"({m['cores']} cores) and {document['gpu']}, torch {m['torch']}, {document['date']}.",
        "",
        "| device, precision | training images/s | vs CPU |",
        "|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['images_per_s']:,.0f} | {row['images_per_s'] / cpu:.1f}× |")
    e = document["embedding"]
    lines += [
        "",
        f"Embedding: {e['cpu_images_per_s']:,.0f} images/s on the CPU, "
        f"{e['cuda_images_per_s']:,.0f} on the GPU "
        f"({e['cuda_images_per_s'] / e['cpu_images_per_s']:.1f}×); the GPU's embeddings are "
        f"within {e['max_abs_difference']:.1e} of the CPU's.",
    ]
    return "\n".join(lines)


def main() -> None:
    import torch

    from siamese.devices import cuda_absence

    if not torch.cuda.is_available():
        print(f"no CUDA here ({cuda_absence()}): nothing measured", file=sys.stderr)
        raise SystemExit(2)
    training: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for device, precision in SETTINGS:
            name = f"{device} {precision}"
            training[name] = train_once(device, precision, Path(scratch) / name.replace(" ", "-"))
            print(name, training[name])
        run = Path(scratch) / "cpu-fp32"
        cpu_speed, z_cpu = embed_speed(run, "cpu")
        cuda_speed, z_cuda = embed_speed(run, "cuda")
    document = {
        "benchmark": "devices",
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "gpu": torch.cuda.get_device_name(0),
        "training": training,
        "embedding": {
            "cpu_images_per_s": cpu_speed,
            "cuda_images_per_s": cuda_speed,
            "max_abs_difference": float((z_cpu - z_cuda).abs().max()),
        },
    }
    path = publish_results("devices", document, section(document))
    print(section(document))
    print(f"→ {path}")


if __name__ == "__main__":
    main()
