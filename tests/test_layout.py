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
    "devices",
}

# Which parts of siamese each package (or top-level module) may import, besides itself and
# `errors`. Lower layers never import higher ones.
MAY_IMPORT: dict[str, set[str]] = {
    "atomic_files": set(),
    "devices": set(),
    "distances": set(),
    "mining": set(),
    "config": {"atomic_files", "devices", "losses.catalog"},
    "data": {"atomic_files", "<version>", "faces"},
    "faces": {"atomic_files", "data.cache"},
    "losses": {"distances", "mining"},
    "models": {"atomic_files", "faces", "losses"},
    "evaluation": {"data", "devices", "distances"},
    "plots": {"evaluation"},
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
        "recognition.thresholds",
    },
    "recognition": {
        "atomic_files",
        "data",
        "devices",
        "distances",
        "evaluation",
        "faces",
        "models",
    },
    "evaluation.run": {
        "atomic_files",
        "config",
        "devices",
        "data",
        "distances",
        "evaluation",
        "models",
        "plots",
        "training.setup",
        "training.telemetry",
    },
    "pipelines": {"atomic_files", "config", "evaluation.run", "plots", "training"},
    "service": {"data", "devices", "export", "recognition"},
    "clustering": {"atomic_files", "data", "devices", "evaluation", "recognition"},
    "export": {
        "atomic_files",
        "config",
        "data",
        "devices",
        "models",
        "recognition",
        "training.setup",
    },
    "cli": {
        "<version>",
        "atomic_files",
        "clustering",
        "config",
        "devices",
        "data",
        "evaluation.run",
        "export",
        "pipelines",
        "recognition",
        "service",
        "training",
    },
}


def owner(path: Path) -> str:
    """The layer a source file belongs to: its package, `evaluation.run`, or a top module."""
    parts = path.relative_to(SRC).with_suffix("").parts
    if parts[:2] == ("evaluation", "run"):
        return "evaluation.run"
    return parts[0]


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
        elif parts[1:3] == ["evaluation", "run"]:
            layers.add("evaluation.run")
        elif parts[1:3] == ["losses", "catalog"]:
            layers.add("losses.catalog")
        elif parts[1] in ("training", "recognition", "data") and len(parts) > 2:
            layers.add(f"{parts[1]}.{parts[2]}")
        else:
            layers.add(parts[1])
    return layers


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
        "pipelines",
        "plots",
        "recognition",
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
    allowed = MAY_IMPORT[layer] | {layer, "errors"}
    # "training" allows every module of the package; "training.setup" that one alone.
    wrong = sorted(
        name
        for name in imported_layers(path)
        if name not in allowed and name.split(".")[0] not in allowed
    )
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
        ("siamese.evaluation.run", "evaluate_run"),
        ("siamese.evaluation.verification", "verification_metrics"),
        ("siamese.evaluation.retrieval", "retrieval_metrics"),
        ("siamese.evaluation.fewshot", "episodic_accuracy"),
        ("siamese.models", "save_model"),
        ("siamese.data.pk_sampler", "PKSampler"),
        ("siamese.data.tuples", "TupleBatches"),
        ("siamese.data.pair_protocol", "pair_split"),
        ("siamese.cli", "main"),
    ]:
        assert hasattr(importlib.import_module(module), name), (module, name)
