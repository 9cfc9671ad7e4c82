"""`StridedConv2d`: equal to a float64 convolution, forward and backward, on every path; and no
encoder of the zoo, at narrow widths, hands oneDNN a strided backward kernel that crashes on
some CPUs (issue 23). The native part runs in subprocesses, so a crash fails a test instead of
killing the suite, and it reads oneDNN's own log of what it executed: the check holds on any
CPU, not only on those where the kernels happen to crash."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from siamese.models.strided_convolution import (
    StridedConv2d,
    conv2d_without_strided_kernels,
    needs_safe_path,
)

PROBE = Path(__file__).resolve().parents[1] / "scripts" / "backward_pass_probe.py"


def reference_conv(x, weight, bias, stride, padding, dilation, grad_out):
    """Output and gradients of a float64 convolution (ATen's own kernels: oneDNN has none for
    float64)."""
    x64 = x.detach().double().contiguous().requires_grad_()
    w64 = weight.detach().double().contiguous().requires_grad_()
    b64 = bias.detach().double().requires_grad_() if bias is not None else None
    out = F.conv2d(x64, w64, b64, stride, padding, dilation)
    (out * grad_out.double()).sum().backward()
    return out, x64.grad, w64.grad, (b64.grad if b64 is not None else None)


CASES = list(
    itertools.product(
        [1, 3, 4, 8, 12, 16, 24],  # input channels: tails of 8- and 16-float blocks, and none
        [(1, 0), (3, 1), (3, 0)],  # (kernel, padding)
        [(2, 2), (2, 1), (1, 1)],  # stride
        [True, False],  # channels-last input
    )
)


@pytest.mark.parametrize(("c_in", "kernel_padding", "stride", "channels_last"), CASES)
def test_training_path_equals_a_float64_convolution(c_in, kernel_padding, stride, channels_last):
    kernel, padding = kernel_padding
    torch.manual_seed(c_in)
    conv = StridedConv2d(c_in, 6, kernel, stride, padding, bias=True)
    x = torch.randn(3, c_in, 13, 10)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    out = conv(x)
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()
    want, dx, dw, db = reference_conv(x, conv.weight, conv.bias, stride, padding, (1, 1), grad_out)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), dx, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad.double(), dw, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(conv.bias.grad.double(), db, rtol=1e-5, atol=1e-4)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("channels_last", [True, False])
def test_detour_with_dilation_and_uneven_strides(channels_last: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 11, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    weight = torch.randn(7, 5, 3, 2, requires_grad=True)
    out = conv2d_without_strided_kernels(x, weight, None, (3, 2), (2, 1), (2, 1))
    assert out.is_contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()
    want, dx, dw, _ = reference_conv(x, weight, None, (3, 2), (2, 1), (2, 1), grad_out)
    assert out.shape == want.shape
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), dx, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weight.grad.double(), dw, rtol=1e-5, atol=1e-4)


def test_zero_input_gives_zero_output_and_finite_gradients() -> None:
    conv = StridedConv2d(4, 8, 1, 2, bias=False)
    x = torch.zeros(2, 4, 8, 8, requires_grad=True)
    out = conv(x)
    out.sum().backward()
    assert torch.equal(out, torch.zeros(2, 8, 4, 4))
    assert torch.isfinite(x.grad).all() and torch.isfinite(conv.weight.grad).all()


def test_which_convolutions_take_the_safe_path() -> None:
    pointwise, square = (1, 1), (3, 3)
    # 1×1 strided on a channel tail: both backward kernels fail, so either gradient counts
    assert needs_safe_path(
        4, pointwise, (2, 2), input_requires_grad=False, weight_requires_grad=True
    )
    assert needs_safe_path(
        12, pointwise, (2, 1), input_requires_grad=True, weight_requires_grad=False
    )
    # larger strided kernels: only backward_data (an input that needs its gradient)
    assert needs_safe_path(8, square, (2, 2), input_requires_grad=True, weight_requires_grad=True)
    assert not needs_safe_path(
        3, square, (2, 2), input_requires_grad=False, weight_requires_grad=True
    )
    # whole vector blocks, unit stride, or nothing to differentiate: oneDNN as usual
    assert not needs_safe_path(
        16, pointwise, (2, 2), input_requires_grad=True, weight_requires_grad=True
    )
    assert not needs_safe_path(
        64, square, (2, 2), input_requires_grad=True, weight_requires_grad=True
    )
    assert not needs_safe_path(
        4, pointwise, (1, 1), input_requires_grad=True, weight_requires_grad=True
    )
    assert not needs_safe_path(
        4, pointwise, (2, 2), input_requires_grad=False, weight_requires_grad=False
    )


def test_inference_is_exactly_conv2d_and_the_state_dict_is_conv2ds() -> None:
    torch.manual_seed(0)
    plain = nn.Conv2d(4, 8, 3, 2, 1).to(memory_format=torch.channels_last)
    strided = StridedConv2d(4, 8, 3, 2, 1).to(memory_format=torch.channels_last)
    strided.load_state_dict(plain.state_dict(), strict=True)
    assert list(strided.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 4, 16, 16).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(strided(x), plain(x))


def test_unsupported_convolutions_are_refused() -> None:
    with pytest.raises(ValueError, match="groups=1"):
        StridedConv2d(4, 8, 3, 2, groups=2)
    with pytest.raises(ValueError, match="zero padding"):
        StridedConv2d(4, 8, 3, 1, padding="same")


# ----------------------------------------------------------------------------------------------
# oneDNN's log of the backward passes, in a subprocess

PROBLEM = re.compile(r"ic(\d+).*?kh(\d+)sh(\d+).*?(?:kw(\d+)sw(\d+))?")


def crashing_kind(line: str) -> str | None:
    """The oneDNN convolution in this verbose line, if it is of the kind that crashes: a strided
    backward whose input channels are not a multiple of 16, and 1×1 or backward_data."""
    fields = line.split(",")
    if len(fields) < 8 or fields[3] != "exec" or fields[5] != "convolution":
        return None
    direction = fields[7]
    if not direction.startswith("backward"):
        return None
    problem = next((f for f in fields if f.startswith(("mb", "g")) and "ic" in f), "")
    match = PROBLEM.search(problem)
    if match is None:
        return None
    ic, kh, sh = int(match[1]), int(match[2]), int(match[3])
    kw, sw = int(match[4] or kh), int(match[5] or sh)
    strided = sh > 1 or sw > 1
    if strided and ic % 16 and (direction == "backward_data" or kh == kw == 1):
        return f"{fields[6]} {direction} {problem}"
    return None


def run_probe(cases: list[str]) -> list[str]:
    """Run the cases in a fresh process with oneDNN's verbose log; return the log lines."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "OMP_NUM_THREADS": "2"}
    result = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(PROBE), *cases],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    done = [
        line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith("case-ok ")
    ]
    assert result.returncode == 0 and done == cases, (
        f"the probe died (exit {result.returncode}) after {done} of {cases}:\n"
        + result.stderr[-3000:]
    )
    return result.stdout.splitlines()


