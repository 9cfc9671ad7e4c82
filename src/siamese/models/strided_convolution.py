"""`StridedConv2d`: a strided convolution that trains without oneDNN's crashing kernels.

torch's CPU build runs convolutions on oneDNN, whose backward kernels for a strided convolution
on a channels-last input with few channels corrupt the heap: the process dies with a
segmentation fault, "double free or corruption", "munmap_chunk(): invalid pointer", or hangs.
Measured with torch 2.13.0+cpu (oneDNN 3.12), `Conv2d(C, 16, k, stride=2)` on (4, C, 64, 64):

- AMD EPYC (AVX2): k = 1, C = 1…7: `jit_1x1:avx2` backward_weights dies (also when the input
  needs no gradient); C ≥ 8 passes; every 3×3 passes. A smaller image (17×17) happens to
  survive the same overrun.
- Intel Xeon (AVX-512, AMX): k = 1, C ∈ {3, 4, 8, 12}: `brgconv_strided:avx512_core`
  backward_data aborts; C ∈ {16, 32, 64} passes (issue 23).

Both fail on channel tails (C not a multiple of the 8- or 16-float vector block) of strided
kernels; the AVX2 one writes past its "reduce to unit stride" workspace (oneDNN issue 6035).
A larger strided kernel's backward_data runs the same `brgconv_strided` kernel that aborts on
AVX-512, untested there at small C; unit-stride kernels at small C are what every narrow
ConvNet trains through on both CPU families. Which layout torch asks for does not avoid the
strided ones: oneDNN picks a channels-last backward kernel even for an NCHW tensor. So, while
gradients are needed, such a convolution runs here without any strided oneDNN kernel, on every
CPU (`conv2d_without_strided_kernels`: a 1×1 kernel as a matrix product of every stride-th
pixel, a larger one as the unit-stride convolution read at every stride-th output):

- when `in_channels` is not a multiple of 16 (covers both vector blocks), the stride is
  greater than 1, and either the kernel is 1×1 (backward_weights and backward_data both
  fail) or the input needs a gradient (backward_data: the kernel that aborts on AVX-512). A larger strided kernel whose
  input needs no gradient (a stem on the image itself) only computes backward_weights, which
  is every channels-last ResNet stem's path and has not been seen failing.
- Inference (no gradient) keeps oneDNN's forward kernels: faster, and never seen failing.

The results equal `Conv2d`'s to float rounding (tests compare both with float64 references),
the parameters are `Conv2d`'s (same names and shapes, so saved weights load either way); what
the detour costs is measured in `benchmarks/bench_strided_convolution.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ONEDNN_CHANNEL_BLOCK = 16
"""Input channels that are a multiple of this never reach the kernels' failing tails (AVX2
blocks channels by 8 floats, AVX-512 by 16)."""


def needs_safe_path(
    in_channels: int,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    input_requires_grad: bool,
    weight_requires_grad: bool,
) -> bool:
    """Whether a convolution's backward pass would reach oneDNN's failing strided kernels.

    Args:
        in_channels: the convolution's input channels.
        kernel_size, stride: (kh, kw) and (sh, sw).
        input_requires_grad: the backward pass computes the input's gradient (backward_data).
        weight_requires_grad: it computes the weight's gradient (backward_weights).
    """
    if in_channels % ONEDNN_CHANNEL_BLOCK == 0 or all(s == 1 for s in stride):
        return False
    pointwise = all(k == 1 for k in kernel_size)
    return input_requires_grad or (pointwise and weight_requires_grad)


def conv2d_without_strided_kernels(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> torch.Tensor:
    """A strided 2-d convolution (groups 1, zero padding) that no strided oneDNN kernel
    computes, forward or backward.

    A 1×1 kernel without padding reads every stride-th pixel: those pixels times the weight
    matrix, one matrix product (BLAS). A larger kernel is the unit-stride convolution (oneDNN's
    unit-stride kernels, which every narrow ConvNet trains through) read at every stride-th
    output: exact, at stride² times the arithmetic of that one layer.

    Args:
        x: (N, C, H, W) input, any memory format.
        weight: (O, C, kh, kw); bias: (O,) or None.
    Returns:
        (N, O, H', W') in channels-last memory format, H' = ⌊(H + 2·ph − dh·(kh−1) − 1)/sh⌋ + 1
        (likewise W'), as `F.conv2d` gives.
    """
    sh, sw = stride
    out_channels, in_channels, kh, kw = weight.shape
    if (kh, kw) == (1, 1) and tuple(padding) == (0, 0):
        pixels = x[:, :, ::sh, ::sw].permute(0, 2, 3, 1)  # (N, H', W', C)
        out = pixels @ weight.reshape(out_channels, in_channels).t()  # (N, H', W', O)
        if bias is not None:
            out = out + bias
        return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    full = F.conv2d(x, weight, bias, 1, padding, dilation)
    return full[:, :, ::sh, ::sw].contiguous(memory_format=torch.channels_last)


class StridedConv2d(nn.Conv2d):
    """`nn.Conv2d` (groups 1, zero padding) that trains through
    `conv2d_without_strided_kernels` where oneDNN's strided backward kernels would crash
    (`needs_safe_path`); otherwise, and always without gradients, exactly `nn.Conv2d`. Same
    parameters, so the same state dict."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if self.groups != 1 or self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError("StridedConv2d supports groups=1, zero padding given as numbers")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) → (N, C_out, H', W'), as `nn.Conv2d`."""
        if torch.is_grad_enabled() and needs_safe_path(
            self.in_channels,
            self.kernel_size,
            self.stride,
            x.requires_grad,
            self.weight.requires_grad,
        ):
            return conv2d_without_strided_kernels(
                x,
                self.weight,
                self.bias,
                self.stride,  # type: ignore[arg-type]
                self.padding,  # type: ignore[arg-type]
                self.dilation,  # type: ignore[arg-type]
            )
        return super().forward(x)
