"""`siamese train`: run directories, exact resume after SIGKILL, checkpoints, divergence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import siamese
from siamese.config import load_config
from siamese.errors import CheckpointError, ConfigError, OutputError, TrainingDivergedError
from siamese.run_directory.metrics import read_metrics
from siamese.training.training_run import train_run
from tests.cli_runner import run_cli

DIGITS = {
    "seed": 3,
    "data": {"name": "digits"},
    "model": {"encoder": "convnet", "options": {"widths": [8, 16]}, "embedding_dim": 16},
    "loss": {"name": "triplet", "margin": 0.2, "mining": "semihard"},
    "batches": {"p": 8, "k": 4},
    "optimizer": {"name": "adamw", "lr": 0.003},
    "train": {"epochs": 2, "log_every": 4},
}


def write_config(path: Path, overrides: dict | None = None) -> Path:
    config = {
        key: dict(value) if isinstance(value, dict) else value for key, value in DIGITS.items()
    }
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    path.write_text(yaml.safe_dump(config))
    return path


def poison_the_loss(monkeypatch: pytest.MonkeyPatch, from_step: int, value: float) -> None:
    """From the `from_step`-th training step on, every loss is multiplied by `value`."""
    from siamese.training.objectives import Objective

    real_step = Objective.step
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        out = real_step(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= from_step:
            out.loss = out.loss * value
        return out

    monkeypatch.setattr(Objective, "step", poisoned)


TRAIN_COLUMNS = ("loss", "active_fraction", "mean_pos_dist", "mean_neg_dist", "lr")


def training_rows(run: Path) -> list[tuple]:
    rows = read_metrics(run / "metrics.csv")
    return [
        (
            row["step"],
            row["kind"],
            *(row.get(c) for c in TRAIN_COLUMNS),
            *(v for k, v in sorted(row.items()) if k.startswith("val_")),
        )
        for row in rows
    ]


def test_a_recipe_trains_into_a_complete_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "digits.yaml")
    code, out = run_cli(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 0, out
    run = tmp_path / "run"
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "metrics.csv", "train.log", "split.json", "checkpoints"} <= names
    assert {"model.safetensors", "model.json"} <= names
    assert {p.name for p in (run / "checkpoints").iterdir()} >= {"last.pt", "best.pt"}
    # The effective config reads back to the same config.
    assert load_config(run / "config.yaml") == load_config(config)
    rows = read_metrics(run / "metrics.csv")
    train_rows = [r for r in rows if r["kind"] == "train"]
    val_rows = [r for r in rows if r["kind"] == "validation"]
    assert len(val_rows) == 2 and all(0 <= r["val_precision_at_1"] <= 1 for r in val_rows)
    for column in ("embedding_norm", "embedding_variance", "images_per_s", "active_fraction"):
        assert all(column in r for r in train_rows)
    assert train_rows[-1]["loss"] < train_rows[0]["loss"]
    model = siamese.load_model(run)
    data = siamese.load_dataset("digits")
    z = model(data.x[:5])
    assert z.shape == (5, 16) and torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-5)
    assert "best validation" in out and "run directory" in out


def test_same_seed_and_config_give_identical_metrics(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "c.yaml", {"train": {"epochs": 1}}))
    train_run(config, tmp_path / "a", quiet=True)
    train_run(config, tmp_path / "b", quiet=True)
    assert training_rows(tmp_path / "a") == training_rows(tmp_path / "b")
    a, b = (
        load_file(tmp_path / "a" / "model.safetensors"),
        load_file(tmp_path / "b" / "model.safetensors"),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """Kill a training subprocess in the middle of an epoch, damage its newest checkpoint,
    resume: the final weights and every logged number equal an uninterrupted run's."""
    config = write_config(
        tmp_path / "c.yaml",
        {
            # Random mining and augmentation draw random numbers every step: resuming must
            # restore their generators too.
            "loss": {"mining": "random"},
            "augment": {"degrees": 10.0, "translate": 0.1},
            # Log rows every 4 steps, checkpoints every 3: a resumed run must also carry the
            # statistics gathered since the last row.
            "train": {"epochs": 2, "checkpoint_every": 3, "log_every": 4},
        },
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "siamese", "train", str(config), "--quiet", "--out"]
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, str(killed)], env=env, stdout=subprocess.DEVNULL)

    def newest_step() -> int:
        steps = [int(p.stem.split("-")[1]) for p in (killed / "checkpoints").glob("step-*.pt")]
        return max(steps, default=0)

    deadline = time.monotonic() + 120
    while newest_step() < 12 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert newest_step() >= 12, "the run ended before the checkpoint the test waits for"
    assert not (killed / "model.safetensors").exists()  # it really was cut off
    steps_per_epoch = 44  # digits: 1,439 training examples at P×K = 8×4
    last_step = max(int(p.stem.split("-")[1]) for p in (killed / "checkpoints").glob("step-*"))
    assert last_step % steps_per_epoch != 0  # the newest checkpoint lies inside an epoch
    # A checkpoint damaged by the kill: resume must fall back to the one before.
    last = killed / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"last\.pt"):
        train_run(load_config(killed / "config.yaml"), killed, resume=True, quiet=True)
    whole = tmp_path / "whole"
    subprocess.run([*command, str(whole)], env=env, check=True, stdout=subprocess.DEVNULL)
    a, b = load_file(killed / "model.safetensors"), load_file(whole / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
    assert training_rows(killed) == training_rows(whole)


def test_existing_runs_are_never_overwritten_and_resume_needs_a_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.yaml", {"train": {"steps": 3, "epochs": None}})
    run = tmp_path / "run"
    assert run_cli(["train", str(config), "--out", str(run), "--quiet"], capsys)[0] == 0
    before = (run / "model.safetensors").read_bytes()
    code, out = run_cli(["train", str(config), "--out", str(run), "--quiet"], capsys)
    assert code == 1 and "already holds a siamese run: pass --resume" in out and "--force" in out
    assert (run / "model.safetensors").read_bytes() == before
    code, out = run_cli(["train", "--resume", "--out", str(tmp_path / "none")], capsys)
    assert code == 1 and "holds no run to continue" in out
    other = write_config(tmp_path / "o.yaml", {"train": {"steps": 3, "epochs": None}, "seed": 9})
    code, out = run_cli(["train", str(other), "--resume", "--out", str(run)], capsys)
    assert code == 1 and "changes seed of the run being resumed" in out
    for checkpoint in (run / "checkpoints").glob("*.pt"):
        checkpoint.write_bytes(b"")  # every checkpoint damaged: nothing to fall back to
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match=r"last\.pt"):
        train_run(load_config(run / "config.yaml"), run, resume=True, quiet=True)


