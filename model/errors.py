"""Errors raised by the model package. The CLI maps each to a one-line message and its exit code."""

from model.exit_codes import ExitCode


class ModelError(Exception):
    """Base class: something about a model, its data or its store is wrong."""

    exit_code = ExitCode.UNEXPECTED


class UsageError(ModelError):
    """An option value the command cannot use (a malformed --param, an unknown metric)."""

    exit_code = ExitCode.USAGE


class StoreError(ModelError):
    """The store cannot be reached or used: malformed URI, missing bucket, no credentials."""

    exit_code = ExitCode.UNREACHABLE


class StoreNotFoundError(StoreError):
    """The store itself does not exist (its S3 bucket). A StoreError, so whatever copes with an
    unusable store copes with it too, but its exit code says "not found"."""

    exit_code = ExitCode.NOT_FOUND


class NotFoundError(ModelError):
    """A model name, version or alias does not exist in the store."""

    exit_code = ExitCode.NOT_FOUND


class ConflictError(ModelError):
    """A concurrent writer changed an alias (or a version already exists): nothing was written."""

    exit_code = ExitCode.CONFLICT


class IntegrityError(ModelError):
    """A stored artifact or manifest does not match what was recorded: corrupt, truncated, tampered."""

    exit_code = ExitCode.INTEGRITY


class IncompatibleError(ModelError):
    """The artifact was made by library versions the running process cannot load safely."""

    exit_code = ExitCode.INTEGRITY


class DataError(ModelError):
    """Training data is missing, empty, malformed or unusable."""

    exit_code = ExitCode.BAD_DATA


class GateError(ModelError):
    """The quality gate refused a candidate: its metric is worse than the current alias target."""

    exit_code = ExitCode.GATE_REFUSED


class RecipeError(ModelError):
    """A recipe cannot be imported, fails to build or fit its estimator, or builds the wrong kind of
    estimator for the data (a classifier on a continuous target)."""

    exit_code = ExitCode.RECIPE_FAILED
