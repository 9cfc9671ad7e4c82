"""`siamese info`: the environment a bug report needs, like `python -m torch.utils.collect_env`.

Versions of siamese, Python and torch; torch's build (CPU, CUDA or ROCm; its kernel ISA, oneDNN,
MKL, threads); the CPU, its vector extensions and the memory; the optional libraries and
which extras are complete; the GPUs; the environment variables that change native code.
Every probe is guarded: a missing `/proc`, an absent or broken library shows as "unknown",
"not installed" or an error string, never as a traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

CPUINFO_PATH = Path("/proc/cpuinfo")
"""Linux's CPU description; absent on macOS and Windows."""
MEMINFO_PATH = Path("/proc/meminfo")
"""Linux's memory description; absent on macOS and Windows."""

VECTOR_EXTENSIONS: tuple[str, ...] = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
"""The /proc/cpuinfo flags that decide which kernels torch, oneDNN, MKL and FAISS run."""

NATIVE_ENVIRONMENT: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "MKL_ENABLE_INSTRUCTIONS",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "ONEDNN_VERBOSE",
    "ATEN_CPU_CAPABILITY",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "FAISS_OPT_LEVEL",
    "MALLOC_MMAP_MAX_",
    "MALLOC_TRIM_THRESHOLD_",
    "CUDA_VISIBLE_DEVICES",
    "SIAMESE_DATA_DIR",
    "SIAMESE_DIST_TIMEOUT",
)
"""Variables reported when set (with every other SIAMESE_* one): each changes what native code
does. ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS and FAISS_OPT_LEVEL cap the kernel ISA like
ONEDNN_MAX_CPU_ISA; the MALLOC_* ones override the allocator tuning of `siamese`'s entry point."""

LIBRARIES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnx": ("onnx",),
    "faiss": ("faiss-cpu", "faiss-gpu"),
    "dlib": ("dlib-bin", "dlib"),
    "opencv": ("opencv-python-headless", "opencv-python"),
    "face_recognition_models": ("face_recognition_models",),
    "fastapi": ("fastapi",),
    "uvicorn": ("uvicorn",),
    "sqlalchemy": ("sqlalchemy",),
    "psycopg": ("psycopg",),
    "safetensors": ("safetensors",),
    "pillow": ("pillow",),
}
"""Each library the report names, and the distributions that provide it (preferred first)."""

DEVELOPER_EXTRAS: tuple[str, ...] = ("dev", "bench")
"""Extras for working on siamese itself: in the JSON, left out of the text report."""

UNKNOWN = "unknown"
NOT_INSTALLED = "not installed"

_ONEDNN_VERSION = re.compile(r"(?:MKL-DNN|oneDNN)\s+v?(\d+(?:\.\d+)+)")
_MKL_VERSION = re.compile(r"Math Kernel Library Version (\d+(?:\.\d+)+)")
_OPENMP_VERSION = re.compile(r"OpenMP \d+ \(a\.k\.a\. OpenMP (\d+(?:\.\d+)*)\)")
_PARALLEL_BACKEND = re.compile(r"ATen parallel backend: (.+)")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def collect_environment() -> dict[str, Any]:
    """Everything `siamese info` reports, as JSON-ready values (str, int, bool, None, lists
    and dicts). Never raises: a section whose probe fails holds `{"error": "..."}`.

    Keys: `siamese` (version), `python` (version, implementation), `platform` (system,
    release, machine, platform), `torch` (version, build, cudnn, cpu_capability, onednn, mkl,
    openmp, parallel_backend, num_threads, num_interop_threads), `cpu` (model, vendor,
    logical_cores, usable_cores, vector_extensions; None where unknown), `memory`
    (total_bytes, None where unknown), `libraries` (per library: distribution, version and
    what it loaded), `extras` (per extra of the installed distribution: installed, missing;
    None when siamese is not installed as a distribution), `accelerators` (cuda, mps) and
    `environment` (the native-behaviour variables that are set).
    """
    from siamese import __version__

    return {
        "siamese": {"version": __version__},
        "python": _guarded(_python_report),
        "platform": _guarded(_platform_report),
        "torch": _guarded(torch_report),
        "cpu": _guarded(cpu_report),
        "memory": _guarded(lambda: {"total_bytes": memory_total_bytes()}),
        "libraries": _guarded(library_report),
        "extras": _guarded(extras_report),
        "accelerators": _guarded(accelerator_report),
        "environment": _guarded(native_environment),
    }


