"""Checks of the arguments the encoders share: the input shape each encoder reads, layer sizes
and dropout rates. Each failure is a `ConfigError` that says which encoder and option were
wrong and what to use instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from siamese.errors import ConfigError

# encoder name → (accepted ranks of one example's shape, or None for any; what it reads)
EXPECTED_INPUT: dict[str, tuple[tuple[int, ...] | None, str]] = {
    "mlp": (None, "any shape, flattened to (F,) features"),
    "seed_cnn": ((3,), "images (C, H, W)"),
    "convnet": ((3,), "images (C, H, W)"),
    "resnet": ((3,), "images (C, H, W)"),
    "dlib_face_resnet": ((3,), "RGB face chips (3, H, W), 150×150 as dlib aligns them"),
    "lstm": ((2, 3), "sequences (T, F), or images (C, H, W) read row by row"),
    "gru": ((2, 3), "sequences (T, F), or images (C, H, W) read row by row"),
}


def encoders_for(input_shape: Sequence[int]) -> list[str]:
    """The encoders that read examples of shape `input_shape` (without the batch dim)."""
    return [
        name
        for name, (ranks, _) in EXPECTED_INPUT.items()
        if ranks is None or len(input_shape) in ranks
    ]


def checked_input_shape(encoder: str, input_shape: Sequence[int]) -> tuple[int, ...]:
    """`input_shape` as a tuple of positive ints, after checking `encoder` reads that rank.

    Your own encoder (`package.module:factory`, not in `EXPECTED_INPUT`) may read any rank:
    only its module can tell, when it is built.
    """
    shape = tuple(input_shape)
    if not shape or not all(isinstance(n, int) and n >= 1 for n in shape):
        raise ConfigError(
            f"input shape {shape} for encoder {encoder!r} is invalid: give one example's shape "
            "without the batch dimension, as positive integers, e.g. (1, 28, 28)"
        )
    ranks, reads = EXPECTED_INPUT.get(encoder, (None, "any shape"))
    if ranks is not None and len(shape) not in ranks:
        fitting = ", ".join(repr(name) for name in encoders_for(shape))
        hint = ""
        if len(shape) == 2 and 3 in ranks:
            hint = f"; for single-channel images add a channel axis: (1, {shape[0]}, {shape[1]})"
        raise ConfigError(
            f"encoder {encoder!r} reads {reads}, but the data's examples have shape {shape}: "
            f"choose an encoder that fits that shape ({fitting}){hint}"
        )
    return shape


def checked_sizes(
    encoder: str, option: str, values: Sequence[int], allow_empty: bool = True
) -> tuple[int, ...]:
    """Layer sizes `values` of `encoder`'s `option` as a tuple of positive ints."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ConfigError(
            f"option {option}={values!r} of encoder {encoder!r} must be a list of positive "
            f"integers, e.g. {option}=[32, 64]"
        )
    sizes = tuple(values)
    if (not sizes and not allow_empty) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes
    ):
        need = "one or more positive integers" if not allow_empty else "positive integers"
        raise ConfigError(f"option {option}={list(sizes)} of encoder {encoder!r} must be {need}")
    return sizes


def checked_positive(encoder: str, option: str, value: int) -> int:
    """`value` of `encoder`'s `option`, checked to be an int >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(
            f"option {option}={value!r} of encoder {encoder!r} must be an integer >= 1"
        )
    return value


def checked_dropout(encoder: str, value: float) -> float:
    """A dropout probability in [0, 1) for `encoder`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ConfigError(
            f"option dropout={value!r} of encoder {encoder!r} must lie in [0, 1) (0 turns it off)"
        )
    return float(value)


def checked_flag(encoder: str, option: str, value: bool) -> bool:
    """`value` of `encoder`'s `option`, checked to be true or false."""
    if not isinstance(value, bool):
        raise ConfigError(f"option {option}={value!r} of encoder {encoder!r} must be true or false")
    return value


def checked_choice(encoder: str, option: str, value: str, choices: Sequence[str]) -> str:
    """`value` of `encoder`'s `option`, checked to be one of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(
            f"option {option}={value!r} of encoder {encoder!r} is unknown: choose one of "
            f"{', '.join(choices)}"
        )
    return value
