"""A linear softmax classifier on frozen embeddings (a "linear probe") and its accuracy.

The tutorials train a softmax layer on a triplet network's embeddings (88 % on MNIST) and use
its output for novelty detection (`evaluation.novelty`). The probe is multinomial logistic
regression: it minimises the mean cross-entropy plus `weight_decay / 2 · ‖W‖²` (the bias is not
penalised) with full-batch L-BFGS, which converges in a few dozen steps on embeddings and
takes a few seconds for 60,000 × 64 on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from siamese.errors import ConfigError, DataError


@dataclass
class LinearProbe:
    """A trained softmax classifier over embeddings.

    Attributes:
        weight: (C, D) float32 class weights.
        bias: (C,) float32 class biases.
        classes: (C,) int64 original label of each output, ascending.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    classes: torch.Tensor

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings → (N, C) unnormalised class scores."""
        embeddings = _check_embeddings(embeddings, "embeddings")
        if embeddings.shape[1] != self.weight.shape[1]:
            raise DataError(
                f"the probe was trained on {self.weight.shape[1]}-d embeddings but got "
                f"{embeddings.shape[1]}-d ones: use embeddings from the same model"
            )
        return embeddings.to(self.weight) @ self.weight.T + self.bias

    def predict_proba(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings → (N, C) class probabilities (rows sum to 1), columns in the
        order of `classes`."""
        return torch.softmax(self.logits(embeddings), dim=1)

    def predict(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, D) embeddings → (N,) int64 predicted labels (original label values)."""
        return self.classes[self.logits(embeddings).argmax(dim=1).cpu()]


def _check_embeddings(embeddings: torch.Tensor, name: str) -> torch.Tensor:
    if embeddings.ndim != 2:
        raise DataError(f"{name} must be (N, D), got shape {tuple(embeddings.shape)}")
    embeddings = embeddings.detach().float()
    if not torch.isfinite(embeddings).all():
        raise DataError(f"{name} contain NaN or inf: check the model that produced them")
    return embeddings


def train_probe(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 100,
    lr: float = 1.0,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> LinearProbe:
    """Fit a softmax classifier on frozen embeddings.

    Args:
        embeddings: (N, D) embeddings (not changed; no gradient flows back to the model).
        labels: (N,) int64 labels, any values (they are mapped to 0 … C − 1 and back).
        epochs: L-BFGS iterations, each one pass over the full batch.
        lr: L-BFGS step size (1 with the strong-Wolfe line search).
        weight_decay: L2 penalty on the weights, `weight_decay / 2 · ‖W‖²` added to the mean
            cross-entropy (scikit-learn's `LogisticRegression(C=1 / (weight_decay · N))`).
        seed: seeds the small random initial weights, so that runs repeat exactly.
    Returns:
        LinearProbe.
    """
    embeddings = _check_embeddings(embeddings, "embeddings")
    labels = labels.detach().cpu().flatten()
    if labels.numel() != embeddings.shape[0]:
        raise DataError(f"{embeddings.shape[0]} embeddings but {labels.numel()} labels")
    if epochs < 1 or lr <= 0 or weight_decay < 0:
        raise ConfigError(
            f"a probe needs epochs >= 1, lr > 0, weight_decay >= 0; "
            f"got {epochs}, {lr}, {weight_decay}"
        )
    classes, targets = torch.unique(labels, return_inverse=True)
    if classes.numel() < 2:
        raise DataError(
            f"a classifier needs at least 2 classes; these {labels.numel()} labels have "
            f"{classes.numel()}"
        )
    targets = targets.to(embeddings.device)
    g = torch.Generator().manual_seed(seed)
    weight = (0.01 * torch.randn(classes.numel(), embeddings.shape[1], generator=g)).to(embeddings)
    weight.requires_grad_(True)
    bias = torch.zeros(classes.numel(), device=embeddings.device, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=lr,
        max_iter=epochs,
        history_size=20,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(embeddings @ weight.T + bias, targets)
        loss = loss + 0.5 * weight_decay * (weight * weight).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return LinearProbe(weight=weight.detach(), bias=bias.detach(), classes=classes)


def probe_accuracy(
    train_embeddings: torch.Tensor,
    train_labels: torch.Tensor,
    test_embeddings: torch.Tensor,
    test_labels: torch.Tensor,
    epochs: int = 100,
    lr: float = 1.0,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> float:
    """Accuracy on test embeddings of a probe trained on the training embeddings.

    Args:
        train_embeddings: (N, D); train_labels: (N,) int64.
        test_embeddings: (M, D); test_labels: (M,) int64. A test label never seen in training
            counts as an error.
        epochs, lr, weight_decay, seed: see `train_probe`.
    Returns:
        Share of test examples classified right, in [0, 1].
    """
    test_labels = test_labels.detach().cpu().flatten()
    if test_labels.numel() == 0 or test_labels.numel() != test_embeddings.shape[0]:
        raise DataError(
            f"probe accuracy needs a non-empty test set with one label per embedding; got "
            f"{test_embeddings.shape[0]} embeddings and {test_labels.numel()} labels"
        )
    probe = train_probe(train_embeddings, train_labels, epochs, lr, weight_decay, seed)
    return float((probe.predict(test_embeddings) == test_labels).double().mean())