def _guarded(probe: Callable[[], Any]) -> Any:
    """`probe()`, or `{"error": ...}` when it raises: one broken probe must not hide the rest
    of the report, which is most needed exactly when something is broken."""
    try:
        return probe()
    except Exception as err:
        return {"error": _error_text(err)}


def _error_text(err: BaseException) -> str:
    return f"error: {type(err).__name__}: {err}".strip()


def _python_report() -> dict[str, Any]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
    }


def _platform_report() -> dict[str, Any]:
    return {
        "system": platform.system() or None,
        "release": platform.release() or None,
        "machine": platform.machine() or None,
        "platform": platform.platform(),
    }


def torch_report() -> dict[str, Any]:
    """torch's version and build: CPU, CUDA or ROCm; the ISA its CPU kernels dispatched to;
    oneDNN and MKL (whether built in, their versions as `torch.__config__.show()` states them);
    OpenMP and the thread counts."""
    import torch

    if getattr(torch.version, "hip", None):
        build = f"ROCm {torch.version.hip}"
    elif torch.version.cuda:
        build = f"CUDA {torch.version.cuda}"
    else:
        build = "CPU"
    config = _probe(torch.__config__.show, "")
    parallel = _probe(torch.__config__.parallel_info, "")
    return {
        "version": torch.__version__,
        "build": build,
        "cudnn": _probe(torch.backends.cudnn.version, None) if torch.version.cuda else None,
        "cpu_capability": _probe(torch.backends.cpu.get_cpu_capability, None),
        "onednn": {
            "available": _probe(torch.backends.mkldnn.is_available, None),
            "version": _first_match(_ONEDNN_VERSION, config),
        },
        "mkl": {
            "available": _probe(torch.backends.mkl.is_available, None),
            "version": _first_match(_MKL_VERSION, config),
        },
        "openmp": _first_match(_OPENMP_VERSION, config),
        "parallel_backend": _first_match(_PARALLEL_BACKEND, parallel),
        "num_threads": _probe(torch.get_num_threads, None),
        "num_interop_threads": _probe(torch.get_num_interop_threads, None),
    }


def _probe(call: Callable[[], Any], default: Any) -> Any:
    """`call()`, or `default` when it raises: torch's introspection varies across builds."""
    try:
        return call()
    except Exception:
        return default


def _first_match(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1).strip() if found else None


def cpu_report() -> dict[str, Any]:
    """The CPU: model, vendor (from /proc/cpuinfo, None without it), logical cores, the cores
    this process may run on, and which of `VECTOR_EXTENSIONS` it has (None when unknown:
    no /proc, or a CPU such as ARM whose /proc/cpuinfo has no x86 `flags` line)."""
    fields = _first_processor(CPUINFO_PATH)
    flags = fields.get("flags")
    present = set(flags.split()) if flags is not None else set()
    return {
        "model": fields.get("model name"),
        "vendor": fields.get("vendor_id"),
        "logical_cores": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "vector_extensions": (
            [name for name in VECTOR_EXTENSIONS if name in present] if flags is not None else None
        ),
    }


def _first_processor(path: Path) -> dict[str, str]:
    """The `key: value` fields of the first processor in /proc/cpuinfo; {} without the file.
    Only the first block is read: a many-core machine lists every core, all alike."""
    fields: dict[str, str] = {}
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        return {}
    return fields


def _usable_cores() -> int | None:
    """Cores this process may run on: fewer than the machine's under taskset, cgroups' cpusets
    or a batch scheduler, which is when torch's default thread count oversubscribes."""
    if hasattr(os, "sched_getaffinity"):
        with contextlib.suppress(OSError):
            return len(os.sched_getaffinity(0))
    process_cpu_count = getattr(os, "process_cpu_count", None)  # Python 3.13+, any platform
    return process_cpu_count() if process_cpu_count is not None else None


def memory_total_bytes() -> int | None:
    """The machine's memory (MemTotal of /proc/meminfo), in bytes; None without the file."""
    try:
        with MEMINFO_PATH.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() == "MemTotal":
                    amount, _, unit = value.strip().partition(" ")
                    scale = 1024 if unit.strip().lower() == "kb" else 1
                    return int(amount) * scale
    except (OSError, ValueError):
        return None
    return None


