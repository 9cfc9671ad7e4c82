"""Errors a user can cause. Each message says what was wrong, where, and what to do.

The CLI prints these messages without a traceback and exits non-zero; any other exception
is a bug in `siamese`.
"""

from __future__ import annotations


class SiameseError(Exception):
    """Base class of every error a user can cause (bad data, bad config, bad path).

    Example:
        >>> from siamese import CheckpointError, ConfigError, DataError, OutputError, SiameseError
        >>> errors = (ConfigError, DataError, OutputError, CheckpointError)
        >>> all(issubclass(error, SiameseError) for error in errors)
        True
        >>> try:
        ...     raise ConfigError("margin must be >= 0")
        ... except SiameseError as err:
        ...     print(type(err).__name__, err)
        ConfigError margin must be >= 0
    """


class ConfigError(SiameseError):
    """An option, argument or config value is invalid.

    Example:
        >>> from siamese import ConfigError, load_config
        >>> try:
        ...     load_config(None, ["model.embedding_dim=0"])
        ... except ConfigError as err:
        ...     print(err)
        the defaults: model.embedding_dim = 0 must be >= 1
    """


class DataError(SiameseError):
    """Input data is missing, malformed or unusable.

    Example:
        >>> import torch
        >>> from siamese import DataError, PKSampler
        >>> try:
        ...     PKSampler(torch.tensor([0, 0, 0]), p=2, k=2)  # one class: no negatives
        ... except DataError as err:
        ...     print(err)
        P×K sampling needs at least 2 classes with 2 or more samples each; ...
    """


class OutputError(SiameseError):
    """A result cannot be written where the user asked.

    Example:
        >>> from siamese import OutputError, SiameseError
        >>> issubclass(OutputError, SiameseError), issubclass(OutputError, OSError)
        (True, False)
    """


class CheckpointError(SiameseError):
    """A checkpoint or saved model is missing, corrupt or incompatible.

    Example:
        >>> import tempfile
        >>> from siamese import CheckpointError, load_model
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     try:
        ...         load_model(folder)  # an empty folder holds no model
        ...     except CheckpointError as err:
        ...         print("model.json not found" in str(err))
        True
    """


class TrainingDivergedError(SiameseError):
    """The loss became NaN or infinite during training."""


class RunInterrupted(SiameseError):
    """The user stopped a run (Ctrl-C); the message says what was kept and how to resume."""


class NotFoundError(DataError):
    """A named thing (an identity of a gallery, an example) does not exist."""


class ConflictError(DataError):
    """A write conflicts with what is stored (an image enrolled under another identity)."""


class NoFaceError(DataError):
    """A model with a face step found no face in an image."""
