"""The package layout README's Development section describes: few top-level modules, every
package saying what it owns, and imports that follow the layering each package states."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "siamese"

TOP_LEVEL_MODULES = {
    "__init__",
    "__main__",
    "errors",
    "distances",
    "mining",
    "atomic_files",
    "cache",
    "devices",
    "lazy_exports",
}

# Which parts of siamese each package (or top-level module) may import, besides itself and
# `errors` and `lazy_exports`: whole layers, no module-by-module exceptions. Lower layers never import higher ones.
MAY_IMPORT: dict[str, set[str]] = {
    "atomic_files": set(),
    "lazy_exports": set(),
    "cache": {"atomic_files"},
    "devices": set(),
    "distances": set(),
    "mining": set(),
    "config": {"atomic_files", "devices", "losses"},
    "faces": {"atomic_files", "cache"},
    "data": {"atomic_files", "<version>", "cache", "faces"},
    "losses": {"distances", "mining"},
    "models": {"atomic_files", "cache", "faces", "losses"},
    "evaluation": {"data", "devices", "distances"},
    "plots": {"evaluation"},
    "run_directory": {"atomic_files", "config", "data"},
    "recognition": {
        "atomic_files",
        "cache",
        "data",
        "devices",
        "distances",
        "evaluation",
        "faces",
        "models",
        "run_directory",
    },
    "training": {
        "atomic_files",
        "config",
        "devices",
        "data",
        "distances",
        "evaluation",
        "faces",
        "losses",
        "models",
        "recognition",
        "run_directory",
    },
    "run_evaluation": {
        "atomic_files",
        "config",
        "devices",
        "data",
        "distances",
        "evaluation",
        "models",
        "plots",
        "run_directory",
    },
    "experiments": {
        "atomic_files",
        "config",
        "plots",
        "run_directory",
        "run_evaluation",
        "training",
    },
    "service": {"cache", "data", "devices", "export", "recognition"},
    "clustering": {"atomic_files", "data", "devices", "evaluation", "recognition"},
    "export": {
        "atomic_files",
        "cache",
        "config",
        "data",
        "devices",
        "models",
        "recognition",
        "run_directory",
    },
    "cli": {
        "<version>",
        "atomic_files",
        "cache",
        "clustering",
        "config",
        "devices",
        "data",
        "evaluation",
        "experiments",
        "export",
        "recognition",
        "run_directory",
        "run_evaluation",
        "service",
        "training",
    },
}


def owner(path: Path) -> str:
    """The layer a source file belongs to: its package or a top-level module."""
    return path.relative_to(SRC).with_suffix("").parts[0]


def imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.ImportFrom) and node.module):
            continue
        parts = node.module.split(".")
        if parts[0] != "siamese":
            continue
        if len(parts) == 1:
            layers.add("<version>" if [a.name for a in node.names] == ["__version__"] else "*")
        else:
            layers.add(parts[1])
    return layers


# Within `data`: which of its parts each part may import (besides itself, `errors`, `cache`,
# `atomic_files` and `faces`). Parts lower in this list never import higher ones.
DATA_MAY_IMPORT: dict[str, set[str]] = {
    "labeled": set(),
    "image_files": set(),
    "transforms": set(),
    "sampling": set(),
    "derived": {"labeled"},
    "arrays": {"labeled"},
    "splits": {"labeled"},
    "datasets": {"labeled", "image_files"},
    "folders": {"labeled", "image_files", "derived"},
    "batches": {"labeled", "folders"},
    "fingerprints": {"labeled", "batches", "folders"},
    "sources": {"labeled", "arrays", "splits", "datasets", "folders", "derived"},
    "local_copies": {"datasets", "sources"},
}


def data_part(module: str) -> str | None:
    """The part of `data` a dotted module name belongs to (None outside data)."""
    parts = module.split(".")
    return parts[2] if parts[:2] == ["siamese", "data"] and len(parts) > 2 else None


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in sorted((SRC / "data").rglob("*.py"))
        if p.name != "__init__.py" or p.parent != SRC / "data"
    ],
    ids=lambda p: str(p.relative_to(SRC)),
)
def test_data_parts_follow_their_layers(path: Path) -> None:
    part = path.relative_to(SRC / "data").with_suffix("").parts[0]
    allowed = DATA_MAY_IMPORT[part] | {part}
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            name = data_part(node.module)
            if name is not None:
                imported.add(name)
            elif node.module == "siamese.data":
                imported.update(a.name for a in node.names)
    wrong = sorted(imported - allowed)
    assert not wrong, f"data/{path.relative_to(SRC / 'data')} ({part}) imports {wrong}"


def test_the_top_level_holds_only_the_shared_modules() -> None:
    modules = {p.stem for p in SRC.glob("*.py")}
    assert modules == TOP_LEVEL_MODULES
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert packages == {
        "cli",
        "clustering",
        "config",
        "data",
        "evaluation",
        "export",
        "faces",
        "losses",
        "models",
        "experiments",
        "plots",
        "recognition",
        "run_directory",
        "run_evaluation",
        "service",
        "training",
    }


@pytest.mark.parametrize("init", sorted(SRC.rglob("__init__.py")), ids=lambda p: p.parent.name)
def test_every_package_says_what_it_owns_and_may_import(init: Path) -> None:
    docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    assert len(docstring) > 150, f"{init} needs a paragraph on what the package owns"
    if init.parent != SRC:
        assert "import" in docstring.lower(), f"{init}: say what the package may import"


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(SRC.rglob("*.py")) if owner(p) in MAY_IMPORT],
    ids=lambda p: str(p.relative_to(SRC)),
)
def test_imports_follow_the_layers(path: Path) -> None:
    layer = owner(path)
    allowed = MAY_IMPORT[layer] | {layer, "errors", "lazy_exports"}
    wrong = sorted(imported_layers(path) - allowed)
    assert not wrong, f"{path.relative_to(SRC)} ({layer}) imports {wrong}"


@pytest.mark.parametrize(
    "name",
    [
        "fit",
        "train_run",
        "evaluate_run",
        "load_model",
        "save_model",
        "load_siamese_net",
        "PKSampler",
        "TupleBatches",
        "RunConfig",
        "load_config",
        "split_data",
        "load_dataset",
        "TripletLoss",
    ],
)
def test_public_names_import_from_the_top(name: str) -> None:
    import siamese

    assert getattr(siamese, name) is not None
    assert name in siamese.__all__


def test_the_documented_module_paths_import() -> None:
    for module, name in [
        ("siamese.training", "fit"),
        ("siamese.config", "load_config"),
        ("siamese.run_evaluation", "evaluate_run"),
        ("siamese.evaluation.verification", "verification_metrics"),
        ("siamese.evaluation.retrieval", "retrieval_metrics"),
        ("siamese.evaluation.fewshot", "episodic_accuracy"),
        ("siamese.models", "save_model"),
        ("siamese.data.sampling.pk_sampler", "PKSampler"),
        ("siamese.data.sampling.offline_tuples", "TupleBatches"),
        ("siamese.data.sampling.pair_protocol", "pair_split"),
        ("siamese.cli", "main"),
    ]:
        assert hasattr(importlib.import_module(module), name), (module, name)


def test_the_tests_mirror_the_packages() -> None:
    """Every folder of tests/ is a package of src/siamese (tests/data/folders tests
    siamese.data.folders), so a test's place says what it tests."""
    tests = Path(__file__).resolve().parent
    folders = [
        p.relative_to(tests)
        for p in tests.rglob("*")
        if p.is_dir() and p.name not in ("__pycache__", "scripts")
    ]
    assert folders, "tests/ has no package folders"
    orphans = sorted(str(f) for f in folders if not (SRC / f / "__init__.py").is_file())
    assert not orphans, f"tests/{orphans} mirror no package of src/siamese"
    flat = sorted(p.name for p in tests.glob("test_*.py"))
    top_level = {f"test_{m}.py" for m in TOP_LEVEL_MODULES}
    cross_cutting = {
        "test_layout.py",
        "test_readme.py",
        "test_recipe_results.py",
        "test_crash_isolation.py",
        "test_docstring_examples.py",
    }
    assert set(flat) <= top_level | cross_cutting, (
        f"{sorted(set(flat) - top_level - cross_cutting)} at the top of tests/: put each in "
        "the folder of the package it tests"
    )
