"""What `StridedConv2d` costs (issue 23): training steps of ResNets whose strided convolutions
take the detour, against the same networks on oneDNN's strided kernels in the same run
(where this CPU survives them), and against NCHW activations throughout.

For each network, one training step (forward, backward, SGD) on a fixed batch, the variants
taking turns over several repetitions; the median seconds per step. Variants:
- `ours`: the encoder as shipped (channels-last; strided convolutions with channel tails train
  without strided oneDNN kernels: a 1×1 as a matrix product, a 3×3 at unit stride).
- `onednn_channels_last`: the same with every `StridedConv2d` run as a plain `nn.Conv2d`:
  oneDNN's strided backward kernels, which crash at some widths on some CPUs. Measured only
  where this CPU's kernels survive them (input channels ≥ 8 on AVX2); on an AVX-512 Xeon they
  abort at 8 and 12, so run this script there only with --no-onednn.
- `nchw`: NCHW activations and weights throughout (strided convolutions as in `ours`).
Writes benchmarks/results/strided_convolution.json.

    python benchmarks/bench_strided_convolution.py [--no-onednn]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine
from siamese.models.builder import build_encoder
from siamese.models.embedding import EmbeddingNet
from siamese.models.strided_convolution import StridedConv2d, needs_safe_path

RESULTS = Path(__file__).resolve().parent / "results" / "strided_convolution.json"
REPEATS = 15
BATCH = 32

# (name, input shape, resnet options): the crashing models, a channel tail of 8 on
# AVX-512 (24), and the default widths, where nothing takes the detour.
NETWORKS: list[tuple[str, tuple[int, int, int], dict[str, Any]]] = [
    ("resnet (8, 16) on 3×64×64", (3, 64, 64), {"widths": [8, 16]}),
    ("resnet (8, 16, 16) on 1×112×92 faces", (1, 112, 92), {"widths": [8, 16, 16]}),
    ("resnet (12, 24, 48) on 3×64×64", (3, 64, 64), {"widths": [12, 24, 48]}),
    ("resnet default (32, 64, 128, 256) on 1×112×92", (1, 112, 92), {}),
]


@contextmanager
def plain_convolutions() -> Iterator[None]:
    """Within this context every StridedConv2d runs as nn.Conv2d (oneDNN's kernels)."""
    saved = StridedConv2d.forward
    StridedConv2d.forward = nn.Conv2d.forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        StridedConv2d.forward = saved  # type: ignore[method-assign]


def training_step(
    shape: tuple[int, int, int], options: dict[str, Any], nchw: bool
) -> Callable[[], None]:
    """One SGD step of an EmbeddingNet over the resnet, on a fixed batch."""
    torch.manual_seed(0)
    encoder = build_encoder("resnet", shape, **options)
    if nchw:
        encoder.to(memory_format=torch.contiguous_format)
        encoder.forward = lambda x: encoder.stages(encoder.stem(x)).mean(dim=(2, 3))  # type: ignore[method-assign]
    net = EmbeddingNet(encoder, embedding_dim=32, normalize=True).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
    x = torch.rand(BATCH, *shape)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        net(x).square().sum().backward()
        optimizer.step()

    return step


def safe_path_layers(shape: tuple[int, int, int], options: dict[str, Any]) -> int:
    """How many of the network's strided convolutions train without strided oneDNN kernels."""
    encoder = build_encoder("resnet", shape, **options)
    count = 0
    for module in encoder.modules():
        if isinstance(module, StridedConv2d):
            first = module is encoder.stem[0]  # the image itself needs no gradient
            count += needs_safe_path(
                module.in_channels, module.kernel_size, module.stride, not first, True
            )
    return count


def onednn_survives(options: dict[str, Any]) -> bool:
    """Whether this CPU's oneDNN kernels survive the network's strided convolutions: AVX2's fail
    below 8 input channels, AVX-512's at channel tails of 16."""
    capability = torch.backends.cpu.get_cpu_capability()
    widths = options.get("widths", [32, 64, 128, 256])
    tails = [w for w in widths[:-1] if w % 16]
    if capability.startswith("AVX512"):
        return not tails
    return all(w >= 8 for w in tails)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-onednn", action="store_true", help="skip oneDNN's strided kernels")
    args = parser.parse_args()
    rows = []
    for name, shape, options in NETWORKS:
        variants: dict[str, Callable[[], None]] = {
            "ours": training_step(shape, options, nchw=False),
            "nchw": training_step(shape, options, nchw=True),
        }
        if not args.no_onednn and onednn_survives(options):
            variants["onednn_channels_last"] = training_step(shape, options, nchw=False)
        samples: dict[str, list[float]] = {k: [] for k in variants}
        for repeat in range(REPEATS + 1):
            for key, step in variants.items():
                context = plain_convolutions() if key == "onednn_channels_last" else nullcontext()
                with context:
                    start = time.perf_counter()
                    step()
                    elapsed = time.perf_counter() - start
                if repeat:  # the first round warms up
                    samples[key].append(elapsed)
        medians = {k: statistics.median(v) for k, v in samples.items()}
        row = {
            "network": name,
            "batch": BATCH,
            "detoured_layers": safe_path_layers(shape, options),
            "seconds_per_step": {k: round(v, 5) for k, v in medians.items()},
            "ours_speed_vs_nchw": round(medians["nchw"] / medians["ours"], 3),
        }
        if "onednn_channels_last" in medians:
            row["ours_speed_vs_onednn_channels_last"] = round(
                medians["onednn_channels_last"] / medians["ours"], 3
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    RESULTS.write_text(
        json.dumps(
            {
                "what": "training step time, resnet encoders, interleaved variants, median of "
                f"{REPEATS}",
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "machine": describe_machine(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