def test_config_errors_reach_the_user_as_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.yaml", {"optimiser": {"lr": 0.1}})
    code, out = run_cli(["train", str(config), "--out", str(tmp_path / "r")], capsys)
    assert code == 1 and "optimiser" in out and "optimizer" in out and "Traceback" not in out
    config = write_config(tmp_path / "d.yaml")
    code, out = run_cli(
        ["train", str(config), "--out", str(tmp_path / "r"), "--set", "train.epochs=0"], capsys
    )
    assert code == 1 and "train.epochs" in out
    with pytest.raises(ConfigError, match=r"early_stop\.metric"):
        train_run(
            load_config(config, ["train.early_stop.metric=accuracy"]), tmp_path / "r2", quiet=True
        )


def test_a_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siamese.training.checkpoints import load_checkpoint

    poison_the_loss(monkeypatch, from_step=11, value=float("nan"))
    config = load_config(write_config(tmp_path / "c.yaml", {"train": {"checkpoint_every": 5}}))
    with pytest.raises(TrainingDivergedError, match=r"became nan near step 1[2-9].*last good"):
        train_run(config, tmp_path / "run", quiet=True)
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert saved["position"]["step"] == 10
    assert all(torch.isfinite(t).all() for t in saved["model"].values() if t.is_floating_point())
    assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("batches", "loss"),
    [
        ({"kind": "pairs", "size": 64}, {"name": "contrastive", "margin": 1.0}),
        ({"kind": "pairs", "size": 64}, {"name": "pair_classifier"}),
        ({"kind": "triplets", "size": 64}, {"name": "triplet", "margin": 0.2}),
        ({"kind": "pk"}, {"name": "contrastive", "margin": 0.5}),
    ],
    ids=["pairs-contrastive", "pairs-classifier", "triplets", "pk-contrastive"],
)
def test_every_batch_kind_trains(tmp_path: Path, batches: dict, loss: dict) -> None:
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            {"batches": batches, "loss": loss, "train": {"epochs": 1, "log_every": 2}},
        )
    )
    result = train_run(config, tmp_path / "run", quiet=True)
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.csv") if r["kind"] == "train"]
    assert result.steps == rows[-1]["step"] and rows[-1]["loss"] < rows[0]["loss"]
    assert result.best["precision_at_1"] > 0.5
    if loss["name"] == "pair_classifier":
        net = siamese.load_siamese_net(tmp_path / "run")
        x = siamese.load_dataset("digits").x[:4]
        assert net.probability(x, x.flip(0)).shape == (4,)
    else:
        with pytest.raises(CheckpointError, match="did not train a pair classifier"):
            siamese.load_siamese_net(tmp_path / "run")


