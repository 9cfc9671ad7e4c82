"""`dlib_face_resnet`: dlib's face recognition ResNet (Davis King, 2017) as a PyTorch encoder.

The network behind dlib's `face_recognition_model_v1` and the face_recognition package: a
29-layer residual network on 150×150 RGB face chips (aligned with dlib's 5-point landmarks),
trained with a pair-margin metric loss on about 3 million faces of 7,485 people; its 128-d
descriptors are compared by Euclidean distance (0.6 is dlib's "same person" threshold).

dlib's definition (`dnn_face_recognition_ex.cpp`), restated here:

    stem      con 32×7×7 stride 2 (no padding), affine, relu, max_pool 3×3 stride 2
    level 4   3 residual blocks of 32 channels
    level 3   1 down block + 3 blocks of 64
    level 2   1 down block + 2 blocks of 128
    level 1   1 down block + 2 blocks of 256
    level 0   1 down block of 256
    head      average over all positions, fully connected 256 → 128 without bias

A block is con 3×3, affine, relu, con 3×3, affine, plus its input, then relu; a down block's
first convolution has stride 2 and no padding, and its input reaches the sum through a 2×2
average pool (stride 2). Where the two do not match, dlib adds them as if the smaller were
padded with zeros (channels and the bottom/right edge): the 32 → 64 channel steps, and on
150×150 chips the 3×3 block output against the 4×4 pooled input at level 1. `affine` is a
per-channel scale and shift (dlib's batch norm, frozen after training).

Weights come from dlib's own file, `dlib_face_recognition_resnet_model_v1.dat` in the
`face_recognition_models` package (public domain, CC0), parsed by
`siamese.faces.dlib_format` and cached as safetensors. The port's descriptors equal
`dlib.face_recognition_model_v1.compute_face_descriptor` on the same chips (tested to 1e-4).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn
from torch.nn import functional as F

from siamese.atomic_files import write_bytes_atomic
from siamese.cache import cache_dir
from siamese.errors import ConfigError, DataError
from siamese.faces.dlib_format import DlibLayer, read_dlib_network

CHIP_SIZE = 150
DESCRIPTOR_DIM = 128
DLIB_THRESHOLD = 0.6  # dlib's (and face_recognition's) "same person" Euclidean distance
# (channels, blocks, whether the level starts with a down block), input side first
_LEVELS = ((32, 3, False), (64, 3, True), (128, 2, True), (256, 2, True), (256, 0, True))
_WEIGHTS_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def _last_level_side(side: int) -> int:
    """The last level's feature-map side for an input side, 0 where some layer's input is
    smaller than its 3×3 or 7×7 kernel (each spatial dimension on its own)."""
    side = (side - 7) // 2 + 1  # stem convolution, 7×7 stride 2, no padding
    if side < 3:
        return 0
    side = (side - 3) // 2 + 1  # max pool 3×3 stride 2
    for _, _, down in _LEVELS:
        if down:
            if side < 3:
                return 0
            side = max((side - 3) // 2 + 1, side // 2)  # Block's convolution or its pool
    return side


SMALLEST_SIDE = next(side for side in range(7, CHIP_SIZE + 1) if _last_level_side(side) > 0)
"""The smallest input height and width the network reads (103)."""


class Affine(nn.Module):
    """Per-channel scale and shift: (N, C, H, W) → (N, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias[:, None, None], x, self.weight[:, None, None])


