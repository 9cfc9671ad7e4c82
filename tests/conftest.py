"""Shared test setup: a private cache directory and a deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.loopback_http import server  # noqa: F401  (the 127.0.0.1 HTTP server fixture)
from tests.postgres_server import postgres  # noqa: F401  (a throwaway PostgreSQL cluster)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Generated data goes to a cache of the test session's own, not the user's."""
    os.environ["SIAMESE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def data_dir() -> Path | None:
    """The real datasets' directory from SIAMESE_DATA_DIR, or None."""
    value = os.environ.get("SIAMESE_DATA_DIR")
    return Path(value) if value and Path(value).is_dir() else None


def celebrity_photos(split: str, person: str, count: int | None = None) -> list[Path]:
    """The 5-celebrity-faces photos of one person (sorted), from the shared archive,
    extracted once into the test session's cache."""
    from siamese.cache import cache_dir
    from siamese.data.datasets.archives import cached_extraction

    root = data_dir()
    assert root is not None, "SIAMESE_DATA_DIR is not set"
    archive = root / "5-celebrity-faces" / "5-celebrity-faces-dataset.tar.gz"
    extracted = cached_extraction(archive, cache_dir() / "extracted")
    while not (extracted / split).is_dir():  # the archive's top folder
        (extracted,) = [p for p in extracted.iterdir() if p.is_dir()]
    return sorted((extracted / split / person).iterdir())[:count]


@pytest.fixture
def repo_root() -> Path:
    """The repository's root folder (where configs/ and README.md are)."""
    return Path(__file__).resolve().parent.parent


def small_digits_config(*overrides: str):  # type: ignore[no-untyped-def]
    """A seconds-long run on scikit-learn's 8×8 digits: 5 digits to train on, the other 5
    held out as validation classes (which calibrate the model's thresholds)."""
    from siamese.config import load_config

    return load_config(
        None,
        [
            "data.name=digits",
            "data.validation_fraction=0.5",
            "model.options.widths=[8, 16]",
            "model.embedding_dim=16",
            "batches.p=5",
            "batches.k=4",
            "train.epochs=2",
            "train.validate_every=0",
            *overrides,
        ],
    )


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained digits run with calibrated thresholds (read-only: copy it to change it)."""
    from siamese.training.training_run import train_run

    out = tmp_path_factory.mktemp("digits_model") / "run"
    train_run(small_digits_config(), out, quiet=True)
    return out