def library_report() -> dict[str, dict[str, Any]]:
    """Per library of `LIBRARIES`: the distribution installed and its version (from its
    metadata, "not installed" when absent), and for faiss, onnxruntime and OpenCV what the
    imported module says: FAISS's SIMD variant, onnxruntime's providers, cv2's version."""
    import importlib.metadata  # here, not at the top: `siamese --help` stays quick

    report: dict[str, dict[str, Any]] = {}
    for library, distributions in LIBRARIES.items():
        report[library] = {"distribution": None, "version": NOT_INSTALLED}
        for distribution in distributions:
            try:
                version = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                continue
            report[library] = {"distribution": distribution, "version": version}
            break
    details: dict[str, Callable[[], dict[str, Any]]] = {
        "faiss": _faiss_details,
        "onnxruntime": _onnxruntime_details,
        "opencv": _opencv_details,
    }
    for library, probe in details.items():
        if report[library]["distribution"] is None:
            continue
        try:
            # A library printing at import would corrupt `--json` on stdout.
            with contextlib.redirect_stdout(sys.stderr):
                report[library].update(probe())
        except Exception as err:
            report[library]["error"] = _error_text(err)
    return report


def _faiss_details() -> dict[str, Any]:
    faiss = importlib.import_module("faiss")
    options = str(faiss.get_compile_options()).strip()
    simd_config = getattr(faiss, "SIMDConfig", None)
    if simd_config is not None and hasattr(simd_config, "get_level_name"):
        simd = str(simd_config.get_level_name())  # the level its dynamic dispatch chose
    else:
        # Older wheels ship one module per ISA; the loader imports the best the CPU allows.
        loaded = [
            m
            for m in ("avx512_spr", "avx512", "avx2", "sve")
            if f"faiss.swigfaiss_{m}" in sys.modules
        ]
        simd = loaded[0].upper() if loaded else "generic"
    return {"simd": simd, "compile_options": options}


def _onnxruntime_details() -> dict[str, Any]:
    onnxruntime = importlib.import_module("onnxruntime")
    return {"providers": list(onnxruntime.get_available_providers())}


def _opencv_details() -> dict[str, Any]:
    cv2 = importlib.import_module("cv2")
    return {"cv2_version": str(cv2.__version__)}


class _BareRequirement(NamedTuple):
    """A requirement parsed without `packaging`: its name only, so any version satisfies it."""

    name: str
    text: str


def extras_report() -> dict[str, dict[str, Any]] | None:
    """Per optional-dependency group of the installed `siamese` distribution: whether every
    requirement it adds is installed (at a version its specifier allows, when `packaging` is
    importable) and which are missing. None when siamese runs from a source tree that pip
    never installed, so has no metadata. The metadata is what pip saw at install time."""
    import importlib.metadata  # here, not at the top: `siamese --help` stays quick

    try:
        metadata = importlib.metadata.metadata("siamese")
    except importlib.metadata.PackageNotFoundError:
        return None
    lines = metadata.get_all("Requires-Dist") or []
    names = list(metadata.get_all("Provides-Extra") or [])
    for line in lines:
        for extra in _EXTRA_MARKER.findall(line):
            if extra not in names:
                names.append(extra)
    report: dict[str, dict[str, Any]] = {}
    for extra in names:
        missing = [
            reason
            for requirement in requirements_of_extra(lines, extra)
            for reason in _unmet(requirement, nested=True)
        ]
        report[extra] = {"installed": not missing, "missing": missing}
    return report


