"""Encoders by name: `build_encoder("resnet", (1, 112, 92), widths=[16, 32, 64])`.

The input shape comes from the data; the options are the encoder constructor's keyword
arguments (lists are accepted wherever a tuple is documented, as YAML and JSON give lists).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence
from typing import Any

from torch import nn

from siamese.errors import ConfigError
from siamese.faces.face_resnet import DlibFaceResNet
from siamese.models.arguments import checked_input_shape
from siamese.models.convnet import ConvNet
from siamese.models.mlp import MLP
from siamese.models.recurrent import RecurrentEncoder
from siamese.models.resnet import ResNet
from siamese.models.seed_cnn import SeedCNN

ENCODERS: tuple[str, ...] = (
    "mlp",
    "seed_cnn",
    "convnet",
    "resnet",
    "lstm",
    "gru",
    "dlib_face_resnet",
)
SELF_STANDARDISING: frozenset[str] = frozenset({"dlib_face_resnet"})
"""Encoders that standardise their inputs as their pretrained weights expect (dlib's face
ResNet subtracts its own channel means): a run leaves their inputs in [0, 1]."""

_CLASSES: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "seed_cnn": SeedCNN,
    "convnet": ConvNet,
    "resnet": ResNet,
    "lstm": RecurrentEncoder,
    "gru": RecurrentEncoder,
    "dlib_face_resnet": DlibFaceResNet,
}

# Constructor arguments set from the data or the encoder's name, never from options.
_NOT_OPTIONS = frozenset({"self", "input_shape", "in_channels", "kind", "load_weights"})


def encoder_options(name: str) -> tuple[str, ...]:
    """The option names `build_encoder` accepts for encoder `name`, in constructor order."""
    parameters = inspect.signature(_CLASSES[_known_encoder(name)].__init__).parameters
    return tuple(p for p in parameters if p not in _NOT_OPTIONS)


def build_encoder(
    name: str, input_shape: Sequence[int], load_weights: bool = True, **options: Any
) -> nn.Module:
    """The encoder called `name` for examples of shape `input_shape` (without the batch dim).

    The result maps (N, *input_shape) float inputs to (N, out_features) features and has
    `out_features`, `encoder_name` and `encoder_options` (JSON-able) attributes. A pretrained
    encoder (`dlib_face_resnet` with pretrained true) starts from its published weights unless
    `load_weights` is False (a saved model's own weights are about to replace them).

    Raises:
        ConfigError: for an unknown name or option, or an input shape the encoder cannot read.
    """
    name = _known_encoder(name)
    shape = checked_input_shape(name, input_shape)
    valid = encoder_options(name)
    for option in options:
        if option not in valid:
            near = difflib.get_close_matches(option, valid, n=1)
            suggestion = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(
                f"unknown option {option!r} for encoder {name!r}{suggestion}: its options are "
                f"{', '.join(valid)}; fix or remove it (model.options in a run config)"
            )
    if name == "convnet":
        convnet = ConvNet(in_channels=shape[0], **options)
        _check_convnet_size(shape, convnet.encoder_options["widths"])
        return convnet
    if name in ("lstm", "gru"):
        return RecurrentEncoder(shape, kind=name, **options)
    if name == "dlib_face_resnet":
        return DlibFaceResNet(shape, load_weights=load_weights, **options)
    return _CLASSES[name](shape, **options)


def _known_encoder(name: str) -> str:
    if name in ENCODERS:
        return name
    near = difflib.get_close_matches(str(name), ENCODERS, n=1, cutoff=0.5)
    suggestion = f"; did you mean {near[0]!r}?" if near else ""
    raise ConfigError(
        f"unknown encoder {name!r} (model.encoder in a run config): choose one of "
        f"{', '.join(ENCODERS)}{suggestion}"
    )


def _check_convnet_size(shape: tuple[int, ...], widths: Sequence[int]) -> None:
    """Each convnet block halves H and W (floor); an image that shrinks to nothing fails."""
    smallest = 2 ** len(tuple(widths))
    if min(shape[1:]) < smallest:
        raise ConfigError(
            f"encoder 'convnet' with {len(tuple(widths))} blocks needs images of at least "
            f"{smallest}×{smallest}, but the data's examples have shape {shape}: use fewer "
            "widths entries, or larger images"
        )
