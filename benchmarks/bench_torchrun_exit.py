"""Two-process training and its resume under torchrun, repeated while other processes load
every core: how often a finished job exits with a failure (issue 23: a rank that had done its
work died with "terminate called without an active exception", exit −6, at its exit).

Each round trains the digits ConvNet of tests/test_distributed.py with
`torchrun --standalone --nproc_per_node=2 -m siamese train`, then resumes it with a larger
budget, exactly as that test does, in a fresh directory. A round fails when either command
exits non-zero, or its output shows a native abort. Not part of CI (minutes of CPU).
Writes benchmarks/results/torchrun_exit.json.

    python benchmarks/bench_torchrun_exit.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
# isort: split
from machine import describe_machine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "torchrun_exit.json"
CONFIG = {
    "seed": 1,
    "data": {"name": "digits"},
    "model": {"encoder": "convnet", "options": {"widths": [8, 16]}, "embedding_dim": 16},
    "batches": {"p": 8, "k": 4},
    "train": {"epochs": 2, "log_every": 4},
}
ABORT_SIGNS = ("terminate called", "Fatal Python error", "Segmentation fault", "Aborted", "SIGABRT")
LOAD = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def torchrun(args: list[str], cwd: Path) -> dict[str, Any]:
    """Run one torchrun job; its exit code, seconds and any native abort in its output."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "-m", "siamese", *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    output = done.stdout + done.stderr
    signs = [sign for sign in ABORT_SIGNS if sign in output]
    return {
        "exit": done.returncode,
        "seconds": round(time.perf_counter() - start, 1),
        "abort_signs": signs,
        "tail": output[-1500:] if done.returncode or signs else "",
    }


def one_round(index: int) -> dict[str, Any]:
    """Train, then resume with a third epoch, in a fresh directory."""
    with tempfile.TemporaryDirectory(prefix=f"torchrun-exit-{index}-") as folder:
        cwd = Path(folder)
        (cwd / "c.yaml").write_text(yaml.safe_dump(CONFIG))
        train = torchrun(["train", "c.yaml", "--out", "run", "--quiet"], cwd)
        resume = torchrun(
            ["train", "--resume", "--out", "run", "--quiet", "--set", "train.epochs=3"], cwd
        )
        log = (
            (cwd / "run" / "train.log").read_text() if (cwd / "run" / "train.log").exists() else ""
        )
    ok = all(r["exit"] == 0 and not r["abort_signs"] for r in (train, resume))
    return {
        "round": index,
        "ok": ok,
        "done_66": "done: 66 steps" in log,
        "train": train,
        "resume": resume,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--load-processes", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    seconds = 60 * 60  # longer than any run; stopped below
    load = [
        subprocess.Popen([sys.executable, "-c", LOAD.format(seconds=seconds)])
        for _ in range(args.load_processes)
    ]
    rounds: list[dict[str, Any]] = []
    try:
        for index in range(1, args.rounds + 1):
            result = one_round(index)
            rounds.append(result)
            status = "ok" if result["ok"] else "FAILED"
            print(
                f"round {index}/{args.rounds}: {status} (train exit {result['train']['exit']} in "
                f"{result['train']['seconds']} s, resume exit {result['resume']['exit']} in "
                f"{result['resume']['seconds']} s)",
                flush=True,
            )
    finally:
        for process in load:
            process.kill()
    failures = [r for r in rounds if not r["ok"]]
    summary = {
        "what": "torchrun train + resume (2 processes, gloo) while busy processes load every core",
        "rounds": len(rounds),
        "failures": len(failures),
        "load_processes": args.load_processes,
        "all_resumes_finished": all(r["done_66"] for r in rounds),
        "machine": describe_machine(),
        "failed_rounds": failures,
    }
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"failures: {len(failures)} of {len(rounds)}; written to {RESULTS}")


if __name__ == "__main__":
    main()
