"""One forward and backward pass of each case named on the command line, in this process, with
oneDNN's verbose log on (the test that starts it sets ONEDNN_VERBOSE=1 and reads both).

A case is `ENCODER:C,H,W:JSON-OPTIONS` (an encoder of the zoo on a (C, H, W) input, built
with those options, wrapped in an EmbeddingNet as training does), or
`strided_conv:C_IN,C_OUT,K,STRIDE` (one `StridedConv2d` on a channels-last (4, C_IN, 64, 64)
input that needs a gradient: the geometry of issue 23's reproducer). Each finished case prints
`case-ok NAME`; a native crash ends the process before that line.
"""

from __future__ import annotations

import json
import sys

import torch

from siamese.models.builder import build_encoder
from siamese.models.embedding import EmbeddingNet
from siamese.models.strided_convolution import StridedConv2d


def run_case(case: str) -> None:
    kind, rest = case.split(":", 1)
    torch.manual_seed(0)
    if kind == "strided_conv":
        c_in, c_out, k, stride = (int(v) for v in rest.split(","))
        conv = StridedConv2d(c_in, c_out, k, stride, bias=False)
        conv = conv.to(memory_format=torch.channels_last)
        x = torch.rand(4, c_in, 64, 64).to(memory_format=torch.channels_last).requires_grad_()
        conv(x).sum().backward()
        assert x.grad is not None and conv.weight.grad is not None
        return
    shape_text, options_text = rest.split(":", 1)
    shape = tuple(int(v) for v in shape_text.split(","))
    encoder = build_encoder(kind, shape, **json.loads(options_text))
    net = EmbeddingNet(encoder, embedding_dim=8, normalize=False).train()
    net(torch.rand(4, *shape)).square().sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        run_case(name)
        print(f"case-ok {name}", flush=True)
