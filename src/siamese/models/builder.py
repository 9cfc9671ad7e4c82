"""Encoders by name: `build_encoder("resnet", (1, 112, 92), widths=[16, 32, 64])`, or your own
by import path: `build_encoder("mypkg.encoders:small_cnn", (1, 28, 28), width=32)`.

The input shape comes from the data; the options are the encoder constructor's keyword
arguments (lists are accepted wherever a tuple is documented, as YAML and JSON give lists).

Your own encoder (`model.encoder: "package.module:factory"` in a run config) is a callable
that `importlib` can reach through that path, called as

    factory(input_shape: tuple[int, ...], **options) -> nn.Module

(a factory without an `input_shape` parameter and without `**kwargs` is called with the
options only). The module it returns maps (N, *input_shape) float inputs to (N, F) features;
F is its `out_features` attribute when that is an int, else it is measured with one forward
pass of zeros. The options are checked against the factory's signature (any name goes when it
takes `**kwargs`) and must be JSON-able, since `model.json` records them beside the path;
they come back from JSON with lists for tuples. Loading the model again imports that path and
calls the factory with the same options, then loads the weights from safetensors.

Security: the path in a model.json is imported, so loading a model runs the code of the module
it names, just as unpickling would run code: only load models you trust. Nothing is ever
unpickled, and nothing is imported but the module that path names (and what it imports).
"""

from __future__ import annotations

import copy
import difflib
import importlib
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
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


ENCODER_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)
"""The form of your own encoder's path, `package.module:factory` (the factory may be an
attribute path, `module:Class.create`)."""


class EncoderImportError(ConfigError):
    """Your own encoder's path (`package.module:factory`) cannot be imported.

    Attributes:
        path: the path as given.
        reason: what went wrong (the ImportError's or AttributeError's text).
    """

    def __init__(self, message: str, path: str, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


def is_encoder_path(name: object) -> bool:
    """Whether `name` has the form of your own encoder's path, `package.module:factory`."""
    return isinstance(name, str) and ENCODER_PATH.fullmatch(name) is not None


def encoder_options(name: str) -> tuple[str, ...]:
    """The option names `build_encoder` accepts for encoder `name`, in constructor order.

    For your own encoder (`package.module:factory`, imported here) these are the factory's
    named parameters other than `input_shape`; one taking `**kwargs` accepts any name besides.
    """
    if is_encoder_path(name):
        parameters = _signature_parameters(import_encoder_factory(name))
        if parameters is None:
            return ()
        return tuple(
            p.name
            for p in parameters.values()
            if p.name != "input_shape" and p.kind in _NAMED_KINDS
        )
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

    `name` is a built-in encoder (`ENCODERS`) or your own as `package.module:factory` (see
    the module's docstring for the factory's contract); `load_weights` does not apply to yours.

    Raises:
        ConfigError: for an unknown name or option, or an input shape the encoder cannot read;
            for your own encoder also a path that cannot be imported (`EncoderImportError`), a
            factory that is not callable or raises, options that are not JSON-able, or a
            module that does not map (N, *input_shape) inputs to (N, F) features.

    Example:
        >>> import torch
        >>> from siamese import ENCODERS, build_encoder
        >>> "convnet" in ENCODERS
        True
        >>> _ = torch.manual_seed(0)
        >>> encoder = build_encoder("convnet", (1, 28, 28), widths=[8, 16])
        >>> encoder.encoder_name, encoder.encoder_options, encoder.out_features
        ('convnet', {'widths': [8, 16]}, 16)
        >>> tuple(encoder(torch.rand(2, 1, 28, 28)).shape)
        (2, 16)
    """
    if is_encoder_path(name):
        return _build_user_encoder(name, input_shape, options)
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
        f"{', '.join(ENCODERS)}, or give your own as 'package.module:factory'{suggestion}"
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


# --- your own encoder ------------------------------------------------------------------------

_NAMED_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def import_encoder_factory(path: str) -> Callable[..., Any]:
    """The callable that `path` (`package.module:factory`) names, imported.

    Nothing is unpickled; importing the module runs its code, as importing any module does.

    Raises:
        EncoderImportError: the module cannot be imported or has no such attribute.
        ConfigError: `path` is not of the form `package.module:factory`, or what it names is
            not callable.
    """
    if not is_encoder_path(path):
        raise ConfigError(
            f"encoder path {path!r} is not of the form 'package.module:factory' (a dotted "
            "module name, a colon, then the factory's name)"
        )
    module_name, attribute = path.split(":", 1)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        reason = f"{type(err).__name__}: {err}"
        raise EncoderImportError(
            f"encoder {path!r}: module {module_name!r} cannot be imported ({reason}); install "
            "the package that defines it, or put its folder on PYTHONPATH, or fix the module "
            "name in model.encoder",
            path,
            reason,
        ) from err
    except Exception as err:  # the module's own code failed (SyntaxError, a raise at import)
        reason = f"{type(err).__name__}: {err}"
        raise EncoderImportError(
            f"encoder {path!r}: importing module {module_name!r} failed ({reason}); fix the "
            "error in that module",
            path,
            reason,
        ) from err
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as err:
            public = [n for n in dir(target) if not n.startswith("_")]
            near = difflib.get_close_matches(part, public, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            reason = f"AttributeError: {err}"
            raise EncoderImportError(
                f"encoder {path!r}: {module_name!r} has no attribute {attribute!r}{hint} "
                f"({reason}); fix the factory's name after the colon, or install the version "
                "of the package that defines it",
                path,
                reason,
            ) from err
    if not callable(target):
        raise ConfigError(
            f"encoder {path!r} names a {type(target).__name__}, not a callable: name a "
            "function or class that takes (input_shape, **options) and returns an nn.Module"
        )
    return target


def _signature_parameters(factory: Callable[..., Any]) -> Mapping[str, inspect.Parameter] | None:
    """The factory's parameters, or None when Python cannot tell (some builtins)."""
    try:
        return inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None


def _build_user_encoder(
    path: str, input_shape: Sequence[int], options: dict[str, Any]
) -> nn.Module:
    shape = checked_input_shape(path, input_shape)
    _check_json_able(path, options)
    factory = import_encoder_factory(path)
    args, kwargs = _factory_arguments(path, factory, shape, options)
    try:
        module = factory(*args, **kwargs)
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError(
            f"encoder {path!r}: the factory raised {type(err).__name__}: {err} (called with "
            f"input shape {shape} and options {dict(options)!r}); fix the options in "
            "model.options, or the factory"
        ) from err
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"encoder {path!r}: the factory returned a {type(module).__name__}, not a "
            "torch.nn.Module: return the module that maps (N, *input_shape) inputs to (N, F)"
        )
    out_features = getattr(module, "out_features", None)
    if not isinstance(out_features, int) or isinstance(out_features, bool):
        out_features = _measured_out_features(path, module, shape)
    elif out_features < 1:
        raise ConfigError(
            f"encoder {path!r}: its module's out_features is {out_features}; it must be the "
            "number of features F >= 1 it gives per example (or leave it unset to measure it)"
        )
    try:
        module.out_features = out_features
        module.encoder_name = path
        module.encoder_options = copy.deepcopy(dict(options))
    except (AttributeError, TypeError) as err:
        raise ConfigError(
            f"encoder {path!r}: cannot set out_features, encoder_name and encoder_options on "
            f"its {type(module).__name__} ({err}); let them be plain attributes"
        ) from err
    return module


