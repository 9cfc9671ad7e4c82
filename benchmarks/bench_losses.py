"""Forward + backward time and peak memory of our losses against pytorch-metric-learning.

For batch sizes 256, 1,024 and 4,096 of 128-d unit-length embeddings, with P×K labels (K = 4)
and with 10 classes, each configuration runs in a fresh process (so its peak resident memory
is its own) under the same allocator settings for both libraries:

    ours                              pytorch-metric-learning 2.9.0
    TripletLoss(mining="all")         TripletMarginLoss, no miner
    TripletLoss(mining="hard")        TripletMarginLoss + BatchHardMiner
    TripletLoss(mining="semihard")    TripletMarginLoss + TripletMarginMiner("semihard")
    ContrastiveLoss(margin=1)         ContrastiveLoss(pos_margin=0, neg_margin=1)
    ArcFaceLoss                       ArcFaceLoss                 (28.6°, s = 64)
    SubCenterArcFaceLoss              SubCenterArcFaceLoss        (K = 3)
    CosFaceLoss                       CosFaceLoss                 (m = 0.35, s = 64)
    NormalizedSoftmaxLoss             NormalizedSoftmaxLoss       (τ = 0.05)
    ProxyAnchorLoss                   ProxyAnchorLoss             (δ = 0.1, α = 32)
    ProxyNCALoss                      ProxyNCALoss                (softmax_scale = 1)
    MultiSimilarityLoss (its miner)   MultiSimilarityLoss + MultiSimilarityMiner (ε = 0.1)
    CircleLoss                        CircleLoss                  (m = 0.4, γ = 80)
    LiftedStructureLoss               GeneralizedLiftedStructureLoss (margins 1 and 0)
    MarginLoss (learnt β)             MarginLoss(learn_beta=True) (margin 0.2, β = 1.2)
    NTXentLoss                        NTXentLoss                  (τ = 0.07)
    SupConLoss                        SupConLoss                  (τ = 0.1)
    CrossBatchMemory(TripletLoss      CrossBatchMemory(TripletMarginLoss, BatchHardMiner),
      (hard), 4,096)                    4,096

The classification and proxy losses start from the same class weights in both libraries (one
weight per class of the batch's labels: B / 4 classes with P×K labels, 10 otherwise), and
time the gradient of the weights as well as the embeddings'. `--classification` and
`--catalog` measure those groups alone (results/losses_classification.json,
results/losses_catalog.json).

Time is the median of 3 to 7 timed steps after one warm-up step, with glibc keeping large blocks
in its heap (MALLOC_MMAP_MAX_=0, as the `siamese` command does). Memory is the growth of the
process's peak RSS during the steps, measured in a second process with glibc's default
settings: there every large block is its own mapping, returned when freed, so the peak is
what was really alive at once (with the heap kept, fragmentation made it vary 1.7× between
identical runs). Writes `benchmarks/results/losses.json` and the table
in `benchmarks/BENCHMARKS.md`.

    python benchmarks/bench_losses.py            # needs requirements-bench.lock installed
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import describe_machine  # noqa: E402
from markdown_tables import publish_results, replace_section  # noqa: E402

RESULTS = HERE / "results" / "losses.json"
BATCHES = (256, 1024, 4096)
LABELS = ("pk", "10c")
METHODS = ("triplet_all", "triplet_hard", "triplet_semihard", "contrastive")
CLASSIFICATION = ("arcface", "subcenter_arcface", "cosface", "normalized_softmax")
PROXY = ("proxy_anchor", "proxy_nca")
PAIR_WEIGHTING = (
    "multi_similarity",
    "circle",
    "lifted_structure",
    "margin_loss",
    "ntxent",
    "supcon",
    "triplet_hard_xbm",
)
CATALOG = PROXY + PAIR_WEIGHTING
ALL_METHODS = METHODS + CLASSIFICATION + CATALOG
XBM_SIZE = 4096
"""The cross-batch memory's size: the batch meets up to 4,096 earlier embeddings (filled by
the warm-up step and the timed steps before it)."""
# Batch-all at 8,192 must stay within 2 GB: ours only (PML's triplets would need > 100 GB).
LARGE = [("triplet_all", "pk", 8192), ("triplet_all", "10c", 8192)]
MARGIN = 0.2
# PML materialises every candidate triplet (three int64 indices each, plus distances): with
# 95 million triplets (batch 1,024, 10 classes) it peaked at 5 GB here. Beyond this many it
# cannot fit in this machine's 24 GiB.
PML_MAX_TRIPLETS = 400_000_000
TIMING_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "17179869184"}


def make_inputs(batch: int, labels: str):
    import torch

    g = torch.Generator().manual_seed(batch)
    x = torch.nn.functional.normalize(torch.randn(batch, 128, generator=g), dim=1)
    y = torch.arange(batch) // 4 if labels == "pk" else torch.arange(batch) % 10
    return x, y


def candidate_triplets(batch: int, labels: str) -> int:
    per_class = 4 if labels == "pk" else batch // 10
    return batch * (per_class - 1) * (batch - per_class)


def classification_step(library: str, method: str, classes: int):
    """A classification loss of either library, both starting from the same class weights."""
    import torch
    from pytorch_metric_learning import losses as pml

    from siamese.losses.arcface import ArcFaceLoss
    from siamese.losses.cosface import CosFaceLoss
    from siamese.losses.normalized_softmax import NormalizedSoftmaxLoss
    from siamese.losses.subcenter_arcface import SubCenterArcFaceLoss

    torch.manual_seed(classes)
    ours = {
        "arcface": ArcFaceLoss,
        "subcenter_arcface": SubCenterArcFaceLoss,
        "cosface": CosFaceLoss,
        "normalized_softmax": NormalizedSoftmaxLoss,
    }[method](classes, 128)
    if library == "ours":
        return lambda x, y: ours(x, y).loss
    theirs = {
        "arcface": lambda: pml.ArcFaceLoss(classes, 128),
        "subcenter_arcface": lambda: pml.SubCenterArcFaceLoss(
            num_classes=classes, embedding_size=128
        ),
        "cosface": lambda: pml.CosFaceLoss(classes, 128),
        "normalized_softmax": lambda: pml.NormalizedSoftmaxLoss(classes, 128),
    }[method]()
    with torch.no_grad():
        theirs.W.copy_(ours.weight.T)
    return lambda x, y: theirs(x, y)


def proxy_step(library: str, method: str, classes: int):
    """A proxy loss of either library, both starting from the same proxies."""
    import torch
    from pytorch_metric_learning import losses as pml

    from siamese.losses import loss_class

    torch.manual_seed(classes)
    ours = loss_class(method)(classes, 128)
    if library == "ours":
        return lambda x, y: ours(x, y).loss
    theirs = (
        pml.ProxyAnchorLoss(classes, 128, margin=0.1, alpha=32)
        if method == "proxy_anchor"
        else pml.ProxyNCALoss(classes, 128, softmax_scale=1)
    )
    with torch.no_grad():
        theirs.proxies.copy_(ours.weight)
    return lambda x, y: theirs(x, y)


def pair_weighting_step(library: str, method: str):
    """A pair-weighting loss of either library with the catalog's (= PML's) defaults."""
    from pytorch_metric_learning import losses as pml
    from pytorch_metric_learning import miners

    if library == "ours":
        from siamese.losses import CrossBatchMemory, TripletLoss, loss_class

        if method == "triplet_hard_xbm":
            loss = CrossBatchMemory(TripletLoss(margin=MARGIN, mining="hard"), 128, XBM_SIZE)
        else:
            loss = loss_class(method)()
        return lambda x, y: loss(x, y).loss
    if method == "multi_similarity":
        loss, miner = pml.MultiSimilarityLoss(2, 50, 0.5), miners.MultiSimilarityMiner(0.1)
        return lambda x, y: loss(x, y, miner(x, y))
    if method == "triplet_hard_xbm":
        xbm = pml.CrossBatchMemory(
            pml.TripletMarginLoss(margin=MARGIN), 128, XBM_SIZE, miners.BatchHardMiner()
        )
        return lambda x, y: xbm(x, y)
    theirs = {
        "circle": lambda: pml.CircleLoss(m=0.4, gamma=80),
        "lifted_structure": lambda: pml.GeneralizedLiftedStructureLoss(neg_margin=1, pos_margin=0),
        "margin_loss": lambda: pml.MarginLoss(margin=0.2, nu=0, beta=1.2, learn_beta=True),
        "ntxent": lambda: pml.NTXentLoss(temperature=0.07),
        "supcon": lambda: pml.SupConLoss(temperature=0.1),
    }[method]()
    return lambda x, y: theirs(x, y)


def build_step(library: str, method: str, classes: int = 0):
    """A function (embeddings, labels) -> scalar loss."""
    if method in CLASSIFICATION:
        return classification_step(library, method, classes)
    if method in PROXY:
        return proxy_step(library, method, classes)
    if method in PAIR_WEIGHTING:
        return pair_weighting_step(library, method)
    if library == "ours":
        from siamese.losses import ContrastiveLoss, TripletLoss

        if method == "contrastive":
            loss = ContrastiveLoss(margin=1.0)
        else:
            loss = TripletLoss(margin=MARGIN, mining=method.removeprefix("triplet_"))
        return lambda x, y: loss(x, y).loss
    from pytorch_metric_learning import losses, miners

    if method == "contrastive":
        loss = losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0)
        return lambda x, y: loss(x, y)
    loss = losses.TripletMarginLoss(margin=MARGIN)
    miner = {
        "triplet_all": None,
        "triplet_hard": miners.BatchHardMiner(),
        "triplet_semihard": miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard"),
    }[method]
    if miner is None:
        return lambda x, y: loss(x, y)
    return lambda x, y: loss(x, y, miner(x, y))


def worker(config: dict) -> dict:
    """Run one configuration in this process and return its measurements."""
    import torch

    x0, y = make_inputs(config["batch"], config["labels"])
    step = build_step(config["library"], config["method"], int(y.max()) + 1)
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, value = [], None
    # One warm-up step, then 3 to 7 timed steps (fewer when a step is slow): the median.
    for repeat in range(8):
        if repeat > 3 and sum(times) > 8.0:
            break
        x = x0.clone().requires_grad_(True)
        start = time.perf_counter()
        loss = step(x, y)
        loss.backward()
        elapsed = time.perf_counter() - start
        if repeat > 0:
            times.append(elapsed)
        value = float(loss.detach())
        assert torch.isfinite(x.grad).all()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": statistics.median(times),
        "peak_mib": round((peak_kib - baseline_kib) / 1024, 1),
        "loss": value,
    }


def pml_out_of_reach(config: dict) -> str | None:
    """Why PML cannot run a configuration on this machine (measured once, then skipped)."""
    batch, labels, method = config["batch"], config["labels"], config["method"]
    if method == "ntxent" and batch >= 1024:
        # PML's NT-Xent builds (positive pairs × batch) matrices: 13 GB each at 1,024
        return "PML's NT-Xent needs > 13 GB per (positive pairs × B) matrix"
    if method == "margin_loss" and labels == "10c" and batch >= 4096:
        return f"{candidate_triplets(batch, labels):.2e} triplets: does not fit in 24 GiB"
    return None


def run_config(config: dict, timeout: int) -> dict:
    if config["library"] == "pml" and (reason := pml_out_of_reach(config)):
        return {**config, "skipped": reason}
    if config["library"] == "pml" and config["method"] in ("triplet_all", "triplet_semihard"):
        n = candidate_triplets(config["batch"], config["labels"])
        if n > PML_MAX_TRIPLETS:
            return {**config, "skipped": f"{n:.2e} candidate triplets: does not fit in 24 GiB"}
    measured = {}
    for purpose, extra in (("time", TIMING_ENV), ("memory", {})):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        command = [sys.executable, __file__, "--worker", json.dumps(config)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, env={**env, **extra}, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {**config, "skipped": f"took more than {timeout} s"}
        if done.returncode != 0:
            return {**config, "skipped": f"failed: {done.stderr.strip().splitlines()[-1:]}"}
        measured[purpose] = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        **config,
        "seconds": measured["time"]["seconds"],
        "peak_mib": measured["memory"]["peak_mib"],
        "loss": measured["time"]["loss"],
    }


def table(results: list[dict]) -> str:
    """Markdown: one row per (method, labels, batch), ours beside PML and their ratios."""
    by_key = {(r["library"], r["method"], r["labels"], r["batch"]): r for r in results}
    label_names = {"pk": "P×K (K=4)", "10c": "10 classes"}
    lines = [
        "| loss | labels | batch | ours s | PML s | time ratio | ours MiB | PML MiB | ours loss | PML loss |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method in [m for m in ALL_METHODS if any(r["method"] == m for r in results)]:
        for labels in LABELS:
            for batch in BATCHES:
                ours = by_key[("ours", method, labels, batch)]
                pml = by_key[("pml", method, labels, batch)]
                if "skipped" in pml:
                    pml_s = f"not run: {pml['skipped']}"
                    pml_mib = pml_loss = ratio = "–"
                else:
                    pml_s, pml_mib, pml_loss = (
                        f"{pml['seconds']:.4f}",
                        f"{pml['peak_mib']:.0f}",
                        f"{pml['loss']:.4f}",
                    )
                    ratio = ours["seconds"] / pml["seconds"]
                    ratio = f"{ratio:.2f}×" if ratio >= 0.01 else f"{ratio:.1g}×"
                lines.append(
                    f"| {method} | {label_names[labels]} | {batch} "
                    f"| {ours['seconds']:.4f} | {pml_s} | {ratio} | {ours['peak_mib']:.0f} | {pml_mib} "
                    f"| {ours['loss']:.4f} | {pml_loss} |"
                )
    for method, labels, batch in LARGE:
        if ("ours", method, labels, batch) not in by_key:
            continue
        ours = by_key[("ours", method, labels, batch)]
        lines.append(
            f"| {method} | {label_names[labels]} | {batch} | {ours['seconds']:.4f} | not run | – "
            f"| {ours['peak_mib']:.0f} | – | {ours['loss']:.4f} | – |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument(
        "--render", action="store_true", help="only redraw BENCHMARKS.md from the results file"
    )
    parser.add_argument(
        "--classification",
        action="store_true",
        help="only the classification losses (results/losses_classification.json)",
    )
    parser.add_argument(
        "--catalog",
        action="store_true",
        help="only the proxy and pair-weighting losses and XBM (results/losses_catalog.json)",
    )
    parser.add_argument(
        "--methods", help="comma-separated methods to measure (with --catalog: a subset)"
    )
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.render:
        replace_section(
            HERE / "BENCHMARKS.md", "losses", table(json.loads(RESULTS.read_text())["results"])
        )
        return
    try:
        import pytorch_metric_learning
    except ImportError:
        sys.exit(
            "pytorch-metric-learning is missing: pip install -r requirements-bench.lock (with requirements.lock)"
        )
    methods = CLASSIFICATION if args.classification else CATALOG if args.catalog else METHODS
    if args.methods:
        methods = tuple(m for m in args.methods.split(",") if m)
    configs = [
        {"library": library, "method": method, "labels": labels, "batch": batch}
        for method in methods
        for labels in LABELS
        for batch in BATCHES
        for library in ("ours", "pml")
    ]
    if not (args.classification or args.catalog or args.methods):
        configs += [
            {"library": "ours", "method": m, "labels": lb, "batch": b} for m, lb, b in LARGE
        ]
    results = []
    for config in configs:
        result = run_config(config, args.timeout)
        results.append(result)
        shown = result.get("skipped") or f"{result['seconds']:.4f} s, {result['peak_mib']} MiB"
        print(" ".join(str(v) for v in config.values()) + f": {shown}", flush=True)
    name = (
        "losses_classification"
        if args.classification
        else "losses_catalog"
        if args.catalog
        else "losses"
    )
    previous = HERE / "results" / f"{name}.json"
    today = time.strftime("%Y-%m-%d")
    results = [{**r, "date": today} for r in results]
    if args.methods and previous.exists():  # a subset re-measured: keep the others' rows
        old = json.loads(previous.read_text(encoding="utf-8"))
        # each row says when it was measured (ours and PML's of one row: always the same run)
        kept = [
            {**r, "date": r.get("date", old["date"]), "machine": r.get("machine", old["machine"])}
            for r in old["results"]
            if r["method"] not in methods
        ]
        results = kept + [{**r, "machine": describe_machine()} for r in results]
    document = {
        "benchmark": "bench_losses",
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "peer": f"pytorch-metric-learning {pytorch_metric_learning.__version__}",
        "timing_environment": TIMING_ENV,
        "embedding_dim": 128,
        "margin": MARGIN,
        "results": results,
    }
    publish_results(name, document, table(results))
    print(table(results))


if __name__ == "__main__":
    main()
