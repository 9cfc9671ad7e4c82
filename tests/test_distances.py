import math

import pytest
import torch

from siamese.distances import batched_pairwise_distances, paired_distances, pairwise_distances
from siamese.errors import ConfigError

METRICS = ["euclidean", "sqeuclidean", "cosine"]


def reference_distance(a: list[float], b: list[float], metric: str) -> float:
    """Plain-Python float64 definition of each metric."""
    sq = sum((u - v) ** 2 for u, v in zip(a, b, strict=True))
    if metric == "sqeuclidean":
        return sq
    if metric == "euclidean":
        return math.sqrt(sq)
    dot = sum(u * v for u, v in zip(a, b, strict=True))
    na = math.sqrt(sum(u * u for u in a))
    nb = math.sqrt(sum(v * v for v in b))
    return 1.0 - dot / (max(na, 1e-12) * max(nb, 1e-12))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(("n", "m", "d"), [(1, 1, 1), (5, 7, 3), (16, 9, 32)])
def test_pairwise_matches_reference(metric: str, n: int, m: int, d: int) -> None:
    x, y = torch.randn(n, d), torch.randn(m, d)
    got = pairwise_distances(x, y, metric)
    assert got.dtype == torch.float32
    want = torch.tensor(
        [
            [
                reference_distance(x[i].double().tolist(), y[j].double().tolist(), metric)
                for j in range(m)
            ]
            for i in range(n)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_self_distances_have_exact_zero_diagonal_and_symmetry(metric: str) -> None:
    x = torch.randn(50, 8) * 100  # large values make the addmm cancellation visible
    dist = pairwise_distances(x, metric=metric)
    assert torch.equal(dist.diagonal(), torch.zeros(50))
    torch.testing.assert_close(dist, dist.T)
    assert (dist >= 0).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_is_computed_in_float32(dtype: torch.dtype) -> None:
    x = torch.randn(6, 4).to(dtype)
    assert pairwise_distances(x).dtype == torch.float32


@pytest.mark.parametrize("metric", METRICS)
def test_gradient_is_finite_for_identical_and_zero_embeddings(metric: str) -> None:
    for x in (torch.ones(4, 3), torch.zeros(4, 3)):
        x = x.clone().requires_grad_(True)
        pairwise_distances(x, metric=metric).sum().backward()
        assert torch.isfinite(x.grad).all()
        y = x.detach().clone().requires_grad_(True)
        paired_distances(y, y.detach().clone(), metric).sum().backward()
        assert torch.isfinite(y.grad).all()


def test_euclidean_gradcheck() -> None:
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: pairwise_distances(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a: pairwise_distances(a, metric="cosine"), (x,))
    assert torch.autograd.gradcheck(lambda a: pairwise_distances(a), (x,))
    assert torch.autograd.gradcheck(lambda a, b: pairwise_distances(a, b, "sqeuclidean"), (x, y))
    assert torch.autograd.gradcheck(lambda a: pairwise_distances(a, metric="sqeuclidean"), (x,))


@pytest.mark.parametrize("metric", METRICS)
def test_paired_and_batched_agree_with_pairwise(metric: str) -> None:
    x, y = torch.randn(3, 5, 4), torch.randn(3, 6, 4)
    batched = batched_pairwise_distances(x, y, metric)
    for e in range(3):
        torch.testing.assert_close(
            batched[e], pairwise_distances(x[e], y[e], metric), atol=1e-5, rtol=1e-5
        )
    a, b = torch.randn(7, 4), torch.randn(7, 4)
    torch.testing.assert_close(
        paired_distances(a, b, metric),
        pairwise_distances(a, b, metric).diagonal(),
        atol=1e-5,
        rtol=1e-5,
    )


def test_unknown_metric_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="manhattan"):
        pairwise_distances(torch.zeros(2, 2), metric="manhattan")


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("block_rows", [1, 3, 7, 100])
def test_distance_blocks_reassemble_the_full_matrix(metric: str, block_rows: int) -> None:
    from siamese.distances import distance_blocks

    x, y = torch.randn(7, 4) * 10, torch.randn(5, 4)
    for other in (None, y):
        full = pairwise_distances(x, other, metric)
        blocks = dict(distance_blocks(x, other, metric, block_rows))
        assert sorted(blocks) == list(range(0, 7, block_rows))
        torch.testing.assert_close(torch.cat([blocks[s] for s in sorted(blocks)]), full)
    with pytest.raises(ValueError, match="block_rows"):
        next(distance_blocks(x, metric=metric, block_rows=0))
