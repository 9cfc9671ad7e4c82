"""`siamese info`: the environment report for bug reports, checked against this interpreter,
this machine's /proc and the installed `siamese` distribution."""

from __future__ import annotations

import email.message
import importlib.metadata
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import siamese
from siamese.cli import info
from tests.cli_runner import run_cli as run

SECTIONS = ("system", "torch", "cpu", "libraries", "extras", "accelerators", "environment")


def json_report(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out = run(["info", "--json"], capsys)
    assert code == 0, out
    return json.loads(out)


def text_report(capsys: pytest.CaptureFixture[str]) -> str:
    code, out = run(["info"], capsys)
    assert code == 0, out
    assert "Traceback" not in out
    return out


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def first_cpu_flags() -> set[str] | None:
    """The `flags` of /proc/cpuinfo's first processor, or None (not Linux, or not x86)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return set(found.group(1).split()) if found else None


def test_json_describes_this_interpreter_and_torch(capsys: pytest.CaptureFixture[str]) -> None:
    report = json_report(capsys)
    assert report["siamese"]["version"] == siamese.__version__
    assert report["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert report["torch"]["version"] == torch.__version__
    assert report["torch"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert report["torch"]["num_threads"] == torch.get_num_threads()
    expected_build = "CPU" if torch.version.cuda is None and not torch.version.hip else None
    if expected_build:
        assert report["torch"]["build"] == expected_build
    onednn = report["torch"]["onednn"]
    assert onednn["available"] == torch.backends.mkldnn.is_available()
    if onednn["available"]:
        assert re.fullmatch(r"\d+\.\d+(\.\d+)*", onednn["version"]), onednn
    mkl = report["torch"]["mkl"]
    if mkl["available"]:
        assert re.fullmatch(r"\d+\.\d+(\.\d+)*", mkl["version"]), mkl
    assert report["accelerators"]["cuda"]["available"] == torch.cuda.is_available()
    assert report["accelerators"]["cuda"]["device_count"] == (
        torch.cuda.device_count() if torch.cuda.is_available() else 0
    )


def test_cpu_extensions_are_those_proc_cpuinfo_lists(capsys: pytest.CaptureFixture[str]) -> None:
    cpu = json_report(capsys)["cpu"]
    flags = first_cpu_flags()
    if flags is None:
        pytest.skip("no x86 flags in /proc/cpuinfo on this machine")
    extensions = cpu["vector_extensions"]
    assert set(extensions) <= set(info.VECTOR_EXTENSIONS)
    assert set(extensions) == flags & set(info.VECTOR_EXTENSIONS)
    assert extensions == [name for name in info.VECTOR_EXTENSIONS if name in extensions]
    assert cpu["logical_cores"] >= cpu["usable_cores"] >= 1


def test_extras_follow_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    extras = json_report(capsys)["extras"]
    lines = importlib.metadata.requires("siamese") or []
    for extra, state in extras.items():
        wanted = {
            re.match(r"[A-Za-z0-9._-]+", line).group(0)
            for line in lines
            if re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", line)
        }
        absent = {name for name in wanted if not installed(name)}
        missing_names = {re.match(r"[A-Za-z0-9._-]+", m).group(0) for m in state["missing"]}
        assert absent <= missing_names, extra
        assert state["installed"] == (not state["missing"]), extra
    faces = {"opencv-python-headless", "dlib-bin", "face_recognition_models"}
    assert extras["faces"]["installed"] == all(installed(name) for name in faces)


def test_extras_without_packaging_agree(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_packaging = info.extras_report()
    monkeypatch.setitem(sys.modules, "packaging.requirements", None)  # import fails
    without = info.extras_report()
    assert with_packaging is not None and without is not None
    assert {k: v["installed"] for k, v in without.items()} == {
        k: v["installed"] for k, v in with_packaging.items()
    }


def test_an_extra_with_a_missing_or_too_old_requirement(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = email.message.Message()
    for extra in ("ok", "broken", "nested"):
        metadata["Provides-Extra"] = extra
    for line in (
        "numpy>=1",
        'numpy>=1; extra == "ok"',
        'no-such-distribution-xyz>=1; extra == "broken"',
        'numpy>=99999; extra == "broken"',
        'no-such-distribution-xyz; extra == "ok" and sys_platform == "no-such-platform"',
        'numpy[fast]>=1; extra == "nested"',
    ):
        metadata["Requires-Dist"] = line
    real_metadata, real_requires = importlib.metadata.metadata, importlib.metadata.requires
    monkeypatch.setattr(
        importlib.metadata,
        "metadata",
        lambda name: metadata if name == "siamese" else real_metadata(name),
    )
    # numpy[fast] stands for psycopg[binary]: an installed library whose extra is not.
    monkeypatch.setattr(
        importlib.metadata,
        "requires",
        lambda name: (
            ['no-such-distribution-xyz; extra == "fast"']
            if name == "numpy"
            else real_requires(name)
        ),
    )
    extras = info.extras_report()
    assert extras is not None
    assert extras["ok"] == {"installed": True, "missing": []}
    assert not extras["broken"]["installed"]
    missing = extras["broken"]["missing"]
    assert missing[0] == "no-such-distribution-xyz>=1"
    assert missing[1].startswith("numpy>=99999 (found ")
    assert extras["nested"] == {"installed": False, "missing": ["no-such-distribution-xyz"]}


def test_text_report_has_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    text = text_report(capsys)
    headings = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert headings == list(SECTIONS)
    assert f"siamese:  {siamese.__version__}" in text
    assert torch.__version__ in text
    assert re.search(r"^  faces: +(installed|missing )", text, re.MULTILINE)
    assert not re.search(r"^  (dev|bench):", text, re.MULTILINE)


def test_set_variables_appear_and_unset_ones_do_not(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("SIAMESE_INFO_PROBE", "yes")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    environment = json_report(capsys)["environment"]
    assert environment["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert environment["SIAMESE_INFO_PROBE"] == "yes"
    assert "MKL_NUM_THREADS" not in environment
    assert re.search(r"^  ONEDNN_MAX_CPU_ISA: +AVX2$", text_report(capsys), re.MULTILINE)


def test_a_platform_without_proc_says_unknown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(info, "CPUINFO_PATH", tmp_path / "no-proc" / "cpuinfo")
    monkeypatch.setattr(info, "MEMINFO_PATH", tmp_path / "no-proc" / "meminfo")
    monkeypatch.delattr("os.sched_getaffinity", raising=False)
    monkeypatch.delattr("os.process_cpu_count", raising=False)
    report = json_report(capsys)
    assert report["cpu"]["model"] is None and report["cpu"]["vector_extensions"] is None
    assert report["cpu"]["usable_cores"] is None
    assert report["memory"]["total_bytes"] is None
    text = text_report(capsys)
    for key in ("model", "vendor", "vector extensions", "memory"):
        assert re.search(rf"^  {key}: +unknown$", text, re.MULTILINE), key
    assert "unknown usable" in text


def test_a_broken_library_is_an_error_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not installed("faiss-cpu") and not installed("faiss-gpu"):
        pytest.skip("faiss is not installed")
    monkeypatch.setitem(sys.modules, "faiss", None)  # its import now raises
    faiss = json_report(capsys)["libraries"]["faiss"]
    assert faiss["error"].startswith("error: ModuleNotFoundError")
    assert re.search(r"^  faiss: .*error: ModuleNotFoundError", text_report(capsys), re.MULTILINE)


def test_an_absent_library_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(info.LIBRARIES, "nothing", ("no-such-distribution-xyz",))
    libraries = info.library_report()
    assert libraries["nothing"] == {"distribution": None, "version": "not installed"}
    assert "  nothing:" in info.format_report(
        {**info.collect_environment(), "libraries": libraries}
    )


def test_a_failing_probe_is_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("no accelerators today")

    monkeypatch.setattr(info, "accelerator_report", broken)
    report = info.collect_environment()
    assert report["accelerators"] == {"error": "error: RuntimeError: no accelerators today"}
    assert "error: RuntimeError: no accelerators today" in info.format_report(report)
