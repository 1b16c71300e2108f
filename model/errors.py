"""Errors raised by the model package. The CLI maps each to a one-line message and an exit code."""


class ModelError(Exception):
    """Base class: something about a model, its data or its store is wrong."""

    exit_code = 1


class StoreError(ModelError):
    """The store cannot be reached or used: malformed URI, missing bucket, no credentials."""

    exit_code = 3


class NotFoundError(ModelError):
    """A model name, version or alias does not exist in the store."""

    exit_code = 4


class ConflictError(ModelError):
    """A concurrent writer changed an alias (or a version already exists): nothing was written."""

    exit_code = 5


class IntegrityError(ModelError):
    """A stored artifact or manifest does not match what was recorded: corrupt, truncated, tampered."""

    exit_code = 6


class IncompatibleError(ModelError):
    """The artifact was made by library versions the running process cannot load safely."""

    exit_code = 6


class DataError(ModelError):
    """Training data is missing, empty, malformed or unusable."""

    exit_code = 7


class GateError(ModelError):
    """The quality gate refused a candidate: its metric is worse than the current alias target."""

    exit_code = 8
