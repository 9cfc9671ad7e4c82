import pytest
import torch

from siamese.data.labeled import LabeledData
from siamese.data.sampling.pk_sampler import PKSampler
from siamese.errors import ConfigError, TrainingDivergedError
from siamese.losses import TripletLoss
from siamese.models import ConvNet, EmbeddingNet
from siamese.training.loop import fit, warmup_cosine


def toy_data(n_classes: int = 6, per_class: int = 16) -> LabeledData:
    """Classes that differ by which quadrant is bright, plus noise."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    x = torch.randint(0, 60, (y.numel(), 1, 16, 16), generator=g, dtype=torch.uint8)
    for c in range(n_classes):
        r, col = divmod(c, 3)
        x[y == c, :, r * 8 : r * 8 + 8, col * 5 : col * 5 + 5] = 255
    return LabeledData(x=x, y=y, classes=[str(c) for c in range(n_classes)])


def test_fit_lowers_the_loss_and_records_telemetry() -> None:
    data = toy_data()
    model = EmbeddingNet(ConvNet(widths=(8, 16)), embedding_dim=8)
    sampler = PKSampler(data.y, p=3, k=4, seed=0)
    history = fit(
        model,
        data,
        TripletLoss(margin=0.5, mining="hard"),
        sampler,
        epochs=6,
        lr=1e-2,
        log_every=2,
        show_progress=False,
    )
    losses = [r["loss"] for r in history.records]
    assert losses[-1] < losses[0]
    assert history.images == 6 * len(sampler) * 12
    assert {
        "step",
        "epoch",
        "loss",
        "active_fraction",
        "mean_pos_dist",
        "mean_neg_dist",
        "lr",
        "images_per_s",
    } <= set(history.records[0])
    assert not model.training


def test_divergence_is_a_clear_error() -> None:
    data = toy_data()
    model = EmbeddingNet(ConvNet(widths=(8,)), embedding_dim=4, normalize=False)
    with torch.no_grad():
        model.projection.weight.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="lower the learning rate"):
        fit(model, data, TripletLoss(), PKSampler(data.y, 3, 4), epochs=1, show_progress=False)


def test_schedule_and_bad_epochs() -> None:
    factor = warmup_cosine(total_steps=100, warmup_steps=10)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(100) == pytest.approx(0.0, abs=1e-12)
    data = toy_data()
    with pytest.raises(ConfigError, match="epochs"):
        fit(
            EmbeddingNet(ConvNet(widths=(8,)), 4),
            data,
            TripletLoss(),
            PKSampler(data.y, 3, 4),
            epochs=0,
        )


def test_augmentation_is_applied_per_batch_and_seeded() -> None:
    from siamese.data.transforms import RandomAffine

    data = toy_data()
    seen: list[torch.Tensor] = []

    class Recording(RandomAffine):
        def __call__(
            self, x: torch.Tensor, generator: torch.Generator | None = None
        ) -> torch.Tensor:
            out = super().__call__(x, generator=generator)
            seen.append(out)
            return out

    def train(seed: int) -> list[float]:
        torch.manual_seed(0)
        model = EmbeddingNet(ConvNet(widths=(8,)), embedding_dim=4)
        history = fit(
            model,
            data,
            TripletLoss(),
            PKSampler(data.y, p=3, k=4, seed=0),
            epochs=1,
            log_every=1,
            show_progress=False,
            augment=Recording(degrees=15, translate=(0.1, 0.1)),
            seed=seed,
        )
        return [r["loss"] for r in history.records]

    first = train(seed=1)
    batches = len(seen)
    assert batches == len(PKSampler(data.y, p=3, k=4)) and seen[0].dtype == torch.uint8
    assert first == train(seed=1)  # same seed, same augmented batches, same losses
    assert all(torch.equal(a, b) for a, b in zip(seen[:batches], seen[batches:], strict=True))
    train(seed=2)
    assert not torch.equal(seen[0], seen[2 * batches])