class Block(nn.Module):
    """dlib's residual block: (N, C_in, H, W) → (N, C_out, H', W'); H' = H for a plain block,
    and for a down block the larger of ⌊(H-3)/2⌋+1 (the convolution) and ⌊H/2⌋ (the pool)."""

    def __init__(self, in_channels: int, out_channels: int, down: bool) -> None:
        super().__init__()
        stride, padding = (2, 0) if down else (1, 1)
        self.down = down
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding)
        self.affine1 = Affine(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.affine2 = Affine(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_zero_padded_sum(y, shortcut))


def _zero_padded_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b as dlib's add_prev adds them: the result has the larger of each dimension, and
    each tensor counts as zero where it is smaller (channels and bottom/right edge)."""
    if a.shape == b.shape:
        return a + b
    channels = max(a.shape[1], b.shape[1])
    height, width = max(a.shape[2], b.shape[2]), max(a.shape[3], b.shape[3])

    def grown(t: torch.Tensor) -> torch.Tensor:
        pad = (0, width - t.shape[3], 0, height - t.shape[2], 0, channels - t.shape[1])
        return F.pad(t, pad) if any(pad) else t

    return grown(a) + grown(b)


class DlibFaceResNet(nn.Module):
    """dlib's face ResNet: (N, 3, H, W) RGB in [0, 1] or uint8 (150×150 aligned chips as trained) →
    (N, 128) descriptors, unnormalised as dlib's (norms near 1).

    Args:
        input_shape: (3, H, W); dlib's chips are 150×150, other sizes run but are untested.
        pretrained: start from dlib's trained weights (needs the `faces` extra the first time,
            then the safetensors cache); False starts from random weights.
        load_weights: False builds the architecture only (what loading a saved model does,
            before its own weights replace these).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...] = (3, CHIP_SIZE, CHIP_SIZE),
        pretrained: bool = True,
        load_weights: bool = True,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3 or input_shape[0] != 3:
            raise ConfigError(
                f"encoder 'dlib_face_resnet' reads RGB images (3, H, W), not {tuple(input_shape)}: "
                "load the images with channels 3 (face chips are 150×150)"
            )
        if min(input_shape[1:]) < SMALLEST_SIDE:
            raise ConfigError(
                f"encoder 'dlib_face_resnet' needs images of at least {SMALLEST_SIDE}×"
                f"{SMALLEST_SIDE} (smaller ones vanish before its last level; it was trained on "
                f"150×150 face chips), not {input_shape[1]}×{input_shape[2]}"
            )
        if not isinstance(pretrained, bool):
            raise ConfigError(f"pretrained must be true or false, got {pretrained!r}")
        self.out_features = DESCRIPTOR_DIM
        self.encoder_name = "dlib_face_resnet"
        self.encoder_options: dict[str, Any] = {"pretrained": pretrained}
        # dlib's input layer: (pixel - channel mean) / 256 on 0-255 values
        self.register_buffer("pixel_mean", torch.zeros(3, 1, 1), persistent=True)
        self.conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.affine = Affine(32)
        blocks: list[nn.Module] = []
        channels = 32
        for width, count, down in _LEVELS:
            if down:
                blocks.append(Block(channels, width, down=True))
            blocks.extend(Block(width, width, down=False) for _ in range(count))
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, DESCRIPTOR_DIM, bias=False)
        if pretrained and load_weights:
            self.load_state_dict(dlib_weights())
        # channels-last activations: 1.8× faster inference on 2 cores (40 chips: 0.34 s → 0.19 s)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) floats in [0, 1], or uint8 0 … 255 → (N, 128)."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = (x.contiguous(memory_format=torch.channels_last) * 255.0 - self.pixel_mean) / 256.0
        x = F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


def weights_file() -> Path:
    """dlib's face ResNet file inside the installed face_recognition_models package.

    Raises:
        ConfigError: the package is not installed (the message says how to install it).
    """
    from siamese.faces.dependencies import face_models_dir

    return face_models_dir() / _WEIGHTS_FILE


