"""README's Python example runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch) -> None:
    import siamese

    monkeypatch.chdir(tmp_path)  # the example saves into runs/
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "README has no Python example"
    # "Using the pieces" saves runs/mine, which the recognition example reads: run that first.
    blocks.sort(key=lambda block: "Recognizer" in block)
    results: dict = {}
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, str(README), "exec"), namespace)
        results.update(namespace)
    assert 0.5 < results["mean"] <= 1.0 and results["ci95"] < 0.05
    assert siamese.load_model(tmp_path / "runs" / "mine").spec["embedding_dim"] == 64
    answers = results["answers"]
    assert answers and all(a.far == 0.01 for a in answers)
    assert {a.label for a in answers} & ({"unknown"} | set(results["people"].classes))
