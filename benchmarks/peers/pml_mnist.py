"""Peer: pytorch-metric-learning's standard MNIST recipe (its TripletMarginLossMNIST example),
written here from its published settings, trained for a wall-clock budget.

The recipe: inputs standardised with MNIST's mean 0.1307 and std 0.3081; a CNN of two 3×3
convolutions (32, 64), max-pooling, 2-D dropout 0.25 and a linear layer to a 128-d embedding;
cosine similarity; `TripletMarginMiner(margin=0.2, type_of_triplets="semihard")` feeding
`TripletMarginLoss(margin=0.2)` with a `ThresholdReducer(low=0)`; Adam, lr 0.01; shuffled
batches of 256. Its accuracy is precision@1 of the test digits against the 60,000 training
digits (1-NN), computed here with `siamese.evaluation.retrieval` (equal to PML's
`AccuracyCalculator`, checked in tests/test_retrieval.py).

`--network ours` keeps the whole recipe (standardisation, loss, miner, optimiser, batches,
epochs) and swaps only the network for `mnist_retrieval`'s (its ConvNet and 64-d normalised
embedding, fresh weights, the same seed), so that a difference between the two libraries'
figures can be told apart into recipe and network.

After every epoch the script measures that accuracy (evaluation time is not training time)
and stops once the training time passes `--budget` seconds or the accuracy reaches
`--target`. Prints one JSON object: per-epoch training seconds and accuracy.

    python benchmarks/peers/pml_mnist.py --data-dir DIR --budget 120 --target 0.995
    python benchmarks/peers/pml_mnist.py --data-dir DIR --budget 120 --network ours
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from pytorch_metric_learning import distances, losses, miners, reducers
from torch import nn

from siamese.config.schema import load_config
from siamese.data.sources import load_dataset
from siamese.evaluation.retrieval import retrieval_metrics
from siamese.training.allocator import keep_large_allocations_in_heap

ROOT = Path(__file__).resolve().parents[2]


class PMLNet(nn.Module):
    """The example's network: (N, 1, 28, 28) standardised digits → (N, 128)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout = nn.Dropout2d(0.25)
        self.fc = nn.Linear(9216, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        x = self.dropout(nn.functional.max_pool2d(x, 2))
        return self.fc(torch.flatten(x, 1))


def our_network(config: Path, input_shape: tuple[int, ...]) -> nn.Module:
    """`config`'s network with fresh weights, taking the recipe's standardised inputs as they
    are (its own input standardisation set to the identity: mean 0, std 1)."""
    from siamese.models.embedding import build_embedding_net

    model = load_config(config).model
    spec = {
        "encoder": model.encoder,
        "encoder_options": dict(model.options),
        "embedding_dim": model.embedding_dim,
        "normalize": model.normalize,
        "output_activation": model.output_activation,
        "mean": 0.0,
        "std": 1.0,
    }
    return build_embedding_net(spec, input_shape)


def standardised(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255 - 0.1307) / 0.3081


@torch.no_grad()
def embed_all(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    out = torch.cat([model(standardised(x[i : i + 2048])) for i in range(0, len(x), 2048)])
    model.train()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--budget", type=float, required=True, help="training seconds")
    parser.add_argument("--target", type=float, default=1.0, help="stop at this accuracy")
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--network",
        choices=("pml", "ours"),
        default="pml",
        help="the recipe's own network, or mnist_retrieval's (configs/mnist_retrieval.yaml)",
    )
    args = parser.parse_args()
    keep_large_allocations_in_heap()  # the same allocator settings as `siamese train`
    torch.manual_seed(args.seed)
    train = load_dataset("mnist", "train", args.data_dir)
    test = load_dataset("mnist", "test", args.data_dir)
    if args.network == "pml":
        model: nn.Module = PMLNet()
    else:
        model = our_network(ROOT / "configs" / "mnist_retrieval.yaml", tuple(train.x.shape[1:]))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    distance = distances.CosineSimilarity()
    loss_func = losses.TripletMarginLoss(
        margin=0.2, distance=distance, reducer=reducers.ThresholdReducer(low=0)
    )
    mining_func = miners.TripletMarginMiner(
        margin=0.2, distance=distance, type_of_triplets="semihard"
    )
    g = torch.Generator().manual_seed(args.seed)
    trained, epochs = 0.0, []
    for epoch in range(1, args.max_epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=g)
        for i in range(0, len(order), 256):
            index = order[i : i + 256]
            x, y = standardised(train.x[index]), train.y[index]
            optimizer.zero_grad()
            embeddings = model(x)
            loss = loss_func(embeddings, y, mining_func(embeddings, y))
            loss.backward()
            optimizer.step()
        trained += time.perf_counter() - start
        report = retrieval_metrics(
            embed_all(model, test.x), test.y, embed_all(model, train.x), train.y, "cosine"
        )
        epochs.append(
            {
                "epoch": epoch,
                "train_seconds": round(trained, 2),
                "accuracy_1nn": report.precision_at_1,
                "map_at_r": report.map_at_r,
            }
        )
        print(json.dumps(epochs[-1]), flush=True)
        if trained >= args.budget or report.precision_at_1 >= args.target:
            break
    network = "its own network" if args.network == "pml" else "mnist_retrieval's network"
    print(
        json.dumps(
            {
                "peer": f"pytorch-metric-learning MNIST recipe, {network}",
                "network": args.network,
                "epochs": epochs,
            }
        )
    )


if __name__ == "__main__":
    main()
