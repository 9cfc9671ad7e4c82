"""Fill README's measured-results tables from the committed results files.

python benchmarks/readme_tables.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from markdown_tables import replace_section  # noqa: E402

README = HERE.parent / "README.md"
LOSS_NAMES = {
    "triplet_all": "`TripletLoss` all",
    "triplet_hard": "`TripletLoss` hard",
    "triplet_semihard": "`TripletLoss` semihard",
    "contrastive": "`ContrastiveLoss`",
    "proxy_anchor": "`ProxyAnchorLoss`",
    "proxy_nca": "`ProxyNCALoss`",
    "multi_similarity": "`MultiSimilarityLoss` (+ miner)",
    "circle": "`CircleLoss`",
    "lifted_structure": "`LiftedStructureLoss`",
    "margin_loss": "`MarginLoss` (learnt β)",
    "ntxent": "`NTXentLoss`",
    "supcon": "`SupConLoss`",
    "triplet_hard_xbm": "`CrossBatchMemory` (hard triplets, 4,096)",
}
LABEL_NAMES = {"pk": "P×K, K = 4", "10c": "10 classes"}


def demo_table(result: dict) -> str:
    s, m = result["summary"], result["machine"]
    return "\n".join(
        [
            "| held-out characters | Siamese embedding | raw pixels |",
            "|---|---|---|",
            f"| verification ROC AUC | {s['unseen_verification_auc']:.3f} | {s['raw_pixels_verification_auc']:.3f} |",
            f"| 5-way 1-shot accuracy | {s['oneshot_5way']:.1%} | {s['raw_pixels_oneshot_5way']:.1%} |",
            f"| 20-way 1-shot accuracy | {s['oneshot_20way']:.1%} | {s['raw_pixels_oneshot_20way']:.1%} |",
            "",
            f"The whole `siamese demo` took {s['first_run_wall_seconds']:.1f} s the first time (rendering "
            f"the glyphs included) and {s['wall_seconds_median']:.1f} s (median) once they were cached, "
            f"training at {s['train_images_per_second_median']:,.0f} images/s ({m['cpu']}, {m['cores']} cores).",
        ]
    )


def loss_table(result: dict, catalog: dict | None = None) -> str:
    rows = result["results"] + (catalog["results"] if catalog else [])
    by_key = {(r["library"], r["method"], r["labels"], r["batch"]): r for r in rows}
    lines = [
        "| loss | labels | ours | PML | ours / PML | ours peak | PML peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, name in LOSS_NAMES.items():
        for labels, label_name in LABEL_NAMES.items():
            if ("ours", method, labels, 4096) not in by_key:
                continue
            ours, pml = (
                by_key[("ours", method, labels, 4096)],
                by_key[("pml", method, labels, 4096)],
            )
            if "skipped" in pml:
                pml_time, ratio, pml_peak = "does not fit in 24 GiB", "–", "–"
                if "GiB" not in pml["skipped"] and "GB" not in pml["skipped"]:
                    pml_time = pml["skipped"]
            else:
                pml_time = f"{pml['seconds']:.2f} s"
                ratio = f"{ours['seconds'] / pml['seconds']:.2f}×"
                pml_peak = f"{pml['peak_mib']:,.0f} MiB"
            lines.append(
                f"| {name} | {label_name} | {ours['seconds']:.2f} s | {pml_time} | {ratio} "
                f"| {ours['peak_mib']:,.0f} MiB | {pml_peak} |"
            )
    for (library, method, labels, batch), ours in by_key.items():
        if library == "ours" and batch == 8192:
            lines.append(
                f"| {LOSS_NAMES[method]}, batch 8,192 | {LABEL_NAMES[labels]} | {ours['seconds']:.2f} s "
                f"| not run | – | {ours['peak_mib']:,.0f} MiB | – |"
            )
    return "\n".join(lines)


def training_table(result: dict) -> str:
    s, m = result["summary"], result["machine"]
    ips, r = s["median_images_per_s"], s["ratios"]
    return "\n".join(
        [
            "| training loop (MNIST, convnet, P×K 8×16, batch-all triplets) | images/s | ratio |",
            "|---|---|---|",
            f"| hand-written PyTorch loop | {ips['hand']:,.0f} | 1× |",
            f"| `siamese train` (the command) | {ips['ours']:,.0f} | {r['ours_vs_hand']['median']:.2f}× |",
            f"| hand-written loop with pytorch-metric-learning's loss | {ips['pml']:,.0f} | "
            f"{ips['pml'] / ips['hand']:.2f}× |",
            f"| `TrainingLoop` vs hand-written, alternated in one process | {ips['engine']:,.0f} "
            f"| {r['engine_vs_hand_same_process']['median']:.3f}× |",
            f"| `siamese train` with bf16 autocast | {ips['ours_bf16']:,.0f} | "
            f"{r['bf16_vs_fp32']['median']:.2f}× of fp32 |",
            f"| `siamese train` without the allocator tuning | {ips['ours_malloc_off']:,.0f} | "
            f"tuning gives {r['allocator_on_vs_off']['median']:.2f}× |",
            "",
            f"Medians of {result['repeats']} interleaved repeats ({m['cpu']}, {m['cores']} cores); "
            "between processes the same loop varies by several per cent, so the engine's own cost "
            "is read from the in-process pair. Details: benchmarks/BENCHMARKS.md.",
        ]
    )


def main() -> None:
    from bench_data import benchmarks_section as data_table

    demo = json.loads((HERE / "results" / "demo.json").read_text())
    losses = json.loads((HERE / "results" / "losses.json").read_text())
    data = json.loads((HERE / "results" / "data.json").read_text())
    replace_section(README, "demo-results", demo_table(demo))
    catalog = json.loads((HERE / "results" / "losses_catalog.json").read_text())
    replace_section(README, "loss-results", loss_table(losses, catalog))
    replace_section(README, "data-results", data_table(data))
    training = json.loads((HERE / "results" / "training.json").read_text())
    replace_section(README, "training-results", training_table(training))
    from bench_recipes import committed_results, readme_table

    replace_section(README, "recipe-results", readme_table(committed_results()))


if __name__ == "__main__":
    main()