def test_early_stopping_stops_and_keeps_the_best_weights(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            {
                "optimizer": {"lr": 1e-7},  # nothing improves
                "train": {"epochs": 6, "early_stop": {"metric": "roc_auc", "patience": 1}},
            },
        )
    )
    result = train_run(config, tmp_path / "run", quiet=True)
    assert result.stopped_early and result.epochs_done < 6
    model_json = (tmp_path / "run" / "model.json").read_text()
    assert "best roc_auc at step" in model_json


def test_optimisers_and_schedules(tmp_path: Path) -> None:
    from siamese.config import OptimizerConfig, ScheduleConfig
    from siamese.training.optimization import build_optimizer, build_schedule, lr_factor

    params = [torch.nn.Parameter(torch.zeros(3))]
    for name in ("adam", "adamw", "sgd", "rmsprop"):
        optimizer = build_optimizer(params, OptimizerConfig(name=name, lr=0.1))
        assert optimizer.param_groups[0]["lr"] == 0.1
    cosine = lr_factor(ScheduleConfig("cosine", warmup_fraction=0.1), 100, 10)
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0)
    assert cosine(10) == pytest.approx(1.0) and cosine(100) == pytest.approx(0.0)
    step = lr_factor(ScheduleConfig("step", warmup_fraction=0.0, step_epochs=2, gamma=0.5), 100, 10)
    assert [step(s) for s in (0, 19, 20, 40)] == [1.0, 1.0, 0.5, 0.25]
    one = lr_factor(ScheduleConfig("onecycle"), 100, 10)
    assert one(0) == pytest.approx(1 / 25) and one(30) == pytest.approx(1.0)
    assert one(100) == pytest.approx(1 / 25_000)
    optimizer = build_optimizer(params, OptimizerConfig(name="sgd", lr=1.0))
    schedule = build_schedule(optimizer, ScheduleConfig("constant", warmup_fraction=0.5), 4, 1)
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs == [0.5, 1.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="nesterov"):
        build_optimizer(params, OptimizerConfig(name="sgd", momentum=0.0, nesterov=True))