def dlib_weights(path: Path | str | None = None, use_cache: bool = True) -> dict[str, torch.Tensor]:
    """The state dict of `DlibFaceResNet` holding dlib's trained weights.

    Args:
        path: the dlib `.dat` file; None finds it in face_recognition_models.
        use_cache: read (and write) the converted weights in `cache_dir() / "faces"`, keyed by
            the SHA-256 of the `.dat` file, so later loads skip the parse.
    Returns:
        name → float32 tensor, for `DlibFaceResNet.load_state_dict`.
    Raises:
        ConfigError: face_recognition_models is not installed. DataError: the file is not
            the network this module restates.
    """
    source = Path(path) if path is not None else weights_file()
    try:
        raw = source.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {source} ({err.strerror or err})") from None
    digest = hashlib.sha256(raw).hexdigest()[:16]
    cached = cache_dir() / "faces" / f"dlib_face_resnet-{digest}.safetensors"
    if use_cache and cached.is_file():
        try:
            return safetensors.torch.load(cached.read_bytes())
        except Exception:  # a damaged cache file is rebuilt from the source
            pass
    state = _state_from_layers(read_dlib_network(source).layers, str(source))
    if use_cache:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(cached, safetensors.torch.save(state))
        except OSError:  # a read-only cache costs a parse next time, nothing more
            pass
    return state


def _state_from_layers(layers: list[DlibLayer], source: str) -> dict[str, torch.Tensor]:
    """Map dlib's layers (input first) onto `DlibFaceResNet`'s parameters, checking that the
    file holds exactly this architecture."""
    expected = _expected_kinds()
    found = [layer.kind for layer in layers]
    if found != expected:
        at = next(
            (i for i, (a, b) in enumerate(zip(found, expected, strict=False)) if a != b), None
        )
        where = (
            f"layer {at} is {found[at]!r} where {expected[at]!r} was expected"
            if at is not None
            else f"{len(found)} layers instead of {len(expected)}"
        )
        raise DataError(
            f"{source} is not dlib's face recognition ResNet ({where}): use "
            f"{_WEIGHTS_FILE} from the face_recognition_models package"
        )
    reference = DlibFaceResNet(pretrained=False)
    names = iter(
        name for name, _ in reference.named_parameters() if not name.startswith("fc.")
    )  # conv/affine parameters in input-to-output order, weight before bias
    state: dict[str, torch.Tensor] = {}
    means = layers[0].settings["means"]
    state["pixel_mean"] = torch.tensor(means, dtype=torch.float32).reshape(3, 1, 1)
    for layer in layers[1:]:
        if layer.kind == "con":
            weight_name, bias_name = next(names), next(names)
            shape = reference.get_parameter(weight_name).shape
            count = int(np.prod(shape))
            params = torch.from_numpy(layer.params.copy())
            _check_size(params, count + shape[0], layer, source)
            state[weight_name] = params[:count].reshape(shape)
            state[bias_name] = params[count:]
        elif layer.kind == "affine":
            weight_name, bias_name = next(names), next(names)
            channels = reference.get_parameter(weight_name).shape[0]
            params = torch.from_numpy(layer.params.copy())
            _check_size(params, 2 * channels, layer, source)
            state[weight_name], state[bias_name] = params[:channels], params[channels:]
        elif layer.kind == "fc":
            params = torch.from_numpy(layer.params.copy())
            _check_size(params, 256 * DESCRIPTOR_DIM, layer, source)
            # dlib multiplies (N, inputs) by an (inputs, outputs) matrix
            state["fc.weight"] = params.reshape(256, DESCRIPTOR_DIM).t().contiguous()
    return state


def _check_size(params: torch.Tensor, count: int, layer: DlibLayer, source: str) -> None:
    if params.numel() != count:
        raise DataError(
            f"{source}: a {layer.kind} layer holds {params.numel()} parameters where dlib's "
            f"face ResNet has {count}: use {_WEIGHTS_FILE} from face_recognition_models"
        )


def _expected_kinds() -> list[str]:
    kinds = ["input_rgb_image_sized", "con", "affine", "relu", "max_pool"]
    block = ["con", "affine", "relu", "con", "affine"]
    for _, count, down in _LEVELS:
        if down:
            kinds += [*block, "avg_pool", "add_prev", "relu"]
        kinds += [*block, "add_prev", "relu"] * count
    return [*kinds, "avg_pool", "fc"]
