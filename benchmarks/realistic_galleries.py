"""Synthetic galleries that look like a real model's (issue 28): identities × examples whose
genuine and impostor distance distributions match those of a trained model on its own
calibration data, at any size (100k, 1M, 10M examples), for measuring gallery search where
uniformly random vectors would mislead (every distance nearly the same).

How the fit is made, from a model's calibration embeddings z (N, D) with labels y:

- identity centres are drawn from a Gaussian with the mean of the class means and their
  covariance (the between-class covariance, less the part the within-class noise adds to a
  mean of k examples), shrunk towards isotropic by a factor `shrink` (20 calibration classes
  cannot estimate a 128 × 128 covariance: its rank would be 19);
- an example is its centre plus the pooled within-class noise (its covariance's square
  root times a standard normal), scaled by a per-example factor exp(τ n − τ²), n standard
  normal (mean square 1: some photos are sharper than others, which widens the genuine
  distances as real ones are);
- `shrink` and τ are chosen on a grid to minimise the larger of the two Kolmogorov–Smirnov
  distances between the synthetic and the real genuine and impostor distances.

Cosine models are fitted and generated on unit vectors and their synthetic examples
normalised. `python benchmarks/realistic_galleries.py` fits the face and glyph models and
writes `results/realistic_galleries.json` (parameters, KS distances, distance summaries).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SHRINKS = (0.0, 0.2, 0.4, 0.6, 0.8)
TAUS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


@dataclass(frozen=True)
class GalleryModel:
    """The fitted generator of one model's galleries.

    Attributes:
        mean: (D,) mean identity centre; between: (D, D) square root of the centres'
            covariance; within: (D, D) square root of the within-identity covariance.
        tau: per-example noise scale spread; shrink: the covariance shrinkage chosen.
        metric: the model's metric ("euclidean" or "cosine": cosine rows are unit vectors).
    """

    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray
    tau: float
    shrink: float
    metric: str

    def identities(
        self, count: int, per_identity: int, seed: int, chunk: int = 1_000_000
    ) -> tuple[np.ndarray, np.ndarray]:
        """(count × per_identity, D) float32 examples and their (…,) int64 identities, made
        `chunk` examples at a time (10M × 128 float32 is 5 GB: no float64 copy of it)."""
        rng = np.random.default_rng(seed)
        dim = self.mean.size
        total = count * per_identity
        x = np.empty((total, dim), dtype=np.float32)
        y = np.repeat(np.arange(count, dtype=np.int64), per_identity)
        per_chunk = max(1, chunk // per_identity)
        for first in range(0, count, per_chunk):
            n = min(per_chunk, count - first)
            centres = self.mean + rng.standard_normal((n, dim)) @ self.between.T
            noise = rng.standard_normal((n * per_identity, dim)) @ self.within.T
            scale = np.exp(self.tau * rng.standard_normal((n * per_identity, 1)) - self.tau**2)
            rows = np.repeat(centres, per_identity, axis=0) + scale * noise
            if self.metric == "cosine":
                rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
            x[first * per_identity : (first + n) * per_identity] = rows
        return x, y


def distances(z: np.ndarray, y: np.ndarray, seed: int, pairs: int = 20_000) -> tuple:
    """(genuine, impostor) distance samples of labelled embeddings (Euclidean; on unit
    vectors for cosine models, where it is monotone in the cosine distance)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(y, kind="stable")
    ys = y[order]
    starts = np.searchsorted(ys, np.unique(ys))
    sizes = np.diff(np.append(starts, ys.size))
    pick = rng.integers(0, starts.size, pairs)
    a = order[starts[pick] + (rng.random(pairs) * sizes[pick]).astype(np.int64)]
    b = order[starts[pick] + (rng.random(pairs) * sizes[pick]).astype(np.int64)]
    keep = a != b
    genuine = np.linalg.norm(z[a[keep]] - z[b[keep]], axis=1)
    i, j = rng.integers(0, y.size, 2 * pairs), rng.integers(0, y.size, 2 * pairs)
    other = y[i] != y[j]
    impostor = np.linalg.norm(z[i[other]] - z[j[other]], axis=1)[:pairs]
    return genuine, impostor


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov–Smirnov statistic (largest gap between the two CDFs)."""
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / a.size
    fb = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def _root(covariance: np.ndarray, shrink: float) -> np.ndarray:
    dim = covariance.shape[0]
    shrunk = (1 - shrink) * covariance + shrink * np.trace(covariance) / dim * np.eye(dim)
    values, vectors = np.linalg.eigh(shrunk)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def fit(z: np.ndarray, y: np.ndarray, metric: str) -> tuple[GalleryModel, dict[str, Any]]:
    """The generator closest to (N, D) calibration embeddings with labels y, and the fit's
    report (the KS distances of the chosen and of every grid point)."""
    x = z.astype(np.float64)
    if metric == "cosine":
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    classes, position = np.unique(y, return_inverse=True)
    counts = np.bincount(position).astype(np.float64)
    means = np.zeros((classes.size, x.shape[1]))
    np.add.at(means, position, x)
    means /= counts[:, None]
    residual = x - means[position]
    within = residual.T @ residual / (x.shape[0] - classes.size)
    between = np.cov(means.T) - within / counts.mean()
    real_genuine, real_impostor = distances(x, y, seed=0)
    grid, best = {}, None
    for shrink in SHRINKS:
        for tau in TAUS:
            model = GalleryModel(
                means.mean(axis=0), _root(between, shrink), _root(within, 0.0), tau, shrink, metric
            )
            sx, sy = model.identities(2_000, 10, seed=1)
            genuine, impostor = distances(sx.astype(np.float64), sy, seed=2)
            ks = (ks_distance(genuine, real_genuine), ks_distance(impostor, real_impostor))
            grid[f"shrink {shrink} tau {tau}"] = ks
            if best is None or max(ks) < max(best[1]):
                best = (model, ks, genuine, impostor)
    assert best is not None
    model, ks, genuine, impostor = best
    report = {
        "calibration_examples": int(y.size),
        "calibration_identities": int(classes.size),
        "dim": int(x.shape[1]),
        "metric": metric,
        "shrink": model.shrink,
        "tau": model.tau,
        "ks_genuine": ks[0],
        "ks_impostor": ks[1],
        "real": _summary(real_genuine, real_impostor),
        "synthetic": _summary(genuine, impostor),
        "grid": grid,
    }
    return model, report


def _summary(genuine: np.ndarray, impostor: np.ndarray) -> dict[str, float]:
    return {
        "genuine_mean": float(genuine.mean()),
        "genuine_std": float(genuine.std()),
        "impostor_mean": float(impostor.mean()),
        "impostor_std": float(impostor.std()),
        "impostor_1st_percentile": float(np.quantile(impostor, 0.01)),
        "genuine_99th_percentile": float(np.quantile(genuine, 0.99)),
    }


def fitted(run: Path) -> tuple[GalleryModel, dict[str, Any]]:
    """The generator fitted to a run's validation classes (its calibration data)."""
    from siamese.config import load_config
    from siamese.recognition import Recognizer
    from siamese.run_directory.data import load_training_data

    recognizer = Recognizer.load(run)
    _, validation, _ = load_training_data(load_config(run / "config.yaml"))
    assert validation is not None
    z = np.asarray(recognizer.embed_prepared(validation.x, 512), dtype=np.float32)
    return fit(z, validation.y.numpy(), recognizer.metric)


def main() -> None:
    import os

    sys.path.insert(0, str(HERE))
    from bench_cluster import ensure_run
    from machine import describe_machine

    os.environ.setdefault("SIAMESE_DATA_DIR", str(HERE.parent.parent / "shared" / "data"))
    document: dict[str, Any] = {"machine": describe_machine(), "date": time.strftime("%Y-%m-%d")}
    for name, config in (
        ("face_pretrained", "configs/face_pretrained.yaml"),
        ("glyphs_triplet", "configs/glyphs_triplet.yaml"),
    ):
        _, report = fitted(ensure_run(name, config))
        document[name] = report
        print(
            f"{name}: shrink {report['shrink']}, tau {report['tau']}, KS genuine "
            f"{report['ks_genuine']:.3f}, impostor {report['ks_impostor']:.3f}",
            flush=True,
        )
    path = HERE / "results" / "realistic_galleries.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
