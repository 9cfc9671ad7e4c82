"""The recipes, their committed results and README's Results table agree."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_recipes  # noqa: E402


def _section(text: str, name: str) -> str:
    start, end = f"<!-- {name}:start -->\n", f"\n<!-- {name}:end -->"
    assert start in text and end in text, f"no {name} section"
    return text.split(start, 1)[1].split(end, 1)[0]


def _results() -> dict[str, dict]:
    return bench_recipes.committed_results()


def test_every_benchmarked_recipe_is_a_config_and_every_tutorial_config_is_benchmarked() -> None:
    trained = {Path(bench_recipes.recipe_config(r)).stem for r in bench_recipes.RECIPES}
    configs = {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    assert trained <= configs
    # the quick start's (measured by bench_demo) and the face recipes (by bench_faces, beside
    # dlib's own pipeline; face_pretrained is the same network, calibrated for the gallery)
    assert configs - trained == {
        "glyphs_triplet",
        "celebrity_retrieval",
        "orl_pretrained",
        "face_pretrained",
    }
    # mnist_novelty measures mnist_retrieval's run, not a second training of the same recipe
    recipes = {r.name: r for r in bench_recipes.RECIPES}
    assert recipes["mnist_novelty"].run_of == "mnist_retrieval"


def test_every_recipe_has_committed_results_with_the_machine() -> None:
    results = _results()
    assert set(results) == {r.name for r in bench_recipes.RECIPES}
    for name, result in results.items():
        assert result["machine"]["cores"] >= 1 and result["versions"]["torch"], name
        assert result["wall_seconds"] > 0 and result["seed"] == 0, name


def test_readme_results_table_is_built_from_the_committed_results() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _section(readme, "recipe-results") == bench_recipes.readme_table(_results())


def test_benchmarks_sections_are_built_from_the_committed_results() -> None:
    text = (ROOT / "benchmarks" / "BENCHMARKS.md").read_text(encoding="utf-8")
    results = _results()
    for recipe in bench_recipes.RECIPES:
        expected = bench_recipes.benchmarks_section(results[recipe.name], recipe)
        assert _section(text, f"recipe_{recipe.name}") == expected, recipe.name


@pytest.mark.parametrize(
    ("goal", "value", "met"),
    [
        (bench_recipes.Goal("≥", "x", at_least=0.99), 0.99, True),
        (bench_recipes.Goal("≥", "x", at_least=0.99), 0.9899, False),
        (bench_recipes.Goal("≤", "x", at_most=180), 181.0, False),
        (bench_recipes.Goal("≤", "x", at_most=180), 179.5, True),
        (bench_recipes.Goal("≤", "x", at_most=180), None, None),
    ],
)
def test_goals_compare_as_stated(
    goal: bench_recipes.Goal, value: float | None, met: bool | None
) -> None:
    assert goal.met(value) is met


def test_lookup_walks_keys_with_spaces_and_hyphens() -> None:
    document = {"fewshot": {"20-way 1-shot": {"accuracy": 0.9}}}
    assert bench_recipes.lookup(document, "fewshot.20-way 1-shot.accuracy") == 0.9
    assert bench_recipes.lookup(document, "fewshot.5-way 1-shot.accuracy") is None


def test_readme_reference_column_sets_only_same_protocol_figures_beside_ours() -> None:
    # A figure measured under another protocol (another split, unbalanced pairs, other image
    # sizes) is not a comparison: without a peer in the same run, the reference column
    # carries a figure only when the recipe states it was published under its own protocol.
    results = _results()
    for recipe in bench_recipes.RECIPES:
        text = bench_recipes.reference(results[recipe.name], recipe)
        if "peer" not in results[recipe.name] and not recipe.claim:
            assert "%" not in text, (recipe.name, text)


def test_peers_run_in_the_same_invocation_under_the_same_protocol() -> None:
    results = _results()
    triplet = results["mnist_retrieval"]
    # PML's recipe with its own network and with ours: library and recipe told apart
    assert triplet["peer"]["network"] == "pml"
    assert triplet["peer_our_network"]["network"] == "ours"
    orl = results["orl_verification"]
    peer = orl["peer"]
    assert peer["same_people"] is True
    assert [f["data.test_fold"] for f in peer["folds"]] == [
        f["data.test_fold"] for f in orl["folds"]
    ]
    assert "configs/orl_contrastive_tutorial.yaml" == peer["config"]


def test_paired_wins_counts_folds_where_ours_is_strictly_better() -> None:
    ours = [{"EER": 0.1, "acc": 0.9}, {"EER": 0.2, "acc": 0.8}, {"EER": 0.3}]
    theirs = [{"EER": 0.2, "acc": 0.9}, {"EER": 0.2, "acc": 0.7}, {"EER": 0.1}]
    assert bench_recipes.paired_wins(ours, theirs, "EER", lower=True) == (1, 3)
    assert bench_recipes.paired_wins(ours, theirs, "acc", lower=False) == (1, 2)
    assert bench_recipes.paired_wins(ours, theirs, "AUC", lower=False) is None
