"""Two processes on loopback (gloo): the global-batch loss and gradients equal one process's,
and `torchrun -m siamese train` writes one valid run directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import siamese
from siamese.run_directory.metrics import read_metrics
from siamese.training.objectives import Objective

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


# Own parameters: the pair head (2), class weights (1), proxies (1), a learnt β (1).
OWN_PARAMETERS = {"pair_classifier": 2, "arcface": 1, "proxy_anchor": 1, "margin_loss": 1}


@pytest.mark.parametrize(
    "loss_name",
    [
        "triplet",
        "pair_classifier",
        "arcface",
        "proxy_anchor",
        "multi_similarity",
        "margin_loss",
        "triplet+memory",
    ],
)
@pytest.mark.slow
def test_global_batch_loss_and_gradients_equal_one_process(tmp_path: Path, loss_name: str) -> None:
    """Every rank's loss and gradients are one process's on the global batch, and the loss's
    own parameters (class weights, proxies, β) are identical on every rank after a step."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        from distributed_step import SPEC, global_batch, loss_config
    finally:
        sys.path.remove(str(SCRIPTS))
    torchrun([str(SCRIPTS / "distributed_step.py"), str(tmp_path), loss_name], cwd=tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    torch.manual_seed(0)
    data = siamese.load_dataset("digits")
    model = siamese.build_embedding_net(SPEC, tuple(data.x.shape[1:]))
    objective = Objective.from_config("pk", loss_config(loss_name), 8, train_labels=data.y)
    single = objective.step(lambda i: model(data.x[i]), data.y, (global_batch(),))
    single.loss.backward()
    torch.optim.SGD([*model.parameters(), *objective.parameters()], lr=0.1).step()
    for rank in ranks:
        torch.testing.assert_close(rank["loss"], single.loss.detach(), rtol=1e-5, atol=1e-6)
        for got, want in zip(rank["grads"], [p.grad for p in model.parameters()], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        wanted = [p.grad for p in objective.parameters()]
        assert len(rank["objective_grads"]) == len(wanted) == OWN_PARAMETERS.get(loss_name, 0)
        for got, want in zip(rank["objective_grads"], wanted, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        for got, want in zip(rank["objective_after"], objective.parameters(), strict=True):
            torch.testing.assert_close(got, want.detach(), rtol=1e-4, atol=1e-6)
    for first, second in zip(ranks[0]["objective_after"], ranks[1]["objective_after"], strict=True):
        assert torch.equal(first, second)  # bit for bit: no rank drifts from the others


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux's /proc")
def test_leaving_the_group_stops_its_threads(tmp_path: Path) -> None:
    """After `leave`, no gloo thread runs on into the interpreter's teardown (where it used
    to abort a finished rank now and then), even though torch._dynamo was imported after
    joining."""
    torchrun([str(SCRIPTS / "process_group_exit.py"), str(tmp_path)], cwd=tmp_path)
    for rank in range(2):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert record["sum"] == [2.0] * 4
        assert any("gloo" in name for name in record["threads_while_joined"])
        assert not [name for name in record["threads_after_leave"] if "gloo" in name], record
        assert record["warnings"] == []


@pytest.mark.slow
def test_torchrun_two_processes_train_into_one_run_directory(tmp_path: Path) -> None:
    config = {
        "seed": 1,
        "data": {"name": "digits"},
        "model": {"encoder": "convnet", "options": {"widths": [8, 16]}, "embedding_dim": 16},
        "batches": {"p": 8, "k": 4},
        "train": {"epochs": 2, "log_every": 4},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    torchrun(["-m", "siamese", "train", "c.yaml", "--out", "run", "--quiet"], cwd=tmp_path)
    run = tmp_path / "run"
    rows = read_metrics(run / "metrics.csv")
    steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert steps == sorted(set(steps))  # one writer: no step logged twice
    # 44 P×K batches per epoch shared by 2 ranks: 22 steps per epoch.
    assert steps[-1] == 44
    assert len([r for r in rows if r["kind"] == "validation"]) == 2
    log = (run / "train.log").read_text()
    assert log.count("training convnet on digits") == 1 and "done: 44 steps" in log
    model = siamese.load_model(run)
    assert model(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).shape == (2, 16)
    # Resume under torchrun with a bigger budget: every rank restores its own generators.
    torchrun(
        [
            "-m",
            "siamese",
            "train",
            "--resume",
            "--out",
            "run",
            "--quiet",
            "--set",
            "train.epochs=3",
        ],
        cwd=tmp_path,
    )
    rows = read_metrics(run / "metrics.csv")
    assert [r["step"] for r in rows if r["kind"] == "validation"] == [22.0, 44.0, 66.0]
    assert "resumed from" in (run / "train.log").read_text()
