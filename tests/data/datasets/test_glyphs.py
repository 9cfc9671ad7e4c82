import os

import numpy as np
import pytest
import torch

from siamese.data.datasets.glyphs import (
    GLYPH_ALPHABETS,
    GLYPH_FONTS,
    load_glyphs,
    lookalike_characters,
    render_templates,
)
from siamese.errors import ConfigError


@pytest.fixture(scope="module")
def glyphs():
    return load_glyphs(variants=2, seed=0, use_cache=False)


def test_shapes_dtypes_and_counts(glyphs) -> None:
    n_classes = len(glyphs.classes)
    assert 130 <= n_classes <= 177
    assert glyphs.x.dtype == torch.uint8 and glyphs.x.shape[1:] == (1, 28, 28)
    assert glyphs.y.dtype == torch.int64 and torch.equal(glyphs.class_ids, torch.arange(n_classes))
    writers = glyphs.meta["writer"]
    assert set(writers.tolist()) == set(range(len(GLYPH_FONTS)))
    # Every font covers every alphabet: 16 fonts × 2 variants per class.
    assert torch.equal(torch.bincount(glyphs.y), torch.full((n_classes,), 2 * len(GLYPH_FONTS)))
    # Ink is visible and inside the frame (no glyph clipped at the border).
    assert (glyphs.x.flatten(1).max(dim=1).values > 200).all()
    border = torch.cat(
        [glyphs.x[..., 0, :], glyphs.x[..., -1, :], glyphs.x[..., :, 0], glyphs.x[..., :, -1]], -1
    )
    assert border.float().mean() < 2.0


def test_lookalike_characters_are_one_class(glyphs) -> None:
    names = set(glyphs.classes)
    assert {"A", "O", "o", "B", "x", "0", "Ж", "Ω", "λ"} <= names
    assert not {"А", "О", "о", "Α", "Ο", "В", "х"} & names  # Cyrillic/Greek twins of Latin letters
    assert {"O", "Q", "Е", "Ё", "l", "I"} - {"Е"} <= names  # similar is not identical


def test_lookalike_detection_on_synthetic_templates() -> None:
    t = np.zeros((3, 2, 56, 56), dtype=np.float32)
    t[0, :, 10:40, 20:24] = 1  # a bar
    t[1, :, 10:40, 20:24] = 1  # the same bar: a twin of class 0
    t[2, :, 10:40, 20:30] = 1  # a wider bar
    assert lookalike_characters(t, np.ones((3, 2), dtype=bool)).tolist() == [False, True, False]


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    a = load_glyphs(variants=1, seed=3, alphabets=("digits",), use_cache=False)
    b = load_glyphs(variants=1, seed=3, alphabets=("digits",), use_cache=False)
    c = load_glyphs(variants=1, seed=4, alphabets=("digits",), use_cache=False)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    assert a.classes == list(GLYPH_ALPHABETS["digits"])


def test_cache_round_trip(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SIAMESE_CACHE_DIR", str(tmp_path))
    first = load_glyphs(variants=1, seed=0, alphabets=("digits", "latin_upper"))
    files = list(tmp_path.glob("glyphs-*.npz"))
    assert len(files) == 1
    os.utime(files[0])
    second = load_glyphs(variants=1, seed=0, alphabets=("digits", "latin_upper"))
    assert torch.equal(first.x, second.x) and first.classes == second.classes
    assert torch.equal(first.meta["writer"], second.meta["writer"])
    # A corrupt cache file is regenerated, not trusted.
    files[0].write_bytes(b"not an npz")
    third = load_glyphs(variants=1, seed=0, alphabets=("digits", "latin_upper"))
    assert torch.equal(first.x, third.x)


def test_unwritable_cache_warns_and_still_returns_data(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("SIAMESE_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(UserWarning, match="could not write the cache"):
        data = load_glyphs(variants=1, alphabets=("digits",))
    assert len(data) == 10 * len(GLYPH_FONTS)


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="variants"):
        load_glyphs(variants=0)
    with pytest.raises(ConfigError, match="klingon"):
        load_glyphs(alphabets=("klingon",))
    with pytest.raises(ConfigError, match=r"nofont\.ttf"):
        render_templates(["A"], ("nofont.ttf",))
