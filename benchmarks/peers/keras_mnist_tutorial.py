"""Peer: the Keras MNIST triplet tutorial itself, on Keras 3 with the torch backend.

The tutorial, written here from its published description: an embedding model Dense(64, relu)
→ Dense(64, sigmoid) on flattened 784-pixel digits scaled to [0, 1]; one network over
(anchor, positive, negative) inputs whose three embeddings are concatenated; the loss
max(0, mean((a − p)²) − mean((a − n)²) + 0.2) (a mean, not a sum, over the 64 coordinates);
Adam; random triplets (a random anchor, a random other digit of its class, a random digit of
another class) from a generator, batches of 2,048, 29 steps per epoch (60,000 // 2,048),
10 epochs. Triplets are drawn with numpy in one vectorised call per batch.

Accuracy: 1-NN of the test digits against the 60,000 training digits in the embedding
(Euclidean), computed with `siamese.evaluation.retrieval`. Prints one JSON object.

    python benchmarks/peers/keras_mnist_tutorial.py --data-dir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import torch

from siamese.data.sources import load_dataset
from siamese.evaluation.retrieval import retrieval_metrics
from siamese.training.allocator import keep_large_allocations_in_heap

EMBEDDING, MARGIN, BATCH, EPOCHS = 64, 0.2, 2048, 10


def triplet_loss(y_true: object, y_pred: torch.Tensor) -> torch.Tensor:
    a = y_pred[:, :EMBEDDING]
    p = y_pred[:, EMBEDDING : 2 * EMBEDDING]
    n = y_pred[:, 2 * EMBEDDING :]
    positive = keras.ops.mean(keras.ops.square(a - p), axis=1)
    negative = keras.ops.mean(keras.ops.square(a - n), axis=1)
    return keras.ops.maximum(positive - negative + MARGIN, 0.0)


def triplets(x: np.ndarray, y: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c) for c in range(10)]
    outside = [np.flatnonzero(y != c) for c in range(10)]
    dummy = np.zeros((BATCH, 1), dtype=np.float32)
    while True:
        anchor = rng.integers(0, len(y), BATCH)
        c = y[anchor]
        positive = np.empty(BATCH, dtype=np.int64)
        negative = np.empty(BATCH, dtype=np.int64)
        for k in range(10):
            rows = np.flatnonzero(c == k)
            positive[rows] = rng.choice(by_class[k], rows.size)
            negative[rows] = rng.choice(outside[k], rows.size)
        yield (x[anchor], x[positive], x[negative]), dummy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keep_large_allocations_in_heap()  # the same allocator settings as `siamese train`
    keras.utils.set_random_seed(args.seed)
    train = load_dataset("mnist", "train", args.data_dir)
    test = load_dataset("mnist", "test", args.data_dir)
    x_train = (train.x.reshape(len(train), -1).float() / 255).numpy()
    x_test = (test.x.reshape(len(test), -1).float() / 255).numpy()
    y_train = train.y.numpy()

    embedding = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(EMBEDDING, activation="sigmoid"),
        ]
    )
    inputs = [keras.Input((784,)) for _ in range(3)]
    merged = keras.layers.concatenate([embedding(i) for i in inputs], axis=-1)
    net = keras.Model(inputs, merged)
    net.compile(loss=triplet_loss, optimizer=keras.optimizers.Adam())
    start = time.perf_counter()
    net.fit(
        triplets(x_train, y_train, args.seed),
        steps_per_epoch=len(x_train) // BATCH,
        epochs=EPOCHS,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    z_train = torch.from_numpy(np.asarray(embedding.predict(x_train, batch_size=4096, verbose=0)))
    z_test = torch.from_numpy(np.asarray(embedding.predict(x_test, batch_size=4096, verbose=0)))
    report = retrieval_metrics(z_test, test.y, z_train, train.y, "euclidean")
    print(
        json.dumps(
            {
                "peer": f"Keras {keras.__version__} tutorial, {keras.backend.backend()} backend",
                "train_seconds": round(seconds, 2),
                "steps": EPOCHS * (len(x_train) // BATCH),
                "accuracy_1nn": report.precision_at_1,
                "map_at_r": report.map_at_r,
            }
        )
    )


if __name__ == "__main__":
    main()
