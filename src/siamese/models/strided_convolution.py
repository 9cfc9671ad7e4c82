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

Both are the kernels' channel tails (C not a multiple of the 8- or 16-float vector block) in
the "reduce to unit stride" copy of a strided input. Which layout torch asks for does not avoid
them: oneDNN picks a channels-last backward kernel even for an NCHW tensor. So, while
gradients are needed, such a convolution runs here as unfold + matrix product (ATen's im2col
and col2im, and BLAS), which no oneDNN convolution touches, on every CPU:

- when `in_channels` is not a multiple of 16 (covers both vector blocks), the stride is
  greater than 1, and either the kernel is 1×1 (backward_weights and backward_data both
  fail) or the input needs a gradient (backward_data fails). A larger strided kernel whose
  input needs no gradient (a stem on the image itself) only computes backward_weights, which
  is every channels-last ResNet stem's path and has not been seen failing.
- Inference (no gradient) keeps oneDNN's forward kernels: faster, and never seen failing.

The results equal `Conv2d`'s to float rounding (tests compare both with float64 references),
the parameters are `Conv2d`'s (same names and shapes, so saved weights load either way), and
narrow layers are cheap to unfold: the price is measured in `benchmarks/bench_strided_convolution.py`.
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


def conv2d_by_matmul(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> torch.Tensor:
    """A 2-d convolution (groups 1, zero padding) as im2col and one matrix product.

    Args:
        x: (N, C, H, W) input, any memory format.
        weight: (O, C, kh, kw); bias: (O,) or None.
    Returns:
        (N, O, H', W') in channels-last memory format, H' = ⌊(H + 2·ph − dh·(kh−1) − 1)/sh⌋ + 1
        (likewise W'), as `F.conv2d` gives.
    """
    n, _, h, w = x.shape
    out_channels, _, kh, kw = weight.shape
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    columns = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)
    # (N, L, C·kh·kw) @ (C·kh·kw, O) → (N, L, O): rows are output pixels, so the result is
    # already the channels-last layout the rest of the network keeps.
    out = columns.transpose(1, 2) @ weight.reshape(out_channels, -1).t()
    if bias is not None:
        out = out + bias
    return out.reshape(n, oh, ow, out_channels).permute(0, 3, 1, 2)


class StridedConv2d(nn.Conv2d):
    """`nn.Conv2d` (groups 1, zero padding) that trains through `conv2d_by_matmul` where
    oneDNN's strided backward kernels would crash (`needs_safe_path`); otherwise, and always
    without gradients, exactly `nn.Conv2d`. Same parameters, so the same state dict."""

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
            return conv2d_by_matmul(
                x,
                self.weight,
                self.bias,
                self.stride,  # type: ignore[arg-type]
                self.padding,  # type: ignore[arg-type]
                self.dilation,  # type: ignore[arg-type]
            )
        return super().forward(x)
