"""Shared test setup: a private cache directory and a deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from loopback_http import server  # noqa: F401  (the 127.0.0.1 HTTP server fixture)


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


@pytest.fixture
def repo_root() -> Path:
    """The repository's root folder (where configs/ and README.md are)."""
    return Path(__file__).resolve().parent.parent