def test_collapse_alarm_warns_once_with_advice() -> None:
    from siamese.training.collapse_alarm import CollapseAlarm

    alarm = CollapseAlarm(margin=0.2, embedding_dim=64)
    healthy = {
        "step": 10,
        "loss": 0.1,
        "embedding_norm": 1.0,
        "embedding_variance": 0.01,
        "mean_pos_dist": 0.5,
        "mean_neg_dist": 1.0,
    }
    assert alarm.check(healthy) is None
    stuck = {**healthy, "step": 20, "loss": 0.2, "mean_pos_dist": 0.7, "mean_neg_dist": 0.7001}
    with pytest.warns(
        UserWarning, match=r"collapsed at step 20: loss 0\.2000 ≈ margin.*lower learning rate"
    ):
        assert alarm.check(stuck) is not None
    assert alarm.check({**stuck, "step": 30}) is None  # once
    collapsed = {**healthy, "embedding_variance": 1e-9}
    with pytest.warns(UserWarning, match="embedding variance"):
        assert CollapseAlarm(None, 64).check(collapsed) is not None


def test_output_error_for_an_unwritable_run_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    config = load_config(write_config(tmp_path / "c.yaml"))
    with pytest.raises(OutputError, match="is a file"):
        train_run(config, tmp_path / "file", quiet=True)


CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("recipe", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_recipe_is_a_valid_config(recipe: Path) -> None:
    load_config(recipe)


def test_the_glyphs_recipe_trains_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = Path(__file__).resolve().parents[2] / "configs" / "glyphs_triplet.yaml"
    argv = ["train", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]
    code, out = run_cli([*argv, "--set", "train.steps=12", "--set", "train.log_every=4"], capsys)
    assert code == 0, out
    assert load_config(tmp_path / "run" / "config.yaml").train.steps == 12
    assert siamese.load_model(tmp_path / "run").spec["encoder"] == "convnet"


def test_help_lists_every_config_key(capsys: pytest.CaptureFixture[str]) -> None:
    from siamese.config import RunConfig
    from siamese.config.help import describe_options

    code, out = run_cli(["train", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    for key, *_ in describe_options(RunConfig):
        assert f"{key} (" in flat, key


def test_a_budget_ending_on_a_checkpoint_step_still_validates(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path / "c.yaml", {"train": {"epochs": None, "steps": 10, "checkpoint_every": 5}}
        )
    )
    result = train_run(config, tmp_path / "run", quiet=True)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [r["step"] for r in rows if r["kind"] == "validation"] == [10.0]
    assert (
        result.best
        and "best precision_at_1 at step 10" in (tmp_path / "run" / "model.json").read_text()
    )


def test_a_nan_before_an_epoch_end_validation_is_reported_as_divergence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The epoch ends at step 44, between two log steps (40 and 60).
    poison_the_loss(monkeypatch, from_step=42, value=float("inf"))
    config = load_config(write_config(tmp_path / "c.yaml", {"train": {"log_every": 20}}))
    with pytest.raises(TrainingDivergedError, match=r"the loss became (inf|nan) near step 44"):
        train_run(config, tmp_path / "run", quiet=True)


def test_resume_of_a_finished_run_changes_nothing_and_a_bigger_budget_goes_on(
    tmp_path: Path,
) -> None:
    config = load_config(write_config(tmp_path / "c.yaml", {"train": {"epochs": 1}}))
    run = tmp_path / "run"
    train_run(config, run, quiet=True)
    before = (run / "metrics.csv").read_text(), (run / "model.safetensors").read_bytes()
    result = train_run(config, run, resume=True, quiet=True)
    assert result.steps == 44
    assert ((run / "metrics.csv").read_text(), (run / "model.safetensors").read_bytes()) == before
    assert "already complete at step 44" in (run / "train.log").read_text()
    longer = load_config(run / "config.yaml", ["train.epochs=2", "optimizer.lr=0.001"])
    result = train_run(longer, run, resume=True, quiet=True)
    assert result.steps == 88 and load_config(run / "config.yaml").train.epochs == 2
    log = (run / "train.log").read_text()
    assert "changed on resume: optimizer.lr, train.epochs" in log


def test_resume_refuses_changes_that_make_another_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.yaml", {"train": {"epochs": 1}})
    run = tmp_path / "run"
    assert run_cli(["train", str(config), "--out", str(run), "--quiet"], capsys)[0] == 0
    code, out = run_cli(
        ["train", "--resume", "--out", str(run), "--set", "model.embedding_dim=32"], capsys
    )
    assert code == 1 and "changes model.embedding_dim of the run being resumed" in out
    with pytest.raises(ConfigError, match=r"changes loss\.margin"):
        train_run(
            load_config(run / "config.yaml", ["loss.margin=0.5"]), run, resume=True, quiet=True
        )


def test_a_run_that_failed_before_its_first_checkpoint_resumes_from_step_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from siamese.training.loop import TrainingLoop

    config = write_config(tmp_path / "c.yaml", {"train": {"epochs": 1}})
    run = tmp_path / "run"

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(TrainingLoop, "train", broken)
    code, _ = run_cli(["train", str(config), "--out", str(run), "--quiet"], capsys)
    assert code == 130 and (run / "config.yaml").exists() and not (run / "checkpoints").exists()
    monkeypatch.undo()
    code, out = run_cli(["train", str(config), "--out", str(run), "--quiet"], capsys)
    assert code == 1 and "pass --resume" in out
    code, out = run_cli(["train", "--resume", "--out", str(run), "--quiet"], capsys)
    assert code == 0, out
    assert "no checkpoint yet: starting from step 0" in (run / "train.log").read_text()
    assert siamese.load_model(run) is not None


def test_train_refuses_a_folder_of_the_users_files_and_force_replaces_a_run_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.yaml", {"train": {"steps": 3, "epochs": None}})
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep")
    code, out = run_cli(["train", str(config), "--out", str(mine), "--quiet"], capsys)
    assert code == 1 and "thesis.tex" in out and "nothing was changed" in out
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    (mine / "config.yaml").write_text("epochs: 3\nbatch_size: 32\n")
    (mine / "thesis.tex").unlink()
    code, out = run_cli(["train", str(config), "--out", str(mine), "--quiet", "--force"], capsys)
    assert code == 1 and "a config.yaml that is not a siamese run config" in out

    run = tmp_path / "run"
    assert run_cli(["train", str(config), "--out", str(run), "--quiet"], capsys)[0] == 0
    (run / "figures").mkdir()
    (run / "figures" / "old.png").write_bytes(b"x")
    (run / "checkpoints" / "step-999.pt").write_bytes(b"x")
    other = write_config(tmp_path / "o.yaml", {"train": {"steps": 4, "epochs": None}})
    code, out = run_cli(["train", str(other), "--out", str(run), "--quiet", "--force"], capsys)
    assert code == 0, out
    assert not (run / "figures").exists() and not (run / "checkpoints" / "step-999.pt").exists()
    assert load_config(run / "config.yaml").train.steps == 4
    assert (run / "train.log").read_text().count("training convnet") == 1


def test_ctrl_c_says_what_was_kept_and_how_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from siamese.training.objectives import Objective

    config = write_config(tmp_path / "c.yaml", {"train": {"epochs": 2, "checkpoint_every": 10}})
    real_step = Objective.step
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 15:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Objective, "step", interrupted)
    run = tmp_path / "run"
    code, out = run_cli(["train", str(config), "--out", str(run), "--quiet"], capsys)
    assert code == 130
    assert "interrupted at step 14 of 88" in out and "checkpoint of step 10" in out
    assert f"siamese train --resume --out {run}" in out and "Traceback" not in out
    assert "interrupted at step 14" in (run / "train.log").read_text()
    monkeypatch.setattr(Objective, "step", real_step)
    code, out = run_cli(["train", "--resume", "--out", str(run), "--quiet"], capsys)
    assert code == 0 and "resumed from" in out


def test_resume_rebuilds_missing_or_damaged_model_files_of_a_finished_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.yaml", {"train": {"steps": 5, "epochs": None}})
    run = tmp_path / "run"
    assert run_cli(["train", str(config), "--out", str(run), "--quiet"], capsys)[0] == 0
    good = (run / "model.safetensors").read_bytes()
    damaged = bytearray(good)
    damaged[-1] ^= 1
    (run / "model.safetensors").write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError) as err:
        siamese.load_model(run)
    command = f"siamese train --resume --out {run}"
    assert command in str(err.value)
    code, out = run_cli([*command.split()[1:], "--quiet"], capsys)
    assert code == 0 and "rebuilding them from its checkpoints" in out
    assert (run / "model.safetensors").read_bytes() == good
    (run / "model.json").unlink()
    assert run_cli([*command.split()[1:], "--quiet"], capsys)[0] == 0
    siamese.load_model(run)