def _factory_arguments(
    path: str, factory: Callable[..., Any], shape: tuple[int, ...], options: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) of the factory's call, checked against its signature."""
    parameters = _signature_parameters(factory)
    if parameters is None:
        return (shape,), dict(options)
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    named = [p.name for p in parameters.values() if p.kind in _NAMED_KINDS]
    valid = [n for n in named if n != "input_shape"]
    for option in options:
        if option == "input_shape":
            raise ConfigError(
                f"encoder {path!r}: input_shape comes from the data, not from model.options; "
                "remove it"
            )
        if option not in valid and not takes_kwargs:
            near = difflib.get_close_matches(option, valid, n=1)
            suggestion = f" (did you mean {near[0]!r}?)" if near else ""
            listed = ", ".join(valid) if valid else "none"
            raise ConfigError(
                f"unknown option {option!r} for encoder {path!r}{suggestion}: its options are "
                f"{listed}; fix or remove it (model.options in a run config)"
            )
    shape_parameter = parameters.get("input_shape")
    args: tuple[Any, ...] = ()
    kwargs = dict(options)
    if shape_parameter is not None and shape_parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
        args = (shape,)
    elif shape_parameter is not None or takes_kwargs:
        kwargs["input_shape"] = shape
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as err:
        raise ConfigError(
            f"encoder {path!r} cannot be called with options {dict(options)!r} ({err}): "
            "set its required options in model.options"
        ) from None
    return args, kwargs


def _measured_out_features(path: str, module: nn.Module, shape: tuple[int, ...]) -> int:
    """F of one forward pass of zeros (2, *shape), in eval mode without gradients."""
    first = next(module.parameters(), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    device = first.device if first is not None else torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros((2, *shape), dtype=dtype, device=device))
    except Exception as err:
        raise ConfigError(
            f"encoder {path!r}: its module cannot read inputs of shape (N, *input_shape) = "
            f"{(2, *shape)} ({type(err).__name__}: {err}); make it read the data's examples"
        ) from err
    finally:
        module.train(was_training)
    if not (isinstance(out, torch.Tensor) and out.ndim == 2 and out.is_floating_point()):
        got = (
            f"a {out.dtype} tensor of shape {tuple(out.shape)}"
            if isinstance(out, torch.Tensor)
            else f"a {type(out).__name__}"
        )
        raise ConfigError(
            f"encoder {path!r}: its module returned {got} for inputs of shape {(2, *shape)}; "
            "it must return (N, F) float features (flatten or pool what it computes), or set "
            "an int out_features"
        )
    if out.shape[0] != 2 or out.shape[1] < 1:
        raise ConfigError(
            f"encoder {path!r}: its module returned shape {tuple(out.shape)} for {2} inputs; "
            "it must return (N, F) features, one row per input, F >= 1"
        )
    return int(out.shape[1])


def _check_json_able(path: str, options: Mapping[str, Any], key: str = "model.options") -> None:
    """Options go into model.json: only null, booleans, numbers, strings, lists and mappings."""
    for name, value in options.items():
        _check_json_value(path, f"{key}.{name}", value)


def _check_json_value(path: str, key: str, value: Any) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if math.isfinite(value):
            return
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json_value(path, f"{key}[{i}]", item)
        return
    elif isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise ConfigError(
                    f"encoder {path!r}: option {key} has the key {k!r} ({type(k).__name__}), "
                    "which model.json cannot hold: give mappings string keys"
                )
            _check_json_value(path, f"{key}.{k}", item)
        return
    raise ConfigError(
        f"encoder {path!r}: option {key} = {value!r} ({type(value).__name__}) cannot be written "
        "into model.json: give options as null, true/false, finite numbers, strings, lists or "
        "mappings with string keys, and build anything else inside the factory"
    )