def test_verbose_log_parser_recognises_the_crashing_kernels() -> None:
    """The lines issue 23 and this CPU's crash printed, and harmless ones."""
    line = (
        "onednn_verbose,v1,primitive,exec,cpu,convolution,{impl},{dir},src:f32::blocked:acdb::f0 "
        "wei:f32:ap:blocked:Bcda8b::f0 bia:undef::undef::: dst:f32::blocked:acdb::f0,"
        "attr-scratchpad:user,alg:convolution_direct,{problem},0.27"
    )
    bad_1x1 = "mb4_ic8oc16_ih64oh32kh1sh2dh0ph0_iw64ow32kw1sw2dw0pw0"
    assert crashing_kind(
        line.format(impl="brgconv_strided:avx512_core", dir="backward_data", problem=bad_1x1)
    )
    assert crashing_kind(
        line.format(
            impl="jit_1x1:avx2", dir="backward_weights", problem=bad_1x1.replace("ic8", "ic4")
        )
    )
    assert not crashing_kind(
        line.format(impl="brgconv_1x1:avx2", dir="forward_training", problem=bad_1x1)
    )
    assert not crashing_kind(
        line.format(
            impl="jit_1x1:avx2", dir="backward_data", problem=bad_1x1.replace("ic8", "ic32")
        )
    )
    stem = "mb4_ic3oc32_ih150oh72kh7sh2dh0ph0_iw150ow72kw7sw2dw0pw0"
    assert not crashing_kind(line.format(impl="jit:avx2", dir="backward_weights", problem=stem))
    assert crashing_kind(
        line.format(impl="brgconv_strided:avx2", dir="backward_data", problem=stem)
    )


