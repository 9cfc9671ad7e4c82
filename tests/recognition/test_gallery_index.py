"""The approximate index kinds (`gallery_index`, `IndexSearch`) against a brute-force float64
search, their tuning to a stated agreement with exact search, and `auto`'s choice."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from siamese.errors import ConfigError
from siamese.recognition import gallery_index
from siamese.recognition.gallery_search import (
    AUTO_KINDS,
    ExactSearch,
    IndexSearch,
    make_search,
    search_for_size,
)

pytest.importorskip("faiss")

KINDS = ("ivf", "hnsw", "ivfpq")


def _gallery(identities: int, per: int, dim: int, seed: int, spread: float = 0.35):
    """Identities × examples around random centres: (vectors, example ids, identity ids)."""
    g = np.random.default_rng(seed)
    centres = g.standard_normal((identities, dim)).astype(np.float32)
    owners = np.repeat(np.arange(identities, dtype=np.int64), per)
    vectors = centres[owners] + spread * g.standard_normal((owners.size, dim)).astype(np.float32)
    ids = np.arange(owners.size, dtype=np.int64) * 3 + 7  # ids are not row positions
    return vectors, ids, owners, centres


def _probes(centres: np.ndarray, count: int, seed: int, spread: float = 0.35) -> torch.Tensor:
    g = np.random.default_rng(seed)
    pick = g.integers(0, centres.shape[0], count)
    noise = spread * g.standard_normal((count, centres.shape[1]))
    return torch.from_numpy((centres[pick] + noise).astype(np.float32))


def _brute_force(
    vectors: np.ndarray, owners: np.ndarray, probes: torch.Tensor, metric: str, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's k best identities by their nearest example, in float64."""
    a, b = probes.double().numpy(), vectors.astype(np.float64)
    if metric == "cosine":
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        d = 1.0 - a @ b.T
    else:
        d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
    identities = np.unique(owners)
    per = np.full((a.shape[0], identities.size), np.inf)
    for column, identity in enumerate(identities):
        per[:, column] = d[:, owners == identity].min(axis=1)
    order = np.argsort(per, axis=1, kind="stable")[:, :k]
    return identities[order], np.take_along_axis(per, order, axis=1)