def requirements_of_extra(lines: list[str], extra: str) -> list[Any]:
    """The requirements among `Requires-Dist` lines that `extra` adds on this platform:
    `packaging.requirements.Requirement`s, or `_BareRequirement`s without packaging."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        return [
            _BareRequirement(found.group(1), line.split(";")[0].strip())
            for line in lines
            if extra in _EXTRA_MARKER.findall(line)
            and (found := _REQUIREMENT_NAME.match(line)) is not None
        ]
    requirements = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        marker = requirement.marker
        # A requirement with no extra in its marker belongs to the base install, whatever
        # extra we evaluate it for; one whose platform marker fails is not needed here.
        if marker is None or marker.evaluate({"extra": ""}):
            continue
        if marker.evaluate({"extra": extra}):
            requirements.append(requirement)
    return requirements


def _unmet(requirement: Any, nested: bool) -> list[str]:
    """Why `requirement` is not met here ([] when it is): absent, a version outside its
    specifier, or (one level deep) a requirement of an extra it names, like psycopg[binary]."""
    import importlib.metadata  # here, not at the top: `siamese --help` stays quick

    if isinstance(requirement, _BareRequirement):
        try:
            importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            return [requirement.text]
        return []
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return [_requirement_text(requirement)]
    with contextlib.suppress(Exception):  # a non-PEP 440 version: take presence as enough
        if not requirement.specifier.contains(version, prereleases=True):
            return [f"{_requirement_text(requirement)} (found {version})"]
    if not (nested and requirement.extras):
        return []
    own_lines = importlib.metadata.requires(requirement.name) or []
    return [
        reason
        for extra in sorted(requirement.extras)
        for inner in requirements_of_extra(own_lines, extra)
        for reason in _unmet(inner, nested=False)
    ]


def _requirement_text(requirement: Any) -> str:
    """`name[extras]specifier`: what to pip install, without the marker that chose it."""
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}{requirement.specifier}"


def accelerator_report() -> dict[str, Any]:
    """CUDA (or ROCm, which torch also calls cuda): available, device count, and per device
    its name, compute capability and memory in bytes; MPS availability."""
    import torch

    cuda_available = bool(torch.cuda.is_available())
    devices = []
    if cuda_available:
        for index in range(torch.cuda.device_count()):
            try:
                properties = torch.cuda.get_device_properties(index)
                devices.append(
                    {
                        "index": index,
                        "name": properties.name,
                        "compute_capability": f"{properties.major}.{properties.minor}",
                        "total_memory_bytes": int(properties.total_memory),
                    }
                )
            except Exception as err:
                devices.append({"index": index, "error": _error_text(err)})
    return {
        "cuda": {
            "available": cuda_available,
            "device_count": len(devices),
            "devices": devices,
        },
        "mps": {"available": _probe(torch.backends.mps.is_available, False)},
    }


def native_environment() -> dict[str, str]:
    """The set variables among `NATIVE_ENVIRONMENT` and every SIAMESE_* one, sorted."""
    names = set(NATIVE_ENVIRONMENT) | {name for name in os.environ if name.startswith("SIAMESE_")}
    return {name: os.environ[name] for name in sorted(names) if name in os.environ}


def format_report(environment: dict[str, Any]) -> str:
    """The plain-text report of `collect_environment()`'s result: one section per topic,
    with aligned `key: value` lines, "unknown" where a value could not be found."""
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        ("system", _system_rows(environment)),
        ("torch", _section_rows(environment.get("torch"), _torch_rows)),
        ("cpu", _section_rows(environment.get("cpu"), _cpu_rows, environment.get("memory"))),
        ("libraries", _section_rows(environment.get("libraries"), _library_rows)),
        ("extras", _section_rows(environment.get("extras"), _extra_rows)),
        ("accelerators", _section_rows(environment.get("accelerators"), _accelerator_rows)),
        ("environment", _section_rows(environment.get("environment"), _environment_rows)),
    ]
    blocks = []
    for title, rows in sections:
        width = max((len(key) for key, _ in rows), default=0) + 1
        lines = [title] + [f"  {key + ':':<{width}} {value}" for key, value in rows]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _shown(value: Any) -> str:
    return UNKNOWN if value is None else str(value)


def _section_rows(
    section: Any, rows: Callable[..., list[tuple[str, str]]], *more: Any
) -> list[tuple[str, str]]:
    """`rows(section, *more)`, or the section's error as a row: a probe's failure reads as
    one line of the report, not a traceback."""
    if isinstance(section, dict) and set(section) == {"error"}:
        return [("error", str(section["error"]))]
    try:
        return rows(section, *more)
    except Exception as err:
        return [("error", _error_text(err))]


def _system_rows(environment: dict[str, Any]) -> list[tuple[str, str]]:
    python = environment.get("python") or {}
    system = environment.get("platform") or {}
    return [
        ("siamese", _shown(environment.get("siamese", {}).get("version"))),
        ("python", f"{_shown(python.get('version'))} ({_shown(python.get('implementation'))})"),
        ("platform", _shown(system.get("platform"))),
        ("machine", _shown(system.get("machine"))),
    ]


def _torch_rows(torch: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("version", _shown(torch["version"])),
        ("build", _shown(torch["build"])),
    ]
    if torch.get("cudnn") is not None:
        rows.append(("cuDNN", str(torch["cudnn"])))
    rows += [
        ("cpu capability", _shown(torch["cpu_capability"])),
        ("oneDNN", _library_state(torch["onednn"])),
        ("MKL", _library_state(torch["mkl"])),
        ("OpenMP", _shown(torch["openmp"])),
        ("parallel backend", _shown(torch["parallel_backend"])),
        (
            "threads",
            f"{_shown(torch['num_threads'])} intra-op, "
            f"{_shown(torch['num_interop_threads'])} inter-op",
        ),
    ]
    return rows


def _library_state(state: dict[str, Any]) -> str:
    if state.get("available") is False:
        return "not available"
    return _shown(state.get("version"))


def _cpu_rows(cpu: dict[str, Any], memory: Any) -> list[tuple[str, str]]:
    extensions = cpu["vector_extensions"]
    total = memory.get("total_bytes") if isinstance(memory, dict) else None
    return [
        ("model", _shown(cpu["model"])),
        ("vendor", _shown(cpu["vendor"])),
        (
            "cores",
            f"{_shown(cpu['logical_cores'])} logical, {_shown(cpu['usable_cores'])} usable",
        ),
        (
            "vector extensions",
            UNKNOWN if extensions is None else (" ".join(extensions) or "none of the listed"),
        ),
        ("memory", UNKNOWN if total is None else f"{total / 1024**3:.1f} GiB"),
    ]


def _library_rows(libraries: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    rows = []
    for library, state in libraries.items():
        value = str(state["version"])
        notes = []
        if state.get("distribution") not in (None, library):
            notes.append(str(state["distribution"]))
        if "simd" in state:
            notes.append(f"SIMD {state['simd']}")
        if "providers" in state:
            notes.append("providers " + ", ".join(state["providers"]))
        if "cv2_version" in state:
            notes.append(f"cv2 {state['cv2_version']}")
        if "error" in state:
            notes.append(str(state["error"]))
        rows.append((library, value + (f" ({'; '.join(notes)})" if notes else "")))
    return rows


def _extra_rows(extras: dict[str, dict[str, Any]] | None) -> list[tuple[str, str]]:
    if extras is None:
        return [("extras", "unknown (siamese is not installed as a distribution)")]
    return [
        (name, "installed" if state["installed"] else "missing " + ", ".join(state["missing"]))
        for name, state in extras.items()
        if name not in DEVELOPER_EXTRAS
    ]


def _accelerator_rows(accelerators: dict[str, Any]) -> list[tuple[str, str]]:
    cuda = accelerators["cuda"]
    count = cuda["device_count"]
    rows = [
        (
            "cuda",
            f"available, {count} device{'s' if count != 1 else ''}"
            if cuda["available"]
            else "not available",
        )
    ]
    for device in cuda["devices"]:
        if "error" in device:
            described = str(device["error"])
        else:
            gib = device["total_memory_bytes"] / 1024**3
            described = (
                f"{device['name']}, compute capability {device['compute_capability']}, "
                f"{gib:.1f} GiB"
            )
        rows.append((f"cuda:{device['index']}", described))
    rows.append(("mps", "available" if accelerators["mps"]["available"] else "not available"))
    return rows


def _environment_rows(variables: dict[str, str]) -> list[tuple[str, str]]:
    if not variables:
        return [("set", "none of the variables that change native behaviour")]
    return list(variables.items())


def info(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (for machines).")
    ] = False,
) -> None:
    """Print the environment for a bug report: versions, torch's build, CPU, extras, GPUs."""
    from rich.console import Console

    environment = collect_environment()
    if as_json:
        typer.echo(json.dumps(environment, indent=2))
        return
    # markup off: requirements such as psycopg[binary] would read as rich tags.
    Console(highlight=False, soft_wrap=True).print(format_report(environment), markup=False)
