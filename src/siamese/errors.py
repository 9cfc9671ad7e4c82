"""Errors a user can cause. Each message says what was wrong, where, and what to do.

The CLI prints these messages without a traceback and exits non-zero; any other exception
is a bug in `siamese`.
"""

from __future__ import annotations


class SiameseError(Exception):
    """Base class of every error a user can cause (bad data, bad config, bad path)."""


class ConfigError(SiameseError):
    """An option, argument or config value is invalid."""


class DataError(SiameseError):
    """Input data is missing, malformed or unusable."""


class OutputError(SiameseError):
    """A result cannot be written where the user asked."""


class CheckpointError(SiameseError):
    """A checkpoint or saved model is missing, corrupt or incompatible."""


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