def _exhaustive(search: IndexSearch) -> None:
    """Parameters that visit everything: the index then searches exactly."""
    index = search.index
    assert index is not None
    if index.kind == "hnsw":
        index.set_params({"ef_search": 4096})
    elif index.kind == "ivf":
        index.set_params({"nprobe": index.index.nlist})
    else:
        index.set_params({"nprobe": index.index.nlist, "shortlist": 4096})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_an_index_visiting_everything_finds_what_a_float64_brute_force_finds(
    kind: str, metric: str
) -> None:
    vectors, ids, owners, centres = _gallery(300, 5, 16, seed=1)
    search = IndexSearch(kind, metric, "nearest", 16)
    search.reset(vectors, ids, owners)
    assert search.index is not None and search.index.kind == kind
    _exhaustive(search)
    probes = _probes(centres, 40, seed=2)
    want_ids, want_d = _brute_force(vectors, owners, probes, metric, 5)
    got = search.top(probes, 5)
    assert np.array_equal(got.identity_ids.numpy(), want_ids)
    assert np.allclose(got.distances.numpy(), want_d, atol=2e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_tuning_meets_its_target_and_holds_on_probes_it_never_saw(kind: str) -> None:
    vectors, ids, owners, centres = _gallery(1000, 5, 32, seed=3)
    search = IndexSearch(kind, "euclidean", "nearest", 32)
    search.reset(vectors, ids, owners)
    tuning = search.tuning
    assert tuning is not None
    assert tuning.met and tuning.agreement >= 0.999 and tuning.probes == 2000
    assert tuning.params == search.index.params  # what was chosen is what is used
    # Held-out probes: the nearest identity agrees with the exact search's almost always.
    probes = _probes(centres, 1000, seed=4)
    exact = ExactSearch("euclidean", "nearest", 32)
    exact.reset(vectors, ids, owners)
    a, b = exact.top(probes, 1), search.top(probes, 1)
    same = (a.identity_ids == b.identity_ids) | torch.isclose(a.distances, b.distances)
    assert same.float().mean() >= 0.99
    # An approximate distance is never shorter than the exact one (strangers stay strangers).
    assert bool((b.distances >= a.distances - 1e-4).all())


def test_a_target_no_step_meets_is_reported_as_not_met() -> None:
    vectors, ids, owners, _ = _gallery(300, 5, 16, seed=5)
    search = IndexSearch("ivf", "euclidean", "nearest", 16, target=1.5)
    search.reset(vectors, ids, owners)
    assert search.tuning is not None and not search.tuning.met
    assert search.index is not None
    assert search.tuning.params == search.index.ladder(1)[-1]  # the dearest step was kept


def test_a_small_gallery_is_searched_exhaustively_and_exactly() -> None:
    vectors, ids, owners, centres = _gallery(50, 4, 8, seed=6)  # 200 < FLAT_BELOW
    search = IndexSearch("hnsw", "euclidean", "nearest", 8)
    search.reset(vectors, ids, owners)
    assert search.index is not None and search.index.kind == "flat" and search.tuning is None
    probes = _probes(centres, 30, seed=7)
    want_ids, want_d = _brute_force(vectors, owners, probes, "euclidean", 3)
    got = search.top(probes, 3)
    assert np.array_equal(got.identity_ids.numpy(), want_ids)
    assert np.allclose(got.distances.numpy(), want_d, atol=2e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_added_examples_are_found_and_removed_identities_never_return(kind: str) -> None:
    vectors, ids, owners, centres = _gallery(300, 5, 16, seed=8)
    search = IndexSearch(kind, "euclidean", "nearest", 16)
    search.reset(vectors, ids, owners)
    probes = torch.from_numpy(centres[:20])
    before = search.top(probes, 1).identity_ids[:, 0]
    assert before.tolist() == list(range(20))
    search.remove_identities(list(range(10)))
    after = search.top(probes, 3).identity_ids
    assert not bool(torch.isin(after, torch.arange(10)).any())
    far = centres[:3] + 50.0
    search.add(far, np.array([10_001, 10_002, 10_003]), np.array([900, 900, 901]))
    found = search.top(torch.from_numpy(far), 2)
    assert found.identity_ids[:, 0].tolist() == [900, 900, 901]
    assert float(found.distances[0, 0]) == pytest.approx(0.0, abs=1e-3)
    assert len(search) == 1500 - 50 + 3 and search.changes() == 53
    search.remove_identities([900])
    assert 900 not in search.top(torch.from_numpy(far), 3).identity_ids.tolist()[0]


def test_an_empty_index_search_answers_nothing() -> None:
    search = IndexSearch("ivf", "euclidean", "nearest", 8)
    search.reset(np.empty((0, 8), np.float32), np.empty(0, np.int64), np.empty(0, np.int64))
    top = search.top(torch.zeros(2, 8), 3)
    assert (top.identity_ids == -1).all() and torch.isinf(top.distances).all()


def test_centroid_scoring_refuses_an_index_and_auto_picks_exact_for_it() -> None:
    with pytest.raises(ConfigError, match="centroid"):
        make_search("hnsw", "euclidean", "centroid", 8)
    assert search_for_size("auto", 10**8, "centroid") == "exact"


def test_auto_follows_its_measured_steps_and_faiss_is_the_old_name_of_ivf() -> None:
    for smallest, kind in AUTO_KINDS:
        assert search_for_size("auto", smallest) == kind
    assert search_for_size("auto", 0) == "exact"
    assert search_for_size("faiss", 5) == "ivf"
    with pytest.raises(ConfigError, match="unknown"):
        search_for_size("annoy", 5)


def test_cells_and_code_sizes_follow_the_stated_rules() -> None:
    assert gallery_index.cells_for(1_000_000) == 4000
    assert gallery_index.cells_for(10_000_000) == gallery_index.MAX_CELLS
    assert gallery_index.cells_for(2000) == 2000 // gallery_index.TRAIN_PER_CELL
    assert gallery_index.code_bytes_for(128) == 16
    assert gallery_index.code_bytes_for(64) == 8
    assert 100 % gallery_index.code_bytes_for(100) == 0


def test_exact_nearest_examples_match_a_float64_reference() -> None:
    vectors, ids, owners, centres = _gallery(40, 3, 8, seed=9)
    exact = ExactSearch("euclidean", "nearest", 8)
    exact.reset(vectors, ids, owners)
    probes = _probes(centres, 10, seed=10)
    d, where = exact.nearest_examples(probes, 4)
    full = ((probes.double().numpy()[:, None] - vectors[None].astype(np.float64)) ** 2).sum(2)
    want = np.sort(full, axis=1)[:, :4]
    assert np.allclose(d.numpy(), want, rtol=1e-4, atol=1e-3)
    assert np.allclose(np.take_along_axis(full, where.numpy(), 1), want, rtol=1e-4, atol=1e-3)
    assert math.isfinite(float(d.max()))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_exact_search_over_many_blocks_keeps_the_float64_answer(
    metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of 1,000 stored rows, 30 examples an identity: the running best per row is kept
    by selection (argpartition) and, after the first block, by gathering only what beats it."""
    from siamese.recognition import gallery_exact_search as gallery_search

    monkeypatch.setattr(gallery_search, "_BLOCK_ELEMENTS", 200 * 1000)
    vectors, ids, owners, centres = _gallery(120, 30, 12, seed=11, spread=0.6)
    exact = ExactSearch(metric, "nearest", 12)
    exact.reset(vectors, ids, owners)
    probes = _probes(centres, 200, seed=12, spread=0.6)
    want_ids, want_d = _brute_force(vectors, owners, probes, metric, 4)
    got = exact.top(probes, 4)
    assert np.array_equal(got.identity_ids.numpy(), want_ids)
    assert np.allclose(got.distances.numpy(), want_d, atol=2e-4)
    d, where = exact.nearest_examples(probes, 50)  # 50 >= the selection threshold
    assert bool((d[:, 1:] >= d[:, :-1]).all())  # nearest first
    ordered = torch.sort(where, dim=1).values
    assert bool((ordered[:, 1:] != ordered[:, :-1]).all())  # no row found twice
