"""The stand-in's one error: a local run cannot start (bad options, a tool missing, no Jenkinsfile)."""

from __future__ import annotations

from model.exit_codes import ExitCode


class PipelineError(Exception):
    """The local pipeline cannot start; `exit_code` from the project's one table."""

    exit_code = ExitCode.TOOL_FAILED


class PipelineUsageError(PipelineError):
    """An option names something that does not exist (a stage, a path outside the repository)."""

    exit_code = ExitCode.USAGE