def test_data_warnings_reach_the_console_and_train_log_as_the_commands_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 12)
    y[-1] = 5  # class 5 has one example
    np.savez(tmp_path / "data.npz", x=rng.random((60, 6)).astype("float32"), y=y)
    config = write_config(
        tmp_path / "c.yaml",
        {
            "data": {"name": f"arrays:{tmp_path / 'data.npz'}", "validation": "none"},
            "model": {"encoder": "mlp", "options": {"hidden": [8]}, "embedding_dim": 4},
            "batches": {"p": 3, "k": 4},
            "train": {"steps": 2, "epochs": None},
        },
    )
    run = tmp_path / "run"
    code, out = run_cli(["train", str(config), "--out", str(run), "--quiet"], capsys)
    assert code == 0, out
    assert "warning: " in out and "single example" in out and "UserWarning" not in out
    assert "warning: " in (run / "train.log").read_text()


@pytest.mark.parametrize(
    "loss",
    [
        {"name": "arcface", "scale": 16.0},
        {"name": "proxy_anchor"},
        {"name": "multi_similarity", "memory": 64},
        {"name": "margin_loss"},
    ],
    ids=lambda loss: loss["name"] + ("+memory" if "memory" in loss else ""),
)
def test_a_catalog_loss_resumes_exactly_and_stays_out_of_the_model(
    tmp_path: Path, loss: dict
) -> None:
    """Class weights, proxies, a learnt β and a cross-batch memory are the loss's state: they
    train at the loss's rate, are checkpointed so that a resumed run equals an uninterrupted
    one, and are in neither model.safetensors nor the encoder the run hands out."""
    config = {**DIGITS, "loss": loss, "schedule": {"name": "constant", "warmup_fraction": 0.0}}
    config["train"] = {"steps": 12, "epochs": None, "log_every": 2, "checkpoint_every": 6}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    whole, split = tmp_path / "whole", tmp_path / "split"
    train_run(load_config(path), whole, quiet=True)
    train_run(load_config(path, ["train.steps=6"]), split, quiet=True)
    train_run(
        load_config(split / "config.yaml", ["train.steps=12"]), split, resume=True, quiet=True
    )
    # (the split run validated at its first budget's end too; the training rows are the same)
    train_rows = [row for row in training_rows(whole) if row[1] == "train"]
    assert [row for row in training_rows(split) if row[1] == "train"] == train_rows
    saved = torch.load(whole / "checkpoints" / "last.pt", weights_only=False)
    resumed = torch.load(split / "checkpoints" / "last.pt", weights_only=False)
    for part in ("model", "objective"):
        assert saved[part].keys() == resumed[part].keys()
        assert all(torch.equal(saved[part][k], resumed[part][k]) for k in saved[part]), part
    own = saved["objective"]
    assert own, "the loss's state is in the checkpoint"
    a = load_file(whole / "model.safetensors")
    model = siamese.load_model(whole)
    assert set(a) == set(model.state_dict())  # the encoder's weights, nothing of the loss
    for key, value in own.items():
        assert not any(v.shape == value.shape and torch.equal(v, value) for v in a.values()), key
    optimizer_groups = saved["optimizer"]["param_groups"]
    lr = config["optimizer"]["lr"]
    factor = 100.0 if loss["name"] == "proxy_anchor" else 1.0
    # a second group, at the loss's own rate, where the loss has parameters (not XBM's memory)
    expected = [lr] if loss["name"] == "multi_similarity" else [lr, lr * factor]
    assert [g["lr"] for g in optimizer_groups] == pytest.approx(expected)