# Every encoder of the zoo with convolutions, at widths that are not multiples of 16, on the
# inputs it reads (the crashing models among them). Without convolutions (mlp, lstm,
# gru) an encoder never reaches these kernels.
NARROW_ENCODERS = [
    'resnet:3,64,64:{"widths": [8, 16]}',
    'resnet:1,112,92:{"widths": [8, 16, 16]}',
    'resnet:3,64,64:{"widths": [4, 8]}',
    'resnet:1,28,28:{"widths": [3, 5, 12], "blocks": [1, 2, 1]}',
    'resnet:3,48,40:{"widths": [12, 24], "stem_stride": 2}',
    'resnet:1,28,28:{"widths": [1, 2]}',
    'convnet:1,28,28:{"widths": [3, 5]}',
    'convnet:3,64,64:{"widths": [4, 8, 12]}',
    'seed_cnn:1,28,28:{"channels": [3, 5]}',
    'seed_cnn:3,64,64:{"channels": [4, 8], "kernel_size": 5}',
    'dlib_face_resnet:3,104,104:{"pretrained": false}',
]


@pytest.mark.parametrize("case", NARROW_ENCODERS)
def test_narrow_encoders_train_without_the_crashing_kernels(case: str) -> None:
    log = run_probe([case])
    convolutions = [line for line in log if ",convolution," in line and ",exec," in line]
    assert convolutions or case.startswith("seed_cnn"), "oneDNN logged no convolution"
    crashing = [kind for kind in map(crashing_kind, log) if kind]
    assert not crashing, f"{case} ran oneDNN kernels that crash on some CPUs: {crashing}"


def test_the_reproducers_geometry_trains_without_the_crashing_kernels() -> None:
    """Issue 23's reproducer (8 → 16 channels, 1×1, stride 2, channels-last 64×64, input
    gradient), the input channels that crashed there (3, 4, 8, 12) and here (1 … 7), and
    whole blocks (16, 32), which still run on oneDNN."""
    cases = [f"strided_conv:{c},16,1,2" for c in (1, 3, 4, 5, 7, 8, 12, 16, 32)]
    cases += ["strided_conv:8,16,3,2", "strided_conv:12,16,3,2"]
    log = run_probe(cases)
    crashing = [kind for kind in map(crashing_kind, log) if kind]
    assert not crashing, crashing
    used = [line for line in log if ",convolution," in line and "backward" in line]
    assert any("ic16oc16" in line for line in used)  # whole blocks stay on oneDNN


def test_a_narrow_resnet_trains_and_its_model_embeds(tmp_path: Path) -> None:
    """`siamese train` on the geometry that crashed here (4 → 8 channels through a 1×1
    stride-2 shortcut, channels-last); the saved model embeds the same with and without
    gradients (the detour and oneDNN's forward kernel)."""
    from siamese.models.files import load_model
    from siamese.training.training_run import train_run
    from tests.conftest import small_digits_config

    out = tmp_path / "run"
    config = small_digits_config("model.encoder=resnet", "model.options.widths=[4, 8]")
    assert train_run(config, out, quiet=True).steps > 0
    model = load_model(out).eval()
    shortcut = model.encoder.stages[1][0].shortcut[0]
    assert isinstance(shortcut, StridedConv2d) and shortcut.in_channels == 4
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        inference = model(x)
    x.requires_grad_()
    training_path = model(x)
    torch.testing.assert_close(training_path.detach(), inference, rtol=1e-5, atol=1e-5)
