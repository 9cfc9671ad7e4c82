"""Devices: `device: auto|cpu|cuda|cuda:N|mps`, `--device`, mixed precision, and runs that move
between devices. CI has no GPU: the CPU path and every refusal are tested here; the tests
marked `cuda` run where torch sees a GPU and skip with the reason elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from siamese.config import load_config
from siamese.devices import (
    autocast,
    check_precision,
    cuda_absence,
    grad_scaler,
    model_device,
    process_group_backend,
    resolve_device,
    to_device,
)
from siamese.errors import ConfigError
from siamese.training.training_run import train_run
from tests.cli_runner import run_cli

HAS_CUDA = torch.cuda.is_available()
cuda = pytest.mark.skipif(not HAS_CUDA, reason=f"no CUDA here: {cuda_absence()}")
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")

TINY = {
    "seed": 1,
    "data": {"name": "digits"},
    "model": {"encoder": "convnet", "options": {"widths": [8, 16]}, "embedding_dim": 16},
    "batches": {"p": 8, "k": 4},
    "train": {"epochs": None, "steps": 6, "log_every": 3, "checkpoint_every": 3},
}


def tiny_config(path: Path, **top: object) -> Path:
    config = {**TINY, **top}
    path.write_text(yaml.safe_dump(config))
    return path


def test_auto_is_cuda_when_torch_sees_a_gpu_else_the_cpu() -> None:
    expected = "cuda" if HAS_CUDA else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_on_a_machine_without_it_says_so_plainly(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_device(name, "--device")
    message = str(err.value)
    assert f"--device = {name}" in message
    assert "CPU-only build" in message or "no usable GPU" in message
    assert "use cpu or auto" in message


@pytest.mark.parametrize("name", ["gpu", "cuda0", "cuda:-1", "tpu", "", "cuda:x"])
def test_an_unknown_device_name_lists_the_valid_ones(name: str) -> None:
    with pytest.raises(ConfigError, match=r"choose auto, cpu, cuda, cuda:N .* or mps"):
        resolve_device(name)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_where_there_is_none_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"MPS.*not available"):
        resolve_device("mps")


def test_precisions_and_their_scalers() -> None:
    cpu = torch.device("cpu")
    check_precision("fp32", cpu)
    check_precision("bf16", cpu)
    with pytest.raises(ConfigError, match="fp16 trains on a GPU"):
        check_precision("fp16", cpu)
    with pytest.raises(ConfigError, match="choose fp32, bf16, fp16"):
        check_precision("fp8", cpu)
    assert grad_scaler(cpu, "fp32") is None and grad_scaler(cpu, "bf16") is None
    with autocast(cpu, "bf16"):
        y = torch.nn.Linear(4, 3)(torch.ones(2, 4))
    assert y.dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert torch.nn.Linear(4, 3)(torch.ones(2, 4)).dtype == torch.float32


def test_host_tensors_stay_put_on_the_cpu_and_backends_follow_the_device() -> None:
    x = torch.arange(6)
    assert to_device(x, torch.device("cpu")) is x
    assert model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")
    assert process_group_backend(torch.device("cpu")) == "gloo"
    assert process_group_backend(torch.device("cuda", 0)) == "nccl"


def test_the_config_checks_device_names(tmp_path: Path) -> None:
    assert load_config(tiny_config(tmp_path / "a.yaml")).device == "auto"
    assert load_config(tiny_config(tmp_path / "b.yaml", device="cuda:1")).device == "cuda:1"
    with pytest.raises(ConfigError, match=r"device = 'gpu' is not a device"):
        load_config(tiny_config(tmp_path / "c.yaml", device="gpu"))


@no_cuda
def test_a_cuda_config_on_this_machine_stops_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config(tmp_path / "c.yaml", device="cuda")
    code, out = run_cli(["train", str(config), "--out", str(tmp_path / "run")], capsys)
    assert code != 0
    assert "device" in out and "cuda" in out and "use cpu or auto" in out
    assert "Traceback" not in out
    assert not (tmp_path / "run").exists()
    code, out = run_cli(
        ["train", str(config), "--out", str(tmp_path / "run"), "--device", "cpu", "--quiet"],
        capsys,
    )
    assert code == 0, out
    assert "on cpu" in (tmp_path / "run" / "train.log").read_text()
    assert load_config(tmp_path / "run" / "config.yaml").device == "cpu"


def test_fp16_is_refused_on_the_cpu_with_the_alternative(tmp_path: Path) -> None:
    config = load_config(tiny_config(tmp_path / "c.yaml", device="cpu"))
    config.train.precision = "fp16"
    with pytest.raises(ConfigError, match="on the CPU use bf16 or fp32"):
        train_run(config, tmp_path / "run", quiet=True)


def test_the_fp16_gradient_scaler_path_trains_and_skips_overflowing_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scaler's path (scale, all-reduce, unscale, clip, step, update) on the CPU, where
    torch's autocast and GradScaler also run float16, though slowly: the loss falls, and a
    step whose gradients overflow leaves the weights as they were."""
    import siamese.training.loop as loop_module
    from siamese.data.sampling.pk_sampler import PKSampler
    from siamese.data.sources import load_dataset
    from siamese.losses import TripletLoss
    from siamese.models.embedding import build_embedding_net
    from siamese.training.loop import TrainingLoop
    from siamese.training.objectives import Objective

    monkeypatch.setattr(loop_module, "check_precision", lambda *args: None)
    torch.manual_seed(0)
    data = load_dataset("digits")
    model = build_embedding_net(
        {"encoder": "convnet", "encoder_options": {"widths": [8, 16]}, "embedding_dim": 16},
        tuple(data.x.shape[1:]),
    )
    objective = Objective("pk", TripletLoss(0.2))
    sampler = PKSampler(data.y, 8, 4, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loop = TrainingLoop(
        model,
        objective,
        data,
        sampler,
        optimizer,
        schedule,
        40,
        precision="fp16",
        grad_clip=5.0,
        log_every=10,
    )
    assert isinstance(loop.scaler, torch.amp.GradScaler)
    history = loop.train()
    losses = [r["loss"] for r in history.records]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    # An overflowing step: the scaler skips it and lowers its scale.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scale = loop.scaler.get_scale()
    real_step = objective.step

    def overflowing(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = real_step(*args, **kwargs)
        out.loss = out.loss * float("inf")
        return out

    monkeypatch.setattr(objective, "step", overflowing)
    batch = next(iter(sampler))
    loop._step((torch.as_tensor(batch),))
    assert loop.scaler.get_scale() < scale
    for name, value in model.state_dict().items():
        if value.is_floating_point() and "running" not in name:
            assert torch.equal(value, before[name]), name


def test_a_checkpoint_resumes_under_another_device_setting(tmp_path: Path) -> None:
    """Written with `device: cpu`, resumed with `--device auto` (the GPU where there is one):
    the device is one of the keys a resumed run may change, and the run completes."""
    config = tiny_config(tmp_path / "c.yaml", device="cpu")
    run = tmp_path / "run"
    first = load_config(config, ["train.steps=3"])
    train_run(first, run, quiet=True)
    resumed = load_config(config, ["device=auto"])
    result = train_run(resumed, run, resume=True, quiet=True)
    assert result.steps == 6
    assert "changed on resume: device, train.steps" in (run / "train.log").read_text()


@cuda
def test_a_cuda_run_trains_in_bf16_and_fp16_and_resumes_on_the_cpu(tmp_path: Path) -> None:
    for precision in ("bf16", "fp16"):
        config = tiny_config(tmp_path / f"{precision}.yaml", device="cuda")
        run = tmp_path / precision
        cfg = load_config(config, [f"train.precision={precision}", "train.steps=3"])
        train_run(cfg, run, quiet=True)
        assert "on cuda" in (run / "train.log").read_text()
        resumed = load_config(config, [f"train.precision={precision}", "device=cpu"])
        if precision == "fp16":
            resumed.train.precision = "bf16"  # fp16 trains on GPUs only
        result = train_run(resumed, run, resume=True, quiet=True)
        assert result.steps == 6


@cuda
def test_a_recognizer_on_cuda_gives_the_cpu_embeddings(tmp_path: Path) -> None:
    from siamese.data.sources import load_dataset
    from siamese.recognition import Recognizer

    config = tiny_config(tmp_path / "c.yaml", device="cpu")
    train_run(load_config(config), tmp_path / "run", quiet=True)
    x = load_dataset("digits").x[:300]
    on_cpu = Recognizer.load(tmp_path / "run", device="cpu").embed_prepared(x)
    on_gpu = Recognizer.load(tmp_path / "run", device="cuda").embed_prepared(x)
    assert on_gpu.device.type == "cpu"
    assert torch.allclose(on_cpu, on_gpu, atol=1e-4)


@cuda
def test_evaluate_and_embed_run_on_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tiny_config(tmp_path / "c.yaml", device="cuda")
    train_run(load_config(config), tmp_path / "run", quiet=True)
    code, out = run_cli(["evaluate", str(tmp_path / "run"), "--device", "cuda", "--quiet"], capsys)
    assert code == 0, out
