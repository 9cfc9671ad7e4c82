"""The examples in the public API's docstrings run, and print what they show.

Every `>>>` example in the modules that define `siamese.__all__`'s names (and the metric
modules of `siamese.evaluation`) is one test here, run with the standard library's `doctest`,
as torchmetrics runs its docstrings: an example that drifts from the code fails CI.
"""

from __future__ import annotations

import doctest
import importlib
import io
import types

import pytest

import siamese

METRIC_MODULES = (
    "siamese.evaluation.verification",
    "siamese.evaluation.retrieval",
    "siamese.evaluation.fewshot",
)
"""Modules whose functions are not in `siamese.__all__` but are documented with examples."""

MIN_PUBLIC_EXAMPLES = 15
"""At least this many public names carry examples, so the test cannot pass vacuously."""

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _public_objects() -> dict[str, object]:
    """`siamese.__all__`'s names → their objects (imported now)."""
    return {name: getattr(siamese, name) for name in siamese.__all__}


def _example_modules() -> list[types.ModuleType]:
    """The modules defining the public names, and the metric modules, each once, sorted."""
    names = {
        module
        for value in _public_objects().values()
        if isinstance(module := getattr(value, "__module__", None), str)
        and module.startswith("siamese")
    }
    names.update(METRIC_MODULES)
    return [importlib.import_module(name) for name in sorted(names)]


def _docstring_examples() -> list[doctest.DocTest]:
    """One `DocTest` per docstring with examples in the example modules."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: dict[str, doctest.DocTest] = {}
    for module in _example_modules():
        for test in finder.find(module):
            if test.examples:
                tests.setdefault(test.name, test)
    return [tests[name] for name in sorted(tests)]


EXAMPLES = _docstring_examples()


@pytest.mark.parametrize("test", EXAMPLES, ids=[test.name for test in EXAMPLES])
def test_docstring_example(test: doctest.DocTest) -> None:
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    # Run on a copy of the module's globals: the runner clears it afterwards, and a rerun
    # starts from the module's globals again.
    globs = test.globs
    test.globs = dict(globs)
    try:
        result = runner.run(test, out=report.write, clear_globs=True)
    finally:
        test.globs = globs
    assert result.failed == 0, f"{test.name} ({test.filename}):\n{report.getvalue()}"


def test_public_names_have_examples() -> None:
    """Enough public names carry examples (their own docstring, or a method's)."""
    tested = {test.name for test in EXAMPLES}
    with_examples = sorted(
        name
        for name, value in _public_objects().items()
        if isinstance(getattr(value, "__module__", None), str)
        and any(
            t == f"{value.__module__}.{name}" or t.startswith(f"{value.__module__}.{name}.")
            for t in tested
        )
    )
    assert len(with_examples) >= MIN_PUBLIC_EXAMPLES, (
        f"only {len(with_examples)} public names have docstring examples: {with_examples}"
    )


def test_metric_functions_have_examples() -> None:
    tested = {test.name for test in EXAMPLES}
    for name in (
        "siamese.evaluation.verification.verification_metrics",
        "siamese.evaluation.retrieval.retrieval_metrics",
        "siamese.evaluation.fewshot.episodic_accuracy",
    ):
        assert name in tested, f"{name} has no docstring example"
